#pragma once

// Internal: one libpq connection with the errors a user can act on.

#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace mppdl::data {

/// `name` as an SQL identifier: always quoted, embedded quotes doubled, so that any string is a
/// name and never SQL.
std::string quoteIdentifier(const std::string& name);

/// "TABLE" or "SCHEMA.TABLE" (parts may be quoted as in SQL: "a.b"."c") as a quoted, qualified
/// name. ConfigError naming `what` when it is not one.
std::string quoteQualifiedName(const std::string& relation, const std::string& what);

/// `text` escaped for COPY's text format (backslash, tab, newline, carriage return).
std::string copyText(const std::string& text);

class PgConnection {
public:
    /// Connects with a libpq URI or keyword string (empty: the PG* environment variables;
    /// passwords also come from PGPASSWORD or ~/.pgpass). `where` names the source in errors.
    /// Unless the string (or PGCONNECT_TIMEOUT) sets them: connect_timeout 10 s, TCP keepalives
    /// (idle 10 s, every 5 s, 3 probes) and tcp_user_timeout 30 s, so a lost server is noticed.
    /// ConfigError when the server refuses (wrong or missing password, unknown database),
    /// DataError when it cannot be reached.
    PgConnection(const std::string& connection, const std::string& where);
    ~PgConnection();
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;

    struct Result {
        std::shared_ptr<PGresult> result;
        int rows() const;
        std::string text(int row, int column) const;
        bool isNull(int row, int column) const;
    };
    /// Runs one statement with text parameters ($1, $2, ...); DataError with the server's message.
    Result query(const std::string& sql, const std::vector<std::string>& parameters = {});

    /// The (name, format_type()) of each column `select` returns, as the server describes it
    /// without running it; DataError with the server's message (a syntax error, an unknown table).
    std::vector<std::pair<std::string, std::string>> describeColumns(const std::string& select);

    /// Runs `COPY ... TO STDOUT (FORMAT binary)` and hands each tuple (the bytes after the header)
    /// to `tuple`. A connection lost mid-stream is a DataError naming the source and the rows read.
    void copyOut(const std::string& sql, const std::function<void(const char*, size_t)>& tuple);

    /// Sends `text` (COPY text format) to `COPY ... FROM STDIN`; DataError with the server's message.
    void copyIn(const std::string& sql, const std::string& text);

    /// What errors name from now on (a shard of the source, say).
    void setWhere(std::string where) { m_where = std::move(where); }

    /// "database mppdl on 127.0.0.1:5432 as user mppdl", for messages.
    std::string describe() const;
    PGconn* raw() const { return m_conn; }

private:
    /// Waits for the server to send more (see readStallSeconds(), setReadCancelFlag()); `doing`
    /// says what for in the errors ("streaming rows (after 120 rows)").
    void waitForServer(double stallSeconds, const std::string& doing);
    /// The next result of a query sent with PQsend*, waited for as above (null after the last):
    /// by default as long as it takes (a query may compute for long before it answers), always
    /// cancellable with Ctrl-C.
    std::shared_ptr<PGresult> nextResult(const std::string& doing,
                                         double stallSeconds = std::numeric_limits<double>::infinity());
    /// Every result of it, the last kept.
    std::shared_ptr<PGresult> lastResult(const std::string& doing);

    PGconn* m_conn = nullptr;
    std::string m_where;
};

} // namespace mppdl::data
