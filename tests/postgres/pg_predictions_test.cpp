// Predictions written back to PostgreSQL: one transaction, --if-exists, ids that join back, names
// that stay names.

#include "pg_test_db.h"

#include "mppdl/core/error.h"
#include "mppdl/data/predictions.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/train/trainer.h"

#include "support/expect_error.h"
#include "support/run_cli.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <unistd.h>

using namespace mppdl;

namespace {

class PgPredictions : public PgTest {
protected:
    void SetUp() override {
        PgTest::SetUp();
        if (IsSkipped())
            return;
        data::SourceOptions o;
        o.limit = 300;
        const auto idx = data::loadSource(MPPDL_FASHION_MNIST_DIR, o);
        // A table of its own for each test: ctest runs them side by side.
        rowsTable = std::string("rows_") + ::testing::UnitTest::GetInstance()->current_test_info()->name();
        createFashionTable(*db, rowsTable, "real[]", idx.train);
        // Ids that are not positions, to see them come back.
        db->query("UPDATE " + data::quoteIdentifier(rowsTable) + " SET id = id * 10 + 7");
        o = {};
        o.connection = testConnection();
        o.shape = {1, 28, 28};
        o.id = "id";
        source = data::loadSource("pg:\"" + rowsTable + "\"", o);
        train::TrainConfig c;
        c.epochs = 1;
        c.threads = 1;
        RecordingObserver events;
        const auto arch = model::loadArchitecture(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/mlp.json");
        model = train::train(c, arch, data::prepare(source, 0.2, 1, data::Normalizer::Mode::Scale01), events).model;
    }
    int64_t write(const std::string& table, data::IfExists mode) {
        return data::writePredictions(testConnection(), table, mode, model.predict(source.train), model.classNames(),
                                      source.ids, source.idType);
    }
    std::string scalar(const std::string& sql) { return db->query(sql).text(0, 0); }

    std::string rowsTable;
    data::LoadedSource source;
    train::TrainedModel model;
};

/// A table `table` of the first `rows` Fashion-MNIST rows (bytea, by id) and an MLP trained on
/// 1,000 of them and saved, for the command line: the `--data ...` flags that read the table, and
/// the model file (removed by the caller).
struct TableAndModel {
    std::string data, model;
};

TableAndModel tableAndModel(data::PgConnection& db, const std::string& table, int64_t rows) {
    setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1);
    data::SourceOptions o;
    o.limit = rows;
    createFashionTable(db, table, "bytea", data::loadSource(MPPDL_FASHION_MNIST_DIR, o).train);
    TableAndModel out;
    out.model = (std::filesystem::temp_directory_path() /
                 ("mppdl_" + table + "_" + std::to_string(getpid()) + ".model"))
                    .string();
    out.data = " --data pg:" + table + " --conn '" + std::string(std::getenv("MPPDL_TEST_PG")) +
               "' --id id --shape 1,28,28";
    const auto r = runMppdl("train" + out.data + " --arch mlp --epochs 1 --limit 1000 --no-project --quiet --save " +
                            out.model);
    EXPECT_EQ(r.code, 0) << r.out;
    return out;
}

} // namespace

TEST_F(PgPredictions, WritesEveryRowKeyedByTheSourceIds) {
    db->query("DROP TABLE IF EXISTS predicted");
    EXPECT_EQ(write("predicted", data::IfExists::Fail), 300);
    EXPECT_EQ(scalar("SELECT count(*) FROM predicted"), "300");
    // The ids join back to the source, with the source's type.
    EXPECT_EQ(scalar("SELECT count(*) FROM predicted p JOIN " + data::quoteIdentifier(rowsTable) + " r ON r.id = p.id"),
              "300");
    EXPECT_EQ(scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'predicted'::regclass "
                     "AND attname = 'id'"),
              "integer");
    // Probabilities sum to 1 and the predicted class is the most probable one, named.
    EXPECT_EQ(
        scalar("SELECT count(*) FROM predicted WHERE abs((SELECT sum(x) FROM unnest(probabilities) x) - 1) > 1e-4"),
        "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM predicted WHERE probabilities[predicted_index + 1] < "
                     "(SELECT max(x) FROM unnest(probabilities) x)"),
              "0");
    const auto predictions = model.predict(source.train);
    const int64_t k = predictions.predicted[0];
    EXPECT_EQ(scalar("SELECT predicted_class FROM predicted WHERE id = 7"), model.classNames()[size_t(k)]);
}

TEST_F(PgPredictions, IfExistsFailReplaceAppend) {
    db->query("DROP TABLE IF EXISTS predicted_again");
    write("predicted_again", data::IfExists::Fail);
    expectError<ConfigError>([&] { write("predicted_again", data::IfExists::Fail); },
                             {"predicted_again already exists", "--if-exists"});
    EXPECT_EQ(scalar("SELECT count(*) FROM predicted_again"), "300");
    write("predicted_again", data::IfExists::Append);
    EXPECT_EQ(scalar("SELECT count(*) FROM predicted_again"), "600");
    write("predicted_again", data::IfExists::Replace);
    EXPECT_EQ(scalar("SELECT count(*) FROM predicted_again"), "300");
    EXPECT_THROW(data::parseIfExists("overwrite"), ConfigError);
}

// A write that fails part-way leaves the table as it was: no half-written rows.
TEST_F(PgPredictions, AFailedWriteLeavesNothingBehind) {
    db->query("DROP TABLE IF EXISTS guarded");
    db->query("CREATE TABLE guarded (id integer, predicted_index integer CHECK (predicted_index < 0), "
              "predicted_class text, probabilities real[])");
    expectError<DataError>([&] { write("guarded", data::IfExists::Append); }, {"guarded", "check constraint"});
    EXPECT_EQ(scalar("SELECT count(*) FROM guarded"), "0");
    // Replacing it fails too (the new table has no constraint, but the ids cannot be cast): the old
    // table, constraint and all, is still there.
    db->query("INSERT INTO guarded VALUES (1, -1, 'x', '{1}')");
    auto ids = source.ids;
    ids[150] = "not a number";
    expectError<DataError>(
        [&] {
            data::writePredictions(testConnection(), "guarded", data::IfExists::Replace, model.predict(source.train),
                                   model.classNames(), ids, source.idType);
        },
        {"guarded", "invalid input syntax"});
    EXPECT_EQ(scalar("SELECT count(*) FROM guarded"), "1");
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_constraint WHERE conrelid = 'guarded'::regclass"), "1");
}

TEST_F(PgPredictions, OutputTableNamesAreNamesNotSql) {
    const std::string hostile = "x\"; drop table " + rowsTable + "; --";
    db->query("DROP TABLE IF EXISTS " + data::quoteIdentifier(hostile));
    write("\"x\"\"; drop table " + rowsTable + "; --\"", data::IfExists::Fail);
    EXPECT_EQ(scalar("SELECT count(*) FROM " + data::quoteIdentifier(hostile)), "300");
    EXPECT_EQ(scalar("SELECT count(*) FROM " + data::quoteIdentifier(rowsTable)), "300");
    expectError<ConfigError>([&] { write("a.b.c", data::IfExists::Fail); }, {"not TABLE or SCHEMA.TABLE"});
}

// Chunks appended in one transaction: the table of one write; dropped unfinished, nothing.
TEST_F(PgPredictions, ChunksAppendedInOneTransactionMakeTheSameTable) {
    for (const char* t : {"whole_write", "chunk_write", "never"})
        db->query(std::string("DROP TABLE IF EXISTS ") + t);
    write("whole_write", data::IfExists::Fail);
    {
        // The same predictions, cut into chunks (predicting chunks apart may round differently).
        const auto all = model.predict(source.train);
        data::PredictionTable table(testConnection(), "chunk_write", data::IfExists::Fail, true, source.idType);
        for (int64_t begin = 0; begin < all.rows; begin += 128) {
            const int64_t end = std::min<int64_t>(all.rows, begin + 128);
            data::Predictions part;
            part.rows = end - begin;
            part.classes = all.classes;
            part.probabilities.assign(all.probabilities.begin() + begin * all.classes,
                                      all.probabilities.begin() + end * all.classes);
            part.predicted.assign(all.predicted.begin() + begin, all.predicted.begin() + end);
            table.append(part, model.classNames(),
                         std::vector<std::string>(source.ids.begin() + begin, source.ids.begin() + end), begin);
        }
        EXPECT_EQ(table.commit(), 300);
    }
    EXPECT_EQ(scalar("SELECT count(*) FROM (SELECT * FROM whole_write EXCEPT SELECT * FROM chunk_write) d"), "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM chunk_write"), "300");
    {
        data::PredictionTable table(testConnection(), "never", data::IfExists::Fail, true, source.idType);
        table.append(model.predict(source.train.slice(0, 10)), model.classNames(),
                     std::vector<std::string>(source.ids.begin(), source.ids.begin() + 10), 0);
    }
    EXPECT_EQ(scalar("SELECT to_regclass('never') IS NULL"), "t");
}

// `predict --processes 2` back to a table: each process writes a part beside it, and the parts
// become the table in one transaction; on a failure (here the table exists) nothing is left.
TEST_F(PgPredictions, ProcessesWritePartsThatBecomeTheTableAtOnce) {
    const auto [data, modelFile] = tableAndModel(*db, "procs_rows", 3000);
    CliResult r;
    for (const char* t : {"procs_one", "procs_two"})
        db->query(std::string("DROP TABLE IF EXISTS ") + t);
    r = runMppdl("predict --model " + modelFile + data + " --threads 2 --out-table procs_one");
    ASSERT_EQ(r.code, 0) << r.out;
    r = runMppdl("predict --model " + modelFile + data + " --threads 2 --processes 2 --out-table procs_two");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("over 2 processes (process 0 1,500 rows, process 1 1,500 rows)"), std::string::npos) << r.out;
    EXPECT_EQ(scalar("SELECT count(*) FROM procs_two"), "3000");
    EXPECT_EQ(scalar("SELECT count(*) FROM procs_one a JOIN procs_two b USING (id) WHERE a.predicted_class = "
                     "b.predicted_class AND abs(a.probabilities[1] - b.probabilities[1]) < 1e-6"),
              "3000");
    const std::string parts = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'procs_two_mppdl_part_%'";
    EXPECT_EQ(scalar(parts), "0");

    r = runMppdl("predict --model " + modelFile + data + " --threads 2 --processes 2 --out-table procs_two");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("output table procs_two already exists"), std::string::npos) << r.out;
    EXPECT_EQ(scalar(parts), "0");
    EXPECT_EQ(scalar("SELECT count(*) FROM procs_two"), "3000");
    for (const char* t : {"procs_rows", "procs_one", "procs_two"})
        db->query(std::string("DROP TABLE ") + t);
    std::filesystem::remove(modelFile);
}

// `mppdl predict` of a table over the memory budget: read by id a chunk at a time, written back in
// one transaction; the same rows as predicting it whole.
TEST_F(PgPredictions, ATableOverTheBudgetStreamsBackInOneTransaction) {
    const auto [data, model] = tableAndModel(*db, "stream_rows", 6000);
    CliResult r;
    for (const char* t : {"stream_whole", "stream_chunks"})
        db->query(std::string("DROP TABLE IF EXISTS ") + t);
    r = runMppdl("predict --model " + model + data + " --segments 1 --out-table stream_whole");
    ASSERT_EQ(r.code, 0) << r.out;
    r = runMppdl("predict --model " + model + data + " --segments 1 --memory-budget 1M --out-table stream_chunks");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("streamed in 3 chunks"), std::string::npos) << r.out;
    EXPECT_EQ(scalar("SELECT count(*) FROM stream_chunks"), "6000");
    EXPECT_EQ(scalar("SELECT count(*) FROM (SELECT * FROM stream_whole EXCEPT SELECT * FROM stream_chunks) d"), "0");
    for (const char* t : {"stream_rows", "stream_whole", "stream_chunks"})
        db->query(std::string("DROP TABLE ") + t);
    std::filesystem::remove(model);
}

// New rows come without a label: a table without the label column is predicted by id, read whole
// and a chunk at a time, and the labelled table gives the same predictions with an evaluation.
TEST_F(PgPredictions, RowsWithoutALabelColumnArePredicted) {
    const auto [data, model] = tableAndModel(*db, "labelled_rows", 3000);
    db->query("DROP TABLE IF EXISTS new_rows");
    db->query("CREATE TABLE new_rows AS SELECT id, pixels FROM labelled_rows");
    const std::string fresh = " --data pg:new_rows --conn '" + std::string(std::getenv("MPPDL_TEST_PG")) +
                              "' --id id --shape 1,28,28";
    for (const char* t : {"scored", "scored_chunks", "scored_labelled"})
        db->query(std::string("DROP TABLE IF EXISTS ") + t);
    auto r = runMppdl("predict --model " + model + fresh + " --out-table scored");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("wrote 3,000 predictions"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("accuracy"), std::string::npos) << r.out;
    r = runMppdl("predict --model " + model + fresh + " --memory-budget 1M --out-table scored_chunks");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("chunks"), std::string::npos) << r.out;
    r = runMppdl("predict --model " + model + data + " --out-table scored_labelled --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out.substr(r.out.find('{')));
    EXPECT_EQ(j["evaluation"]["samples"], 3000) << r.out;
    const double right = std::stod(scalar("SELECT count(*) FROM scored s JOIN labelled_rows l USING (id) "
                                          "WHERE s.predicted_index = l.label"));
    EXPECT_NEAR(j["evaluation"]["accuracy"].get<double>(), right / 3000, 1e-12);
    for (const char* t : {"scored_chunks", "scored_labelled"})
        EXPECT_EQ(scalar(std::string("SELECT count(*) FROM (SELECT * FROM scored EXCEPT SELECT * FROM ") + t + ") d"),
                  "0")
            << t;
    for (const char* t : {"labelled_rows", "new_rows", "scored", "scored_chunks", "scored_labelled"})
        db->query(std::string("DROP TABLE ") + t);
    std::filesystem::remove(model);
}

// A NaN in a real[] is refused naming the row's id and the feature, and skipped with a count;
// an id on two rows is refused before anything is written.
TEST_F(PgPredictions, BadValuesAndDuplicateIdsAreNamed) {
    const auto [data, model] = tableAndModel(*db, "bad_rows", 1200);
    db->query("DROP TABLE IF EXISTS bad_real");
    db->query("CREATE TABLE bad_real AS SELECT id * 10 AS item_id, label, "
              "(SELECT array_agg(get_byte(pixels, k)::real ORDER BY k) FROM generate_series(0, 783) k) AS pixels "
              "FROM bad_rows");
    db->query("UPDATE bad_real SET pixels[6] = 'NaN' WHERE item_id = 170");
    db->query("UPDATE bad_real SET pixels[100] = 'Infinity' WHERE item_id = 420");
    const std::string source = " --data pg:bad_real --conn '" + std::string(std::getenv("MPPDL_TEST_PG")) +
                               "' --id item_id --shape 1,28,28";
    db->query("DROP TABLE IF EXISTS bad_scored");
    auto r = runMppdl("predict --model " + model + source + " --out-table bad_scored");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("the row whose item_id is 170: column 'pixels[6]' is NaN (2 such rows)"), std::string::npos)
        << r.out;
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'bad_scored'"), "0");
    r = runMppdl("predict --model " + model + source + " --on-bad-rows skip --out-table bad_scored");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("2 rows with a NaN or infinite feature left out"), std::string::npos) << r.out;
    EXPECT_EQ(scalar("SELECT count(*) FROM bad_scored"), "1198");
    EXPECT_EQ(scalar("SELECT count(*) FROM bad_scored WHERE id IN (170, 420)"), "0");
    // Training is refused the same way.
    r = runMppdl("train" + source + " --arch mlp --epochs 1 --no-project");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("item_id is 170"), std::string::npos) << r.out;

    db->query("UPDATE bad_real SET item_id = 30 WHERE item_id = 40");
    db->query("DROP TABLE IF EXISTS dup_scored");
    r = runMppdl("predict --model " + model + source + " --on-bad-rows skip --out-table dup_scored");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("the id '30' (--id item_id) is on more than one row"), std::string::npos) << r.out;
    EXPECT_EQ(scalar("SELECT count(*) FROM pg_tables WHERE tablename = 'dup_scored'"), "0");
    for (const char* t : {"bad_rows", "bad_real", "bad_scored"})
        db->query(std::string("DROP TABLE ") + t);
    std::filesystem::remove(model);
}

// A flat real[] of 784 values trains and predicts a 1x28x28 network without --shape, and says so;
// --ignore leaves a numeric column out of a table's features.
TEST_F(PgPredictions, AFlatArrayTakesTheNetworksShapeAndIgnoreLeavesColumnsOut) {
    const std::string table = "flat_rows";
    const std::string conn = " --conn '" + std::string(std::getenv("MPPDL_TEST_PG")) + "'";
    setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1);
    data::SourceOptions o;
    o.limit = 600;
    createFashionTable(*db, table, "real[]", data::loadSource(MPPDL_FASHION_MNIST_DIR, o).train);
    const auto model =
        (std::filesystem::temp_directory_path() / ("mppdl_flat_" + std::to_string(getpid()) + ".model")).string();
    auto r = runMppdl("train --data pg:" + table + conn + " --id id --arch lenet5 --epochs 1 --no-project --save " +
                      model);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("rows of 784 values taken as 1x28x28, the network's input"), std::string::npos) << r.out;
    db->query("DROP TABLE IF EXISTS flat_scored");
    r = runMppdl("predict --model " + model + " --data pg:" + table + conn + " --id id --out-table flat_scored");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(scalar("SELECT count(*) FROM flat_scored"), "600");

    db->query("DROP TABLE IF EXISTS flat_columns");
    db->query("CREATE TABLE flat_columns AS SELECT id, label, pixels[100] AS a, pixels[400] AS b, id * 3 AS serial "
              "FROM " +
              table);
    r = runMppdl("data show --data pg:flat_columns" + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("samples  3 float32"), std::string::npos) << r.out;
    r = runMppdl("data show --data pg:flat_columns" + conn + " --ignore serial");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("samples  2 float32"), std::string::npos) << r.out;
    r = runMppdl("data show --data pg:flat_columns" + conn + " --ignore serail");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("no column 'serail'"), std::string::npos) << r.out;
    for (const char* t : {"flat_rows", "flat_scored", "flat_columns"})
        db->query(std::string("DROP TABLE ") + t);
    std::filesystem::remove(model);
}
