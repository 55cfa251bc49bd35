// mppdl db ls against the throwaway server of packaging/test.sh: the catalog (listTables,
// serverInfo) and the command. Only the PostgreSQL branch of serverInfo runs here; Greenplum's
// segment count (gp_segment_configuration) needs a Greenplum cluster.

#include "pg_test_db.h"

#include "mppdl/core/error.h"
#include "mppdl/data/catalog.h"
#include "mppdl/data/source.h"

#include "support/expect_error.h"
#include "support/run_cli.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>

using namespace mppdl;

namespace {

const data::LoadedSource& idxRows() {
    static const data::LoadedSource source = [] {
        data::SourceOptions o;
        o.limit = 20;
        return data::loadSource(MPPDL_FASHION_MNIST_DIR, o);
    }();
    return source;
}

const data::TableInfo* findTable(const std::vector<data::TableInfo>& tables, const std::string& schema,
                                 const std::string& name) {
    for (const auto& t : tables)
        if (t.schema == schema && t.name == name)
            return &t;
    return nullptr;
}

using Columns = std::vector<std::pair<std::string, std::string>>;

class DbLs : public PgTest {};

} // namespace

TEST_F(DbLs, ListsTablesAndViewsWithTheirColumns) {
    createFashionTable(*db, "dbls_real", "real[]", idxRows().train);
    createFashionTable(*db, "dbls_bytea", "bytea", idxRows().train, /*textLabels=*/true);
    createFashionTable(*db, "dbls_columns", "columns", idxRows().train.slice(0, 3));
    db->query("ANALYZE dbls_real");
    db->query("CREATE OR REPLACE VIEW dbls_view AS SELECT id, label FROM dbls_real");
    db->query("CREATE SCHEMA IF NOT EXISTS dbls_schema");
    db->query("DROP TABLE IF EXISTS dbls_schema.\"Mixed Case\"");
    db->query("CREATE TABLE dbls_schema.\"Mixed Case\" (id bigint, name character varying(20), x double precision[])");

    const auto tables = data::listTables(testConnection());
    const auto* real = findTable(tables, "public", "dbls_real");
    ASSERT_NE(real, nullptr);
    EXPECT_EQ(real->kind, "table");
    EXPECT_EQ(real->estimatedRows, 20) << "analyzed: every row sampled";
    EXPECT_EQ(real->columns, (Columns{{"id", "integer"}, {"label", "integer"}, {"pixels", "real[]"}}));
    const auto* bytea = findTable(tables, "public", "dbls_bytea");
    ASSERT_NE(bytea, nullptr);
    EXPECT_EQ(bytea->columns, (Columns{{"id", "integer"}, {"label", "text"}, {"pixels", "bytea"}}));
    const auto* columns = findTable(tables, "public", "dbls_columns");
    ASSERT_NE(columns, nullptr);
    ASSERT_EQ(columns->columns.size(), 2u + 784u);
    EXPECT_EQ(columns->columns[2], (std::pair<std::string, std::string>{"p0", "smallint"}));
    EXPECT_EQ(columns->columns.back(), (std::pair<std::string, std::string>{"p783", "smallint"}));
    const auto* view = findTable(tables, "public", "dbls_view");
    ASSERT_NE(view, nullptr);
    EXPECT_EQ(view->kind, "view");
    EXPECT_EQ(view->estimatedRows, -1);
    EXPECT_EQ(view->columns, (Columns{{"id", "integer"}, {"label", "integer"}}));
    const auto* mixed = findTable(tables, "dbls_schema", "Mixed Case");
    ASSERT_NE(mixed, nullptr);
    EXPECT_EQ(mixed->columns,
              (Columns{{"id", "bigint"}, {"name", "character varying(20)"}, {"x", "double precision[]"}}));
    for (const auto& t : tables) {
        EXPECT_NE(t.schema.rfind("pg_", 0), 0u) << t.schema << "." << t.name;
        EXPECT_NE(t.schema, "information_schema") << t.name;
    }
    EXPECT_TRUE(std::is_sorted(tables.begin(), tables.end(), [](const data::TableInfo& a, const data::TableInfo& b) {
        return std::tie(a.schema, a.name) < std::tie(b.schema, b.name);
    }));

    // Filters: a schema, a table name as stored (no quoting, no SQL).
    const auto inSchema = data::listTables(testConnection(), "dbls_schema");
    ASSERT_EQ(inSchema.size(), 1u);
    EXPECT_EQ(inSchema[0].name, "Mixed Case");
    const auto one = data::listTables(testConnection(), "", "dbls_real");
    ASSERT_EQ(one.size(), 1u);
    EXPECT_EQ(one[0].columns.size(), 3u);
    EXPECT_TRUE(data::listTables(testConnection(), "", "dbls_real' OR ''='").empty());
    EXPECT_TRUE(data::listTables(testConnection(), "no_such_schema").empty());
}

TEST_F(DbLs, ServerInfoOnPostgreSQL) {
    const auto info = data::serverInfo(testConnection());
    EXPECT_FALSE(info.greenplum);
    EXPECT_EQ(info.segments, 0);
    EXPECT_EQ(info.version.rfind("PostgreSQL ", 0), 0u) << info.version;
    EXPECT_EQ(info.version.find(' ', 11), std::string::npos) << "only the name and number: " << info.version;
    EXPECT_EQ(info.fullVersion.rfind(info.version, 0), 0u) << info.fullVersion;
    EXPECT_NE(info.connection.find("database mppdl_test"), std::string::npos) << info.connection;
}

TEST_F(DbLs, RefusedLoginsAreConfigErrors) {
    unsetenv("PGPASSWORD");
    const std::string noPassword = std::getenv("MPPDL_TEST_PG");
    expectError<ConfigError>([&] { data::serverInfo(noPassword + " password=wrong passfile=/nonexistent"); },
                             {"wrong password"});
    expectError<ConfigError>([&] { data::listTables(noPassword + " passfile=/nonexistent"); }, {"asks for a password"});
}

TEST_F(DbLs, Command) {
    createFashionTable(*db, "dbls_cli", "real[]", idxRows().train);
    const std::string conn = std::string(" --conn '") + std::getenv("MPPDL_TEST_PG") + "'";
    setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1);

    auto r = runMppdl("db ls" + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.rfind("PostgreSQL ", 0), 0u) << r.out;
    EXPECT_NE(r.out.find("database mppdl_test"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("~rows"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("dbls_cli"), std::string::npos) << r.out;

    r = runMppdl("db ls public.dbls_cli" + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("public.dbls_cli: table"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("real[]"), std::string::npos) << r.out;

    r = runMppdl("db ls dbls_cli --json" + conn);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["server"]["greenplum"], false);
    ASSERT_EQ(j["tables"].size(), 1u);
    EXPECT_EQ(j["tables"][0]["columns"][2]["type"], "real[]");

    r = runMppdl("db ls no_such_table" + conn);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no table or view 'no_such_table'"), std::string::npos) << r.out;

    unsetenv("PGPASSWORD");
    r = runMppdl("db ls --conn '" + std::string(std::getenv("MPPDL_TEST_PG")) +
                 " password=wrong passfile=/nonexistent'");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("wrong password"), std::string::npos) << r.out;
}
