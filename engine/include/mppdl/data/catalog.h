#pragma once

// What a PostgreSQL or Greenplum server holds: its version, and the tables and views a pg:TABLE
// source can read, with their columns. No libtorch and no libpq in this header. Built only with
// MPPDL_POSTGRES (MPPDL_WITH_POSTGRES is defined where it is).

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace mppdl::data {

/// What every connection's reads watch from now on: a COPY stops within a quarter of a second of
/// `*flag` becoming true (Ctrl-C), cancelled on the server (PQcancel), with a CancelledError.
/// Null: nothing. Set once by the front end.
void setReadCancelFlag(const std::atomic<bool>* flag);

/// Seconds a COPY waits for the server's next bytes before it gives up (cancelling it): a
/// backend that stops answering (stopped, or its host gone) fails the read instead of hanging it.
/// $MPPDL_PG_READ_TIMEOUT, else 60.
double readStallSeconds();

/// A table's name as a user writes it: "TABLE" or "SCHEMA.TABLE", parts quoted as in SQL where
/// they hold dots or quotes ("a.b"."c"), unquoted here. ConfigError naming `what` otherwise.
struct QualifiedName {
    std::string schema; ///< empty: the search path's
    std::string table;
};
QualifiedName parseQualifiedName(const std::string& text, const std::string& what);

struct TableInfo {
    std::string schema;
    std::string name;
    /// "table", "view", "materialized view", "partitioned table" or "foreign table".
    std::string kind;
    /// The planner's estimate (pg_class.reltuples); -1 when the server has none: never analyzed
    /// (PostgreSQL 14 and later keep -1 until the first VACUUM or ANALYZE; older servers, Greenplum
    /// included, keep 0 on an empty page count), or a view or foreign table.
    int64_t estimatedRows = -1;
    /// (name, type) in column order; types as format_type() writes them: "real[]", "bytea",
    /// "integer", "character varying(20)", ...
    std::vector<std::pair<std::string, std::string>> columns;
};

/// The user's tables and views (everything but the pg_* schemas, information_schema and, on
/// Greenplum, gp_toolkit), sorted by schema and name. `schema` and `table` (when not empty) keep
/// only that schema and that table name, compared as stored (case-sensitive, unquoted).
/// Connection errors as PgConnection throws them (ConfigError for a refused login, DataError for a
/// server that cannot be reached).
std::vector<TableInfo> listTables(const std::string& connection, const std::string& schema = "",
                                  const std::string& table = "");

struct ServerInfo {
    /// "PostgreSQL 15.18", or "Greenplum Database 6.26.0 (PostgreSQL 9.4.26)".
    std::string version;
    /// version() as the server writes it.
    std::string fullVersion;
    /// Where and as whom: "database mppdl_test on 127.0.0.1:5432 as user mppdl".
    std::string connection;
    /// version() names "Greenplum Database".
    bool greenplum = false;
    /// Greenplum: the primary segments that hold data,
    /// `SELECT count(*) FROM gp_segment_configuration WHERE role = 'p' AND content >= 0`
    /// (content -1 is the coordinator, role 'm' a mirror). 0 on PostgreSQL.
    int segments = 0;
};

ServerInfo serverInfo(const std::string& connection);

/// Where `connection` (a keyword string or URI) would connect, without connecting: "user mppdl at
/// db.example.com:5432, database warehouse", with libpq's defaults ($PGHOST, the local socket,
/// $PGUSER, the login name) for what it leaves out. For asking before connecting.
std::string describeServer(const std::string& connection);

} // namespace mppdl::data
