// --no-cache through the binary: a table's training rows are read from the server again every
// epoch, a block at a time in a seeded block order (as MADlib reads a table in every iteration
// without use_caching): every epoch reads every training row once more, the run trains about as
// well as in memory, over processes each rank streams only its own rows, a run killed in its
// second epoch resumes bit for bit, and what cannot stream is refused with what to do.

#include "pg_test_db.h"

#include "support/background.h"
#include "support/json_events.h"
#include "support/run_cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

// Over 8 MB of prepared rows: --memory-budget 1M makes blocks of 8 MB (data::chunkRows), so three.
constexpr int64_t kRows = 6000;

const mppdl::data::Dataset& idxRows() {
    static const mppdl::data::Dataset rows = fashionRows(kRows).train;
    return rows;
}

bool has(const std::string& out, const std::string& text) { return out.find(text) != std::string::npos; }

/// Each test has its own table, named after it, and a scratch directory for its projects.
class PgStreamed : public PgTest {
protected:
    void SetUp() override {
        PgTest::SetUp();
        if (HasFailure() || IsSkipped())
            return;
        table = testTableName("streamed_", 63);
        createFashionTable(*db, table, "bytea", idxRows());
        dir = fs::temp_directory_path() / (table + "_" + std::to_string(getpid()));
        fs::remove_all(dir);
        fs::create_directories(dir);
        setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1); // as a user supplies it
    }
    void TearDown() override {
        if (!dir.empty())
            fs::remove_all(dir);
    }
    /// A model-averaging run of the table over two segments.
    std::string flags(int epochs, const std::string& arch = "mlp") const {
        return "train --data pg:" + table + " --conn '" + std::getenv("MPPDL_TEST_PG") +
               "' --shape 1,28,28 --id id --arch " + arch + " --epochs " + std::to_string(epochs) +
               " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --strategy model-averaging --segments 2 "
               "--seed 3 --threads 2 --json";
    }
    std::string project(const std::string& name) const { return (dir / name).string(); }
    std::string table;
    fs::path dir;
};

} // namespace

TEST_F(PgStreamed, EveryEpochReadsTheTableAgainAndTrainsAsInMemoryDoes) {
    const auto inMemory = runMppdl(flags(2) + " --no-project");
    ASSERT_EQ(inMemory.code, 0) << inMemory.out;
    const auto streamed = runMppdl(flags(2) + " --no-project --no-cache");
    ASSERT_EQ(streamed.code, 0) << streamed.out;
    EXPECT_TRUE(has(streamed.out, "--no-cache: the training rows are read from the server every epoch, 3 blocks"))
        << streamed.out;
    const auto memory = finishedEvent(inMemory.out), stream = finishedEvent(streamed.out);
    // The same validation rows, the same normalization; only the order of the rows differs, and
    // the block shuffle costs no accuracy.
    EXPECT_GT(stream["val_accuracy"].get<double>(), memory["val_accuracy"].get<double>() - 0.03);
    EXPECT_GT(stream["val_accuracy"].get<double>(), 0.7);
    ASSERT_EQ(stream["ranks"].size(), 1u) << streamed.out;
    const int64_t read = stream["ranks"][0]["rows_read"], trainRows = kRows - kRows / 10;
    // Fitting reads the rows once (the three blocks are held through the statistics' passes),
    // then every epoch reads every training row again.
    EXPECT_EQ(read, kRows + 2 * trainRows) << streamed.out;
    EXPECT_EQ(memory["ranks"][0]["rows_read"].get<int64_t>(), kRows);
}

TEST_F(PgStreamed, ProcessesStreamOnlyTheirOwnRows) {
    const auto threads = runMppdl(flags(1) + " --no-project --no-cache");
    ASSERT_EQ(threads.code, 0) << threads.out;
    const auto processes = runMppdl(flags(1) + " --no-project --no-cache --processes 2");
    ASSERT_EQ(processes.code, 0) << processes.out;
    const auto one = finishedEvent(threads.out), two = finishedEvent(processes.out);
    // Each rank streams its own segment's rows, in the order the thread-pool run gives that
    // segment: the same training, within the rounding of the processes' sums.
    EXPECT_NEAR(two["val_loss"].get<double>(), one["val_loss"].get<double>(), 1e-5);
    ASSERT_EQ(two["ranks"].size(), 2u) << processes.out;
    const int64_t read0 = two["ranks"][0]["rows_read"], read1 = two["ranks"][1]["rows_read"];
    EXPECT_EQ(read0 + read1, one["ranks"][0]["rows_read"].get<int64_t>()) << processes.out; // 1.0x, not 2x
    EXPECT_GT(read0, 0);
    EXPECT_GT(read1, 0);
}

TEST_F(PgStreamed, AKilledRunResumesBitForBit) {
    // A network slow enough to be killed in its second epoch.
    const std::string killed = flags(3, "fmnist_cnn") + " --no-cache --project " + project("killed.mppdl");
    {
        Background training(killed);
        ASSERT_TRUE(waitForProgressOfEpoch(training, 2)) << "never saw a progress event of epoch 2";
        training.kill9();
        EXPECT_EQ(training.wait(), 128 + SIGKILL);
    }
    const auto resumed = runMppdl("resume 1 --project " + project("killed.mppdl") + " --json");
    ASSERT_EQ(resumed.code, 0) << resumed.out;
    EXPECT_TRUE(has(resumed.out, "--no-cache")) << resumed.out;
    const auto straight = runMppdl(flags(3, "fmnist_cnn") + " --no-cache --project " + project("straight.mppdl"));
    ASSERT_EQ(straight.code, 0) << straight.out;
    const auto a = finishedEvent(resumed.out), b = finishedEvent(straight.out);
    for (const char* key : {"val_loss", "val_accuracy"}) {
        ASSERT_TRUE(a.contains(key) && b.contains(key)) << key << "\n" << resumed.out << "\n" << straight.out;
        EXPECT_EQ(a[key].get<double>(), b[key].get<double>()) << key;
    }
}

TEST_F(PgStreamed, WhatCannotStreamIsRefusedWithWhatToDo) {
    auto r = runMppdl("train --data " + std::string(MPPDL_FASHION_MNIST_DIR) + " --arch mlp --no-project --no-cache");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_TRUE(has(r.out, "--no-cache reads a pg: table from its server again every epoch")) << r.out;
    r = runMppdl(flags(1) + " --no-project --no-cache --distribute-by database --distributed-by id");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_TRUE(has(r.out, "the 'database' distribution reads each segment's shard once")) << r.out;
    std::string noId = flags(1);
    noId.replace(noId.find(" --id id"), 8, "");
    r = runMppdl(noId + " --no-project --no-cache");
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_TRUE(has(r.out, "name it with --id")) << r.out;
}
