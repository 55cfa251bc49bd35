#include "store/schema.h"
#include "store/sqlite.h"

#include "mppdl/core/error.h"
#include "mppdl/store/project.h"
#include "store/store_test_support.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mppdl;
using namespace mppdl::store;
using namespace mppdl::store::testing;

namespace {

// A schema history for the runner alone: each step leaves a trace the tests can look for.
const std::vector<Migration>& threeSteps() {
    static const std::vector<Migration> steps = {
        {1, "CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);"},
        {2, "CREATE TABLE b (y TEXT); ALTER TABLE a ADD COLUMN z TEXT DEFAULT 'two';"},
        {3, "CREATE TABLE c (w REAL); INSERT INTO c VALUES (3.5);"},
    };
    return steps;
}

sqlite::Database openFile(const std::string& path) {
    return sqlite::Database(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, path);
}

std::vector<std::string> tables(const std::string& path) {
    RawDb raw(path);
    return raw.column("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
}

} // namespace

TEST(StoreMigrate, AppliesEveryStepToAFreshFile) {
    TempDir dir;
    const auto path = dir.file("fresh.db");
    {
        auto db = openFile(path);
        EXPECT_EQ(userVersion(db), 0);
        EXPECT_EQ(migrate(db, threeSteps()), 3);
        EXPECT_EQ(userVersion(db), 3);
    }
    EXPECT_EQ(tables(path), (std::vector<std::string>{"a", "b", "c"}));
    RawDb raw(path);
    EXPECT_EQ(raw.value("SELECT z FROM a"), "two");
    EXPECT_EQ(raw.value("PRAGMA user_version"), "3");
}

TEST(StoreMigrate, AppliesOnlyTheStepsAboveTheFileVersion) {
    TempDir dir;
    const auto path = dir.file("v1.db");
    auto db = openFile(path);
    const std::vector<Migration> firstOnly(threeSteps().begin(), threeSteps().begin() + 1);
    EXPECT_EQ(migrate(db, firstOnly), 1);
    EXPECT_EQ(userVersion(db), 1);
    db.exec("INSERT INTO a VALUES (42)", "add a row");

    EXPECT_EQ(migrate(db, threeSteps()), 2);
    EXPECT_EQ(userVersion(db), 3);
    // Step 1 did not run again (it would have added a second row with x = 1).
    EXPECT_EQ(db.queryInt("SELECT count(*) FROM a", "count"), 2);
    EXPECT_EQ(db.queryInt("SELECT count(*) FROM a WHERE x = 42", "count"), 1);
}

TEST(StoreMigrate, IsIdempotentOnACurrentFile) {
    TempDir dir;
    const auto path = dir.file("current.db");
    auto db = openFile(path);
    ASSERT_EQ(migrate(db, threeSteps()), 3);
    int hookCalls = 0;
    EXPECT_EQ(migrate(db, threeSteps(), [&](sqlite::Database&, int, int) { ++hookCalls; }), 0);
    EXPECT_EQ(hookCalls, 0);
    EXPECT_EQ(userVersion(db), 3);
    EXPECT_EQ(db.queryInt("SELECT count(*) FROM c", "count"), 1);
}

TEST(StoreMigrate, AFailingStepRollsEverythingBack) {
    TempDir dir;
    const auto path = dir.file("failing.db");
    auto broken = threeSteps();
    broken[2].sql = "CREATE TABLE c (w REAL); INSERT INTO no_such_table VALUES (1);";

    auto db = openFile(path);
    expectError<StorageError>([&] { migrate(db, broken); },
                              {path, "cannot upgrade it to project schema 3", "no such table: no_such_table"});
    EXPECT_EQ(userVersion(db), 0);
    EXPECT_TRUE(tables(path).empty()) << "steps 1 and 2 were not rolled back";

    // From version 1 the same: steps 2 and 3 vanish, version 1 stays.
    const std::vector<Migration> firstOnly(threeSteps().begin(), threeSteps().begin() + 1);
    ASSERT_EQ(migrate(db, firstOnly), 1);
    expectError<StorageError>([&] { migrate(db, broken); }, {path, "schema 3"});
    EXPECT_EQ(userVersion(db), 1);
    EXPECT_EQ(tables(path), (std::vector<std::string>{"a"}));
    EXPECT_TRUE(db.autocommit()) << "the failed migration left a transaction open";
}

TEST(StoreMigrate, TheHookRunsInTheSameTransaction) {
    TempDir dir;
    auto db = openFile(dir.file("hook.db"));
    int seenFrom = -1, seenTo = -1;
    EXPECT_EQ(migrate(db, threeSteps(),
                      [&](sqlite::Database& d, int from, int to) {
                          seenFrom = from;
                          seenTo = to;
                          d.exec("INSERT INTO b VALUES ('hooked')", "record");
                      }),
              3);
    EXPECT_EQ(seenFrom, 0);
    EXPECT_EQ(seenTo, 3);
    EXPECT_EQ(db.queryInt("SELECT count(*) FROM b", "count"), 1);

    // A hook that fails undoes the steps as well.
    TempDir other;
    auto fresh = openFile(other.file("hook-fails.db"));
    EXPECT_THROW(migrate(fresh, threeSteps(), [](sqlite::Database&, int, int) { throw StorageError("hook failed"); }),
                 StorageError);
    EXPECT_EQ(userVersion(fresh), 0);
    EXPECT_EQ(fresh.queryInt("SELECT count(*) FROM sqlite_master", "count"), 0);
}

TEST(StoreMigrate, RefusesAFileNewerThanItsSteps) {
    TempDir dir;
    const auto path = dir.file("newer.db");
    auto db = openFile(path);
    db.exec("PRAGMA user_version = 7", "set the version");
    expectError<StorageError>([&] { migrate(db, threeSteps()); }, {path, "schema 7", "newer"});
    EXPECT_EQ(userVersion(db), 7);
}

TEST(StoreMigrate, RefusesStepsOutOfOrder) {
    TempDir dir;
    auto db = openFile(dir.file("order.db"));
    const std::vector<Migration> unordered = {{2, "CREATE TABLE a (x)"}, {1, "CREATE TABLE b (x)"}};
    EXPECT_THROW(migrate(db, unordered), InternalError);
    const std::vector<Migration> zero = {{0, "CREATE TABLE a (x)"}};
    EXPECT_THROW(migrate(db, zero), InternalError);
    EXPECT_EQ(userVersion(db), 0);
}

TEST(StoreSchema, TheProjectSchemaCreatesItsTables) {
    EXPECT_EQ(currentSchemaVersion(), 1);
    EXPECT_EQ(projectMigrations().back().toVersion, currentSchemaVersion());

    TempDir dir;
    const auto path = dir.file("schema.db");
    {
        auto db = openFile(path);
        EXPECT_EQ(migrate(db, projectMigrations()), 1);
    }
    auto present = tables(path);
    for (const auto& table : projectTables())
        EXPECT_NE(std::find(present.begin(), present.end(), table), present.end()) << table;

    RawDb raw(path);
    EXPECT_EQ(raw.value("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), "1");
    EXPECT_EQ(raw.value("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'metrics_run_step'"), "1");
    // Every child of a run goes with it.
    for (const std::string table : {"metrics", "checkpoints", "evaluations"})
        EXPECT_EQ(raw.value("SELECT on_delete FROM pragma_foreign_key_list('" + table + "') WHERE \"table\" = 'runs'"),
                  "CASCADE")
            << table;
}

TEST(StoreSqlite, ErrorsNameTheFileAndCarrySqlitesMessage) {
    TempDir dir;
    const auto path = dir.file("errors.db");
    auto db = openFile(path);
    expectError<StorageError>([&] { db.exec("SELECT * FROM nowhere", "read nowhere"); },
                              {path + ": cannot read nowhere: no such table: nowhere"});
    expectError<StorageError>([&] { sqlite::Statement(db, "SELEC 1"); }, {path, "syntax error"});

    db.exec("CREATE TABLE t (x INTEGER NOT NULL)", "create");
    sqlite::Statement insert(db, "INSERT INTO t VALUES (?)");
    expectError<StorageError>([&] { insert.bind(1, std::nullopt).run(); }, {path, "NOT NULL constraint failed"});

    expectError<StorageError>(
        [&] { sqlite::Database(dir.file("missing/dir/x.db"), SQLITE_OPEN_READWRITE, "the-label"); },
        {"the-label: cannot open it"});
}

TEST(StoreSqlite, BindsAndReadsEveryKindOfValue) {
    TempDir dir;
    auto db = openFile(dir.file("values.db"));
    db.exec("CREATE TABLE v (i INTEGER, r REAL, t TEXT, b BLOB, n REAL)", "create");
    const std::string blob("\0\1\2binary\0", 10);
    sqlite::Statement insert(db, "INSERT INTO v VALUES (?, ?, ?, ?, ?)");
    insert.bindAll(int64_t(1) << 40, 2.5, std::string("text \xc3\xa9"));
    insert.bindBlob(4, blob).bind(5, std::nan("")).run();
    insert.bindAll(0, std::optional<double>(), std::optional<int64_t>());
    insert.bindBlob(4, std::string()).bind(5, std::optional<double>(1.5)).run();

    sqlite::Statement query(db, "SELECT i, r, t, b, n, typeof(b) FROM v ORDER BY rowid");
    ASSERT_TRUE(query.step());
    EXPECT_EQ(query.integer(0), int64_t(1) << 40);
    EXPECT_EQ(query.real(1), 2.5);
    EXPECT_EQ(query.text(2), "text \xc3\xa9");
    EXPECT_EQ(query.blob(3), blob);
    EXPECT_TRUE(std::isnan(query.real(4)));
    EXPECT_FALSE(query.optionalReal(4));
    ASSERT_TRUE(query.step());
    EXPECT_TRUE(query.isNull(1));
    EXPECT_FALSE(query.optionalInteger(2));
    EXPECT_EQ(query.text(2), "");
    EXPECT_EQ(query.blob(3), "");
    EXPECT_EQ(query.text(5), "blob") << "an empty blob must not become NULL";
    EXPECT_EQ(query.optionalReal(4), 1.5);
    EXPECT_FALSE(query.step());
}

TEST(StoreSqlite, ATransactionRollsBackUnlessCommitted) {
    TempDir dir;
    auto db = openFile(dir.file("tx.db"));
    db.exec("CREATE TABLE t (x)", "create");
    try {
        sqlite::Transaction transaction(db);
        db.exec("INSERT INTO t VALUES (1)", "insert");
        throw std::runtime_error("stop");
    } catch (const std::runtime_error&) {
    }
    EXPECT_TRUE(db.autocommit());
    EXPECT_EQ(db.queryInt("SELECT count(*) FROM t", "count"), 0);
    {
        sqlite::Transaction transaction(db);
        db.exec("INSERT INTO t VALUES (1)", "insert");
        transaction.commit();
    }
    EXPECT_EQ(db.queryInt("SELECT count(*) FROM t", "count"), 1);
}
