// The server's catalog for `mppdl db ls`: its version (PostgreSQL or Greenplum), and its tables and
// views with their columns, from pg_class, pg_namespace and pg_attribute (the same catalog
// PostgreSQL 9.4-based Greenplum 6 has, so no information_schema and no columns newer than 9.4).

#include "mppdl/data/catalog.h"

#include "data/pg_connection.h"
#include "data/pg_read.h"

#include <libpq-fe.h>

#include <cstdlib>
#include <map>

namespace mppdl::data {

namespace {

constexpr const char* kWhere = "the PostgreSQL server";

std::string kindName(const std::string& relkind) {
    if (relkind == "r")
        return "table";
    if (relkind == "v")
        return "view";
    if (relkind == "m")
        return "materialized view";
    if (relkind == "p")
        return "partitioned table";
    if (relkind == "f")
        return "foreign table";
    return relkind;
}

/// "PostgreSQL 15.18" from "PostgreSQL 15.18 (Debian 15.18-1.pgdg120+1) on x86_64-pc-linux-gnu, ...";
/// "Greenplum Database 6.26.0 (PostgreSQL 9.4.26)" from
/// "PostgreSQL 9.4.26 (Greenplum Database 6.26.0 build commit:...) on ...".
std::string shortVersion(const std::string& full) {
    auto word = [&](size_t from, int words) {
        size_t end = from;
        for (int w = 0; w < words && end != std::string::npos; ++w) {
            end = full.find_first_not_of(' ', end);
            if (end != std::string::npos)
                end = full.find_first_of(" ),", end);
        }
        return full.substr(from, end == std::string::npos ? std::string::npos : end - from);
    };
    const std::string postgres = full.rfind("PostgreSQL ", 0) == 0 ? word(0, 2) : "";
    const size_t gp = full.find("Greenplum Database ");
    if (gp != std::string::npos)
        return word(gp, 3) + (postgres.empty() ? "" : " (" + postgres + ")");
    if (!postgres.empty())
        return postgres;
    return full.substr(0, full.find(" on ")); // another fork: its own words up to the platform
}

} // namespace

std::vector<TableInfo> listTables(const std::string& connection, const std::string& schema, const std::string& table) {
    PgConnection db(connection, kWhere);
    // reltuples: -1 = never analyzed on PostgreSQL 14 and later; before (and on Greenplum) an
    // unanalyzed table has 0 tuples on 0 pages, which reads as unknown too.
    const auto tables = db.query(
        "SELECT c.oid, n.nspname, c.relname, c.relkind, "
        "CASE WHEN c.relkind IN ('v', 'f') OR c.reltuples < 0 THEN -1 "
        "WHEN c.reltuples = 0 AND c.relpages = 0 AND current_setting('server_version_num')::int < 140000 THEN -1 "
        "ELSE c.reltuples::int8 END "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'v', 'm', 'p', 'f') "
        "AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema' "
        "AND NOT (n.nspname = 'gp_toolkit' AND version() LIKE '%Greenplum Database%') "
        "AND ($1::text = '' OR n.nspname::text = $1::text) AND ($2::text = '' OR c.relname::text = $2::text) "
        "ORDER BY n.nspname, c.relname",
        {schema, table});
    std::vector<TableInfo> out;
    std::map<std::string, size_t> byOid;
    std::string oids;
    for (int r = 0; r < tables.rows(); ++r) {
        TableInfo t;
        t.schema = tables.text(r, 1);
        t.name = tables.text(r, 2);
        t.kind = kindName(tables.text(r, 3));
        t.estimatedRows = std::stoll(tables.text(r, 4));
        byOid[tables.text(r, 0)] = out.size();
        oids += (oids.empty() ? "" : ",") + tables.text(r, 0);
        out.push_back(std::move(t));
    }
    if (out.empty())
        return out;
    const auto columns = db.query(
        "SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attrelid, a.attnum",
        {"{" + oids + "}"});
    for (int r = 0; r < columns.rows(); ++r) {
        const auto it = byOid.find(columns.text(r, 0));
        if (it != byOid.end())
            out[it->second].columns.emplace_back(columns.text(r, 1), columns.text(r, 2));
    }
    return out;
}

ServerInfo serverInfo(const std::string& connection) {
    PgConnection db(connection, kWhere);
    return serverInfo(db);
}

ServerInfo serverInfo(PgConnection& db) {
    ServerInfo info;
    info.connection = db.describe();
    const auto version = db.query("SELECT version()");
    info.fullVersion = version.rows() > 0 ? version.text(0, 0) : "";
    info.version = shortVersion(info.fullVersion);
    info.greenplum = info.fullVersion.find("Greenplum Database") != std::string::npos;
    if (info.greenplum) {
        // Primary segments only: content -1 is the coordinator (and its standby), role 'm' a mirror.
        const auto segments = db.query(
            "SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0");
        info.segments = segments.rows() > 0 ? std::stoi(segments.text(0, 0)) : 0;
    }
    return info;
}

} // namespace mppdl::data

namespace mppdl::data {

std::string describeServer(const std::string& connection) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(connection.c_str(), &error);
    if (!options) {
        std::string why = error ? error : "unreadable";
        PQfreemem(error);
        while (!why.empty() && why.back() == '\n')
            why.pop_back();
        return "an unreadable connection string (" + why + ")";
    }
    std::map<std::string, std::string> given;
    for (const PQconninfoOption* o = options; o->keyword; ++o)
        if (o->val && *o->val)
            given[o->keyword] = o->val;
    PQconninfoFree(options);
    // What libpq would use for what the string leaves out: the environment, then its defaults.
    const auto value = [&](const std::string& keyword, const char* variable, const std::string& fallback) {
        if (given.count(keyword))
            return given[keyword];
        const char* env = std::getenv(variable);
        return env && *env ? std::string(env) : fallback;
    };
    const char* login = std::getenv("USER");
    const std::string host = given.count("hostaddr") && !given.count("host") ? given["hostaddr"]
                                                                             : value("host", "PGHOST", "");
    const std::string user = value("user", "PGUSER", login ? login : "this login's name");
    const std::string port = value("port", "PGPORT", "5432");
    const std::string where = host.empty() || host.front() == '/'
                                  ? "the local socket" + (host.empty() ? "" : " in " + host)
                                  : host + ":" + port;
    return "user " + user + " at " + where + ", database " + value("dbname", "PGDATABASE", user);
}

} // namespace mppdl::data
