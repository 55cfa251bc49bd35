#include "mppdl/data/source.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>

#include <set>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

TEST(DataSources, TheKindsTable) {
    std::vector<std::string> names;
    for (const auto& kind : sourceKinds()) {
        names.push_back(kind.name);
        EXPECT_NE(std::string(kind.description), "");
        EXPECT_NE(kind.detect, nullptr);
        EXPECT_NE(kind.load, nullptr);
    }
    std::vector<std::string> expected = {"idx", "csv", "npy", "images"};
#ifdef MPPDL_WITH_POSTGRES
    expected.insert(expected.begin(), "pg"); // tables first: their names are not paths
#endif
    EXPECT_EQ(names, expected);
}

TEST(DataSources, UnknownKindListsTheKnownOnes) {
    TempDir dir;
    const auto path = dir.write("d.csv", "1,0\n");
    SourceOptions options;
    options.kind = "parquet";
    expectError<ConfigError>([&] { loadSource(path, options); }, {"'parquet'", "idx", "csv", "npy", "images"});
}

TEST(DataSources, MissingPath) {
    TempDir dir;
    const auto path = dir.file("nothing-here.csv");
    expectError<DataError>([&] { loadSource(path); }, {path + ": no such file or directory"});
}

TEST(DataSources, UndetectableLocationAsksForAKind) {
    TempDir dir;
    const auto path = dir.write("data.bin", "whatever");
    expectError<ConfigError>([&] { loadSource(path); }, {path, "idx, csv, npy, images"});
}

TEST(DataSources, DetectsEachKind) {
    TempDir dir;
    dir.write("idx/train-images-idx3-ubyte.gz", "");
    dir.write("npy/x_train.npy", "");
    dir.write("img/cat/a.png", "");
    const auto csv = dir.write("t.csv.gz", "");
    auto claimedBy = [](const std::string& location) {
        std::set<std::string> kinds;
        for (const auto& kind : sourceKinds())
            if (kind.detect(location))
                kinds.insert(kind.name);
        return kinds;
    };
    EXPECT_EQ(claimedBy(dir.file("idx")), (std::set<std::string>{"idx"}));
    EXPECT_EQ(claimedBy(dir.file("npy")), (std::set<std::string>{"npy"}));
    EXPECT_EQ(claimedBy(dir.file("img")), (std::set<std::string>{"images"}));
    EXPECT_EQ(claimedBy(csv), (std::set<std::string>{"csv"}));
}

TEST(DataSources, NegativeLimitIsAConfigError) {
    TempDir dir;
    const auto path = dir.write("d.csv", "1,0\n");
    SourceOptions options;
    options.limit = -1;
    expectError<ConfigError>([&] { loadSource(path, options); }, {"limit"});
}

// A shape whose product overflows, or passes 2^32 values a sample, is refused before anything is
// read or allocated, for every kind.
TEST(DataSources, AShapeTooLargeOrOverflowingIsAConfigError) {
    TempDir dir;
    const auto csv = dir.write("a.csv", "x,y,label\n1,2,0\n3,4,1\n");
    SourceOptions options;
    options.shape = {int64_t(1) << 40, int64_t(1) << 40, 16};
    expectError<ConfigError>([&] { loadSource(csv, options); }, {csv, "has more than 4294967296 values a sample"});
    options.shape = {3, int64_t(1) << 31};
    expectError<ConfigError>([&] { loadSource(csv, options); }, {"has more than"});
    options.shape = {2, 0};
    expectError<ConfigError>([&] { loadSource(csv, options); }, {"not positive"});
    options.shape = {2};
    EXPECT_EQ(loadSource(csv, options).train.sampleShape(), (std::vector<int64_t>{2}));
}
