// PostgreSQL tables as a data source, against the throwaway server of packaging/test.sh: each
// layout reads the rows the IDX files hold, training from a table repeats training from the files,
// and bad connections, tables, columns and rows get errors that say what is wrong.

#include "pg_test_db.h"

#include "mppdl/core/error.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/train/trainer.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <thread>

using namespace mppdl;

namespace {

constexpr int64_t kRows = 1200;

const data::LoadedSource& idxRows() {
    static const data::LoadedSource source = fashionRows(kRows);
    return source;
}

class PgSource : public PgTest {};

} // namespace

// Fashion-MNIST in each layout reads back as the IDX rows: same pixels, same labels, so the same
// shards and the same first epoch as training from the files with the same seed.
TEST_F(PgSource, EveryLayoutReadsTheIdxRowsAndTrainsTheSame) {
    const auto& idx = idxRows();
    train::TrainConfig config;
    config.epochs = 1;
    config.batchSize = 64;
    config.optimizer.lr = 0.05;
    config.seed = 4;
    config.threads = 1;
    const auto arch = model::loadArchitecture(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/lenet5.json");
    auto firstEpoch = [&](const data::LoadedSource& source) {
        RecordingObserver events;
        const auto prepared = data::prepare(source, 0.2, config.seed, data::Normalizer::Mode::Scale01);
        train::train(config, arch, prepared, events);
        for (const auto& e : events.events())
            if (e.kind == EventKind::Epoch)
                return std::make_pair(e.metric("train_loss"), e.metric("val_accuracy"));
        return std::make_pair(-1.0, -1.0);
    };
    const auto reference = firstEpoch(idx);

    for (const std::string layout : {"real[]", "bytea", "columns"}) {
        const std::string table = "fmnist_" + std::string(layout == "real[]" ? "real" : layout);
        createFashionTable(*db, table, layout, idx.train);
        const auto pg = data::loadSource("pg:" + table, fashionTableOptions());
        EXPECT_EQ(pg.kind, "pg");
        ASSERT_EQ(pg.train.size(), kRows) << layout;
        EXPECT_EQ(pg.train.sampleShape(), idx.train.sampleShape()) << layout;
        EXPECT_TRUE(torch::equal(pg.train.features().to(torch::kFloat), idx.train.features().to(torch::kFloat)))
            << layout;
        EXPECT_TRUE(torch::equal(pg.train.labels(), idx.train.labels())) << layout;
        const auto a = data::distribute(pg.train, 4, "random", 7), b = data::distribute(idx.train, 4, "random", 7);
        for (size_t s = 0; s < 4; ++s)
            EXPECT_TRUE(torch::equal(a[s], b[s])) << layout << " segment " << s;
        const auto metrics = firstEpoch(pg);
        EXPECT_EQ(metrics.first, reference.first) << layout << ": first-epoch train loss";
        EXPECT_EQ(metrics.second, reference.second) << layout << ": first-epoch validation accuracy";
    }
}

TEST_F(PgSource, TextLabelsBecomeSortedClasses) {
    createFashionTable(*db, "fmnist_text", "real[]", idxRows().train, /*textLabels=*/true);
    const auto pg = data::loadSource("pg:fmnist_text", fashionTableOptions());
    auto names = idxRows().train.classNames();
    std::sort(names.begin(), names.end());
    EXPECT_EQ(pg.train.classNames(), names);
    // Each row's class name is the one the IDX row has.
    for (int64_t r = 0; r < 50; ++r)
        EXPECT_EQ(pg.train.classNames()[size_t(pg.train.labels()[r].item<int64_t>())],
                  idxRows().train.classNames()[size_t(idxRows().train.labels()[r].item<int64_t>())]);
}

TEST_F(PgSource, BadTablesColumnsAndRowsAreNamed) {
    createFashionTable(*db, "fmnist_small", "real[]", idxRows().train.slice(0, 20));
    auto o = fashionTableOptions();
    expectError<ConfigError>([&] { data::loadSource("pg:no_such_table", o); }, {"pg:no_such_table", "no table"});
    o.label = "class";
    expectError<ConfigError>([&] { data::loadSource("pg:fmnist_small", o); },
                             {"no label column 'class'", "pixels real[]"});
    o = fashionTableOptions();
    o.features = {"nope"};
    expectError<ConfigError>([&] { data::loadSource("pg:fmnist_small", o); }, {"no column 'nope'"});
    db->query("CREATE TABLE IF NOT EXISTS real_labels (id integer, label real, pixels real[])");
    expectError<ConfigError>([&] { data::loadSource("pg:real_labels", fashionTableOptions()); },
                             {"label column 'label' is real"});
    // A row whose array is short: named by its position in id order.
    db->query("UPDATE fmnist_small SET pixels = pixels[1:783] WHERE id = 7");
    expectError<DataError>([&] { data::loadSource("pg:fmnist_small", fashionTableOptions()); },
                           {"pg:fmnist_small, row 8 in id order", "783 feature values", "784"});
    db->query("UPDATE fmnist_small SET pixels = NULL WHERE id = 7");
    expectError<DataError>([&] { data::loadSource("pg:fmnist_small", fashionTableOptions()); }, {"row 8", "NULL"});
}

TEST_F(PgSource, PasswordsAreAskedForAndNeverRecorded) {
    const std::string noPassword = std::getenv("MPPDL_TEST_PG");
    unsetenv("PGPASSWORD");
    auto o = fashionTableOptions();
    o.connection = noPassword + " passfile=/nonexistent";
    expectError<ConfigError>([&] { data::loadSource("pg:fmnist_real", o); }, {"asks for a password", "PGPASSWORD"});
    o.connection = noPassword + " password=wrong passfile=/nonexistent";
    expectError<ConfigError>([&] { data::loadSource("pg:fmnist_real", o); }, {"wrong password"});

    const auto kept = data::connectionWithoutPassword("host=h port=5 user=u password=secret dbname=d");
    EXPECT_EQ(kept.find("secret"), std::string::npos) << kept;
    EXPECT_NE(kept.find("dbname='d'"), std::string::npos) << kept;
    const auto ssl = data::connectionWithoutPassword("host=h sslkey=/k.pem sslpassword=keysecret user=u");
    EXPECT_EQ(ssl.find("keysecret"), std::string::npos) << ssl;
    EXPECT_NE(ssl.find("sslkey='/k.pem'"), std::string::npos) << ssl;
    const auto uri = data::connectionWithoutPassword("postgresql://u:secret@h:5/d?sslmode=require");
    EXPECT_EQ(uri.find("secret"), std::string::npos) << uri;
    EXPECT_NE(uri.find("sslmode='require'"), std::string::npos) << uri;
    // The recorded configuration keeps the connection without the password.
    train::TrainConfig c;
    c.data.source.connection = noPassword + " password=secret";
    EXPECT_EQ(train::toJson(c).find("secret"), std::string::npos);
    EXPECT_EQ(train::trainConfigFromJson(train::toJson(c)).data.source.connection,
              data::connectionWithoutPassword(noPassword));
}

// A hostile table name is a name: quoted, never spliced into SQL.
TEST_F(PgSource, TableNamesAreNamesNotSql) {
    const std::string hostile = "x\"; drop table fmnist_guard; --";
    createFashionTable(*db, "fmnist_guard", "real[]", idxRows().train.slice(0, 5));
    createFashionTable(*db, hostile, "real[]", idxRows().train.slice(0, 5));
    auto o = fashionTableOptions();
    const auto pg = data::loadSource("pg:\"" + std::string("x\"\"; drop table fmnist_guard; --") + "\"", o);
    EXPECT_EQ(pg.train.size(), 5);
    EXPECT_EQ(db->query("SELECT count(*) FROM fmnist_guard").text(0, 0), "5") << "the guard table must survive";
    expectError<ConfigError>([&] { data::loadSource("pg:fmnist_guard; drop table fmnist_guard", o); }, {"no table"});
    EXPECT_EQ(db->query("SELECT count(*) FROM fmnist_guard").text(0, 0), "5");
}

// The server ends the session mid-stream: a DataError that names the source and what was read.
TEST_F(PgSource, ConnectionTerminatedMidStreamIsADataError) {
    createFashionTable(*db, "fmnist_slow_rows", "real[]", idxRows().train.slice(0, 400));
    // A view that streams slowly (5 ms a row, 2 s in all), so that the stream is under way when it is
    // cut. The sleep is in the select list, evaluated per row (an uncorrelated LATERAL subquery
    // would run once); its text column is no feature.
    db->query("DROP VIEW IF EXISTS fmnist_slow");
    db->query(
        "CREATE VIEW fmnist_slow AS SELECT id, label, pixels, pg_sleep(0.005)::text AS pause FROM fmnist_slow_rows");
    auto o = fashionTableOptions();
    o.connection += " application_name=mppdl_victim";
    BackendKiller killer("mppdl_victim", "COPY%");
    try {
        data::loadSource("pg:fmnist_slow", o);
        ADD_FAILURE() << "the stream was not cut";
    } catch (const DataError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("pg:fmnist_slow"), std::string::npos) << what;
        EXPECT_NE(what.find("rows"), std::string::npos) << what;
        EXPECT_NE(what.find("terminat"), std::string::npos) << what;
    }
}
