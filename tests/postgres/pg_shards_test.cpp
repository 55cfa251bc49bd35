// A table read as N segments' shards, each over its own connection in parallel: every row once, on
// the segment the database puts it on; the "database" distribution trains each segment on exactly
// those rows; queries as sources; and the errors of sharded reading. Greenplum's SQL is run here
// against a table that carries a gp_segment_id column of its own, as Greenplum's rows do.

#include "pg_test_db.h"

#include "data/pg_read.h"

#include "mppdl/core/error.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/run_rows.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/trainer.h"

#include "support/expect_error.h"
#include "support/json_events.h"
#include "support/run_cli.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

using namespace mppdl;

namespace {

constexpr int64_t kRows = 900;

const data::Dataset& idxRows() {
    static const data::Dataset rows = fashionRows(kRows).train;
    return rows;
}

/// Each test has its own table, named after it: ctest runs tests in parallel processes.
class PgShards : public PgTest {
protected:
    void SetUp() override {
        PgTest::SetUp();
        table = testTableName("shards_", 63);
        if (!HasFailure() && !IsSkipped())
            createFashionTable(*db, table, "real[]", idxRows());
    }
    std::string table;
    std::string source() const { return "pg:" + table; }
};

} // namespace

TEST_F(PgShards, EveryRowOnceOnTheSegmentItsKeyHashesTo) {
    auto o = fashionTableOptions();
    o.segments = 3;
    const auto sharded = data::loadSource(source(), o);
    ASSERT_EQ(sharded.train.size(), kRows);
    ASSERT_TRUE(sharded.train.homeSegments().defined());
    ASSERT_EQ(sharded.ids.size(), size_t(kRows));

    // The server's own grouping of the rows by the same hash.
    std::map<int64_t, int64_t> serverSegment;
    const auto r = db->query("SELECT id, abs(hashtext(id::text)::int8) % 3 FROM " + table);
    for (int i = 0; i < r.rows(); ++i)
        serverSegment[std::stoll(r.text(i, 0))] = std::stoll(r.text(i, 1));

    const auto home = sharded.train.homeSegments();
    std::vector<int64_t> perSegment(3, 0);
    std::vector<bool> seen(kRows, false);
    int64_t previousId = -1, previousSegment = -1;
    for (int64_t row = 0; row < kRows; ++row) {
        const int64_t id = std::stoll(sharded.ids[size_t(row)]);
        const int64_t segment = home[row].item<int64_t>();
        ASSERT_TRUE(id >= 0 && id < kRows && !seen[size_t(id)]) << "id " << id;
        seen[size_t(id)] = true;
        EXPECT_EQ(segment, serverSegment.at(id)) << "id " << id;
        // Rows come segment by segment, each segment in id order.
        EXPECT_TRUE(segment > previousSegment || (segment == previousSegment && id > previousId)) << "row " << row;
        previousId = id;
        previousSegment = segment;
        ++perSegment[size_t(segment)];
        // The row itself is the IDX row with that id.
        ASSERT_TRUE(
            torch::equal(sharded.train.features()[row].to(torch::kFloat), idxRows().features()[id].to(torch::kFloat)))
            << "id " << id;
        ASSERT_EQ(sharded.train.labels()[row].item<int64_t>(), idxRows().labels()[id].item<int64_t>()) << "id " << id;
    }
    for (int s = 0; s < 3; ++s)
        EXPECT_TRUE(perSegment[size_t(s)] > kRows / 3 - 60 && perSegment[size_t(s)] < kRows / 3 + 60)
            << "segment " << s << " holds " << perSegment[size_t(s)] << " rows";
    // The "database" distribution keeps them there.
    const auto shards = data::distribute(sharded.train, 3, "database", 0);
    for (int s = 0; s < 3; ++s)
        EXPECT_EQ(shards[size_t(s)].size(0), perSegment[size_t(s)]) << "segment " << s;
}

// Greenplum's statements, run on a table whose gp_segment_id is a column (Greenplum's is a system
// column every row has): each shard is exactly the rows of its segment.
TEST_F(PgShards, GreenplumSegmentShardsSelectTheirSegmentsRows) {
    db->query("DROP TABLE IF EXISTS gp_like");
    db->query("CREATE TABLE gp_like AS SELECT id, label, pixels, (id * 7 % 4) AS gp_segment_id FROM " + table);
    data::ServerInfo gp;
    gp.greenplum = true;
    gp.segments = 4;
    for (const int segments : {4, 2}) {
        data::ReadPlan read;
        read.columns = "label::int8, pixels::float4[], id::text AS mppdl_id";
        read.from = "gp_like";
        read.orderBy = "id";
        read.shards = data::planShards(gp, true, segments, "", "pg:gp_like");
        ASSERT_EQ(read.shards.by, data::ShardPlan::By::GreenplumSegment);
        int64_t total = 0;
        for (int s = 0; s < segments; ++s) {
            int64_t rows = 0;
            db->copyOut(read.copyStatement(s), [&](const char*, size_t) { ++rows; });
            const auto expected = db->query("SELECT count(*) FROM gp_like WHERE gp_segment_id % " +
                                            std::to_string(segments) + " = " + std::to_string(s));
            EXPECT_EQ(rows, std::stoll(expected.text(0, 0))) << segments << " segments, segment " << s;
            EXPECT_GT(rows, 0);
            total += rows;
        }
        EXPECT_EQ(total, kRows) << segments << " segments";
    }
}

TEST_F(PgShards, DatabaseDistributionTrainsEachSegmentOnItsRows) {
    train::TrainConfig config;
    config.data.location = source();
    config.data.source = fashionTableOptions();
    config.data.validationFraction = 0.1;
    config.strategy = "model-averaging";
    config.segments = 3;
    config.distribution = "database";
    config.epochs = 3;
    config.batchSize = 32;
    config.optimizer.lr = 0.05;
    config.optimizer.momentum = 0.9;
    config.threads = 1;
    const auto arch = model::loadArchitecture(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/mlp.json");
    RecordingObserver events;
    const auto loaded = train::loadData(config, arch, events);
    const auto& home = loaded.prepared.train.homeSegments();
    ASSERT_TRUE(home.defined()) << "the validation split and the normalizer keep the home segments";
    EXPECT_EQ(home.size(0), loaded.prepared.train.size());
    const auto shards = data::distribute(loaded.prepared.train, 3, "database", 0);
    for (int s = 0; s < 3; ++s)
        EXPECT_TRUE(torch::equal(shards[size_t(s)], torch::nonzero(home == s).reshape({-1}))) << "segment " << s;

    const auto result = train::train(config, arch, loaded.prepared, events);
    EXPECT_EQ(result.epochsRun, 3);
    ASSERT_TRUE(result.validation.has_value());
    // It learns from the segments' rows: 810 training rows, 3 epochs, well above chance (0.1).
    EXPECT_GT(result.validation->accuracy, 0.3);

    // Not a table: the database distribution has no database to ask.
    config.data.location = MPPDL_FASHION_MNIST_DIR;
    config.data.source = {};
    config.data.source.limit = 300;
    expectError<ConfigError>([&] { train::loadData(config, arch, events); }, {"'database' distribution", "pg:"});
}

TEST_F(PgShards, ProgressCountsTheRowsOnTheCallingThread) {
    for (const int segments : {0, 3}) {
        auto o = fashionTableOptions();
        o.segments = segments;
        o.progressSeconds = 0; // every step of 256 rows the calling thread's stream sees
        std::vector<int64_t> reports;
        const auto caller = std::this_thread::get_id();
        o.progress = [&](int64_t rows, int64_t expected) {
            EXPECT_EQ(std::this_thread::get_id(), caller);
            EXPECT_EQ(expected, kRows) << "the planner's estimate after ANALYZE";
            reports.push_back(rows);
        };
        db->query("ANALYZE " + table);
        data::loadSource(source(), o);
        ASSERT_FALSE(reports.empty()) << segments << " segments";
        EXPECT_EQ(reports.front() % 256, 0);
        EXPECT_TRUE(std::is_sorted(reports.begin(), reports.end()));
        EXPECT_LE(reports.back(), kRows);
        if (segments == 0) // one stream: 256, 512, 768 of the 900 rows
            EXPECT_EQ(reports, (std::vector<int64_t>{256, 512, 768}));
    }
}

TEST_F(PgShards, QueriesAreSources) {
    auto o = fashionTableOptions();
    const auto even = data::loadSource("pg:(SELECT id, label, pixels FROM " + table + " WHERE id % 2 = 0)", o);
    ASSERT_EQ(even.train.size(), kRows / 2);
    const auto evenRows = torch::arange(0, kRows, 2, torch::kInt64);
    EXPECT_TRUE(torch::equal(even.train.features().to(torch::kFloat),
                             idxRows().features().index_select(0, evenRows).to(torch::kFloat)));
    EXPECT_EQ(even.ids.front(), "0");
    // Expressions are columns too; sharded by a key of the query.
    o.segments = 2;
    o.id = "";
    o.distributedBy = "k";
    const auto computed = data::loadSource("pg:(SELECT id * 10 AS k, label + 0 AS label, pixels FROM " + table + ") ",
                                           o);
    EXPECT_EQ(computed.train.size(), kRows);
    EXPECT_TRUE(computed.train.homeSegments().defined());

    expectError<DataError>([&] { data::loadSource("pg:(SELECT FROM WHERE)", fashionTableOptions()); },
                           {"pg:(SELECT FROM WHERE)", "syntax error"});
    expectError<ConfigError>(
        [&] { data::loadSource("pg:(SELECT id, label, pixels FROM " + table, fashionTableOptions()); },
        {"pg:(SELECT ...), in parentheses"});
    expectError<DataError>(
        [&] {
            data::loadSource("pg:(SELECT id, label, pixels FROM " + table + " WHERE false)", fashionTableOptions());
        },
        {"the query returns no rows"});
}

TEST_F(PgShards, ShardingErrorsSayWhatToDo) {
    auto o = fashionTableOptions();
    o.segments = 2;
    o.id = "";
    expectError<ConfigError>([&] { data::loadSource(source(), o); }, {source(), "--distributed-by COLUMN"});
    o.distributedBy = "nope";
    expectError<ConfigError>([&] { data::loadSource(source(), o); },
                             {"no distribution key column 'nope'", "pixels real[]"});
    o = fashionTableOptions();
    o.segments = 8; // more segments than rows
    const std::string few = "pg:(SELECT * FROM " + table + " WHERE id < 3)";
    expectError<DataError>([&] { data::loadSource(few, o); },
                           {few + ": segment", "of 8 has no rows", "fewer segments"});
}

// One of the parallel streams is cut: a DataError naming the source and the segment, and the other
// streams stop instead of reading on.
TEST_F(PgShards, OneStreamCutFailsTheRead) {
    db->query("DROP VIEW IF EXISTS shards_slow");
    db->query("CREATE VIEW shards_slow AS SELECT id, label, pixels, pg_sleep(0.005)::text AS pause FROM " + table);
    auto o = fashionTableOptions();
    o.segments = 3;
    // Unordered, so that rows stream as they are made (ORDER BY id would sort them all first).
    o.id = "";
    o.distributedBy = "id";
    // Each stream in turn: 0 runs on the connection that read the catalog, 1 and 2 on their own.
    for (const int victim : {0, 2}) {
        const std::string shard = std::to_string(victim);
        // A name per round: the stopped streams of the round before may still run on the server
        // (a backend notices its client has gone only when it next sends), and must not be the victim.
        const std::string application = "mppdl_shard_victim_" + shard;
        auto read = o;
        read.connection += " application_name=" + application;
        BackendKiller killer(application, "COPY%= " + shard + ") TO STDOUT%");
        const auto start = std::chrono::steady_clock::now();
        expectError<DataError>([&] { data::loadSource("pg:shards_slow", read); },
                               {"pg:shards_slow, segment " + shard + " (", "terminat"});
        // A full read takes 900 rows x 5 ms / 3 streams = 1.5 s; stopping early takes much less.
        EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 1.4);
    }
}

// The same through the command line, as a user meets it: a data error (exit 3) naming the source,
// and the project records no run.
TEST_F(PgShards, ACutReadFailsTheTrainCommandAndRecordsNothing) {
    db->query("DROP VIEW IF EXISTS shards_cli_slow");
    db->query("CREATE VIEW shards_cli_slow AS SELECT id, label, pixels, pg_sleep(0.005)::text AS pause FROM " + table);
    const auto project = std::filesystem::temp_directory_path() / ("mppdl_cut_" + std::to_string(getpid()) + ".mppdl");
    std::filesystem::remove(project);
    setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1); // as a user supplies it
    const std::string conn = std::string(std::getenv("MPPDL_TEST_PG")) + " application_name=mppdl_cli_victim";
    BackendKiller killer("mppdl_cli_victim", "COPY%");
    const auto train = runMppdl(
        "train --data pg:shards_cli_slow --conn '" + conn +
        "' --shape 1,28,28 --distributed-by id --arch mlp --epochs 1 --strategy model-averaging "
        "--segments 2 --distribute-by database --project " +
        project.string());
    EXPECT_EQ(train.code, 3) << train.out;
    EXPECT_NE(train.out.find("data error: pg:shards_cli_slow, segment"), std::string::npos) << train.out;
    EXPECT_NE(train.out.find("terminat"), std::string::npos) << train.out;
    const auto runs = runMppdl("runs --project " + project.string());
    EXPECT_NE(runs.out.find("no runs yet"), std::string::npos) << runs.out;
    std::filesystem::remove(project);
}

// A process of a multi-process run reads only its own segments' shards, each over a connection of
// its own, and counts the others: exactly the whole sharded read's rows of those segments, in the
// same order, with the same home segments and ids.
TEST_F(PgShards, AProcessReadsOnlyItsOwnShards) {
    auto o = fashionTableOptions();
    o.segments = 3;
    const auto whole = data::loadSource(source(), o);
    const auto home = whole.train.homeSegments();
    std::vector<int64_t> counts(3, 0);
    for (int64_t r = 0; r < kRows; ++r)
        ++counts[size_t(home[r].item<int64_t>())];
    for (const int world : {2, 3}) {
        int64_t rows = 0;
        for (int rank = 0; rank < world; ++rank) {
            auto mine = o;
            mine.shards = data::segmentsOfRank(3, rank, world);
            const auto part = data::loadSource(source(), mine);
            const auto wanted = torch::nonzero(home.remainder(world).eq(rank)).reshape({-1});
            const auto expected = whole.train.select(wanted);
            ASSERT_EQ(part.train.size(), expected.size()) << rank << "/" << world;
            EXPECT_TRUE(part.train.features().equal(expected.features()));
            EXPECT_TRUE(part.train.labels().equal(expected.labels()));
            EXPECT_TRUE(part.train.homeSegments().equal(expected.homeSegments()));
            for (int64_t i = 0; i < wanted.size(0); ++i)
                EXPECT_EQ(part.ids[size_t(i)], whole.ids[size_t(wanted[i].item<int64_t>())]);
            EXPECT_EQ(part.shardRows, counts);
            EXPECT_EQ(part.sourceTrainRows, kRows);
            EXPECT_EQ(part.rowsRead, part.train.size());
            rows += part.rowsRead;
        }
        EXPECT_EQ(rows, kRows) << "every row read once over " << world << " processes";
    }
}

// Through the command line: processes each read their own rows of the table (the database policy
// by its shards' COPYs; another policy by the rows' numbers in id order), and train what the
// thread pool trains.
TEST_F(PgShards, ProcessesReadTheirOwnRowsOfTheTable) {
    setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1);
    const std::string flags = "train --data " + source() + " --conn '" + std::getenv("MPPDL_TEST_PG") +
                              "' --shape 1,28,28 --id id --arch mlp --epochs 1 --strategy model-averaging "
                              "--segments 4 --seed 3 --threads 2 --no-project --json --distribute-by ";
    for (const std::string policy : {"database", "random"}) {
        const auto threads = runMppdl(flags + policy + (policy == "database" ? " --distributed-by id" : ""));
        ASSERT_EQ(threads.code, 0) << threads.out;
        const auto processes = runMppdl(flags + policy + (policy == "database" ? " --distributed-by id" : "") +
                                        " --processes 2");
        ASSERT_EQ(processes.code, 0) << processes.out;
        const auto one = finishedEvent(threads.out), two = finishedEvent(processes.out);
        EXPECT_NEAR(two["val_accuracy"].get<double>(), one["val_accuracy"].get<double>(), 1e-9) << policy;
        EXPECT_NEAR(two["val_loss"].get<double>(), one["val_loss"].get<double>(), 1e-6) << policy;
        ASSERT_EQ(two["ranks"].size(), 2u) << processes.out;
        const int64_t read0 = two["ranks"][0]["rows_read"], read1 = two["ranks"][1]["rows_read"];
        EXPECT_EQ(read0 + read1, kRows) << policy; // 1.0x the table, not 2x
        EXPECT_GT(read0, 0);
        EXPECT_GT(read1, 0);
    }
}
