// The memory budget's sizes and the cgroup it is read from; the packed cache's files.

#include "data/packed_cache.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/memory.h"

#include "support/expect_error.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

using namespace mppdl;

TEST(MemoryBudget, SizesParseAsUsersWriteThem) {
    EXPECT_EQ(data::parseByteSize("300000000"), 300000000);
    EXPECT_EQ(data::parseByteSize("512M"), int64_t(512) << 20);
    EXPECT_EQ(data::parseByteSize("2G"), int64_t(2) << 30);
    EXPECT_EQ(data::parseByteSize("1.5GiB"), int64_t(3) << 29);
    EXPECT_EQ(data::parseByteSize("64kb"), int64_t(64) << 10);
    EXPECT_EQ(data::parseByteSize("100B"), 100);
    for (const char* bad : {"", "M", "2X", "-1G", "0", "1e300", "12 potatoes"})
        expectError<ConfigError>([&] { data::parseByteSize(bad); }, {"--memory-budget '", "expected a size"});
}

TEST(MemoryBudget, FiguresAreWrittenInPowersOf1024) {
    EXPECT_EQ(humanBytes(512), "512 bytes");
    EXPECT_EQ(humanBytes(1536), "1.5 KB");
    EXPECT_EQ(humanBytes(188.0 * 1024 * 1024), "188 MB");
    EXPECT_EQ(humanBytes(1.2 * 1024 * 1024 * 1024), "1.2 GB");
    EXPECT_EQ(data::preparedBytes(10, {1, 28, 28}), 10 * (784 * 4 + 8));
}

TEST(MemoryBudget, TheDefaultIsAShareOfWhatTheProcessMayUse) {
    const auto available = data::memoryAvailable();
    ASSERT_GT(available.bytes, 0);
    const auto budget = data::memoryBudget("");
    EXPECT_NEAR(double(budget.bytes), double(available.bytes) * data::kDefaultBudgetShare, double(64 << 20));
    EXPECT_NE(budget.why.find("50% of "), std::string::npos) << budget.why;
    const auto given = data::memoryBudget("64M");
    EXPECT_EQ(given.bytes, int64_t(64) << 20);
    EXPECT_EQ(given.why, "--memory-budget 64M");
}

class PackedFiles : public ScratchDirTest {};

TEST_F(PackedFiles, RowsWrittenInChunksMapBackWithTheirChecksum) {
    const auto rows = torch::arange(0, 6 * 5, torch::kFloat32).reshape({6, 5});
    data::RowFileWriter writer(path("rows.f32"));
    writer.append(rows.slice(0, 0, 4));
    writer.append(rows.slice(0, 4, 6));
    const uint32_t crc = writer.finish();
    EXPECT_EQ(crc, data::fileChecksum(path("rows.f32")));
    const auto mapped = data::mapRows(path("rows.f32"), at::kFloat, {6, 5}, true);
    EXPECT_TRUE(mapped.equal(rows));
    expectError<StorageError>(
        [&] {
            data::mapRows(path("rows.f32"), at::kFloat, {7, 5}, false);
        },
        {"rows.f32 hold 120 bytes, 140 expected"});
}

TEST_F(PackedFiles, AnEntryIsFoundOnlyCompleteWithItsKeyAndChecksums) {
    data::PackedCache cache(path("cache"), "identity\n", "stamp 1\n");
    std::string why;
    EXPECT_FALSE(cache.find(why));
    EXPECT_EQ(why, "none built yet");
    cache.beginBuild();
    data::RowFileWriter writer(cache.buildPath("part.f32"));
    writer.append(torch::ones({3, 2}));
    nlohmann::json manifest;
    manifest["files"]["part.f32"] = writer.finish();
    EXPECT_FALSE(cache.find(why)) << "a build in progress is not an entry";
    cache.commit(manifest);
    EXPECT_TRUE(cache.find(why));

    data::PackedCache changed(path("cache"), "identity\n", "stamp 2\n");
    EXPECT_EQ(changed.dir(), cache.dir()) << "the same identity: the same place";
    EXPECT_FALSE(changed.find(why));
    EXPECT_EQ(why, "the source or the rows it holds changed since it was built");

    std::fstream(cache.path("part.f32"), std::ios::in | std::ios::out | std::ios::binary).put('x');
    EXPECT_FALSE(cache.find(why));
    EXPECT_EQ(why, "part.f32 fails its checksum");
}
