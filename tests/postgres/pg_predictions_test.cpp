// Predictions written back to PostgreSQL: one transaction, --if-exists, ids that join back, names
// that stay names.

#include "pg_test_db.h"

#include "mppdl/core/error.h"
#include "mppdl/data/predictions.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/train/trainer.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

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
