#include "data/pg_connection.h"

#include "mppdl/core/error.h"
#include "mppdl/data/catalog.h"
#include "mppdl/data/source.h"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include <poll.h>

namespace mppdl::data {

namespace {

std::string trimmed(const char* message) {
    std::string s = message ? message : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

} // namespace

std::string quoteIdentifier(const std::string& name) {
    std::string out = "\"";
    for (const char c : name) {
        if (c == '\0')
            throw ConfigError("an SQL name cannot contain a NUL character");
        out += c;
        if (c == '"')
            out += '"';
    }
    return out + "\"";
}

QualifiedName parseQualifiedName(const std::string& text, const std::string& what) {
    std::vector<std::string> parts(1);
    bool quoted = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '"') {
            if (quoted && i + 1 < text.size() && text[i + 1] == '"') {
                parts.back() += '"';
                ++i;
            } else {
                quoted = !quoted;
            }
        } else if (c == '.' && !quoted) {
            parts.emplace_back();
        } else {
            parts.back() += c;
        }
    }
    if (quoted || parts.size() > 2 ||
        std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); }))
        throw ConfigError(what + ": '" + text +
                          "' is not TABLE or SCHEMA.TABLE (quote a name that holds dots: \"a.b\")");
    if (parts.size() == 1)
        return {"", parts[0]};
    return {parts[0], parts[1]};
}

std::string quoteQualifiedName(const std::string& relation, const std::string& what) {
    const auto name = parseQualifiedName(relation, what);
    return (name.schema.empty() ? "" : quoteIdentifier(name.schema) + ".") + quoteIdentifier(name.table);
}

std::string copyText(const std::string& text) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '\t': out += "\\t"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        default: out += c;
        }
    }
    return out;
}

std::string connectionWithoutPassword(const std::string& connection) {
    if (connection.empty())
        return connection;
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(connection.c_str(), &error);
    if (!options) {
        PQfreemem(error);
        return "(an unreadable connection string)";
    }
    // The keywords that say where and how to connect, none of them a secret: anything else
    // (password, sslpassword, a keyword of a later libpq) is left out.
    static const std::set<std::string> kept = {"host",
                                               "hostaddr",
                                               "port",
                                               "dbname",
                                               "user",
                                               "passfile",
                                               "options",
                                               "application_name",
                                               "fallback_application_name",
                                               "connect_timeout",
                                               "client_encoding",
                                               "keepalives",
                                               "keepalives_idle",
                                               "keepalives_interval",
                                               "keepalives_count",
                                               "tcp_user_timeout",
                                               "sslmode",
                                               "sslcompression",
                                               "sslcert",
                                               "sslkey",
                                               "sslrootcert",
                                               "sslcrl",
                                               "sslcrldir",
                                               "sslsni",
                                               "requirepeer",
                                               "ssl_min_protocol_version",
                                               "ssl_max_protocol_version",
                                               "gssencmode",
                                               "krbsrvname",
                                               "gsslib",
                                               "service",
                                               "target_session_attrs",
                                               "channel_binding"};
    std::string out;
    for (PQconninfoOption* o = options; o->keyword; ++o) {
        if (!o->val || !kept.count(o->keyword))
            continue;
        std::string value = o->val;
        std::string quoted = "'";
        for (const char c : value) {
            if (c == '\'' || c == '\\')
                quoted += '\\';
            quoted += c;
        }
        out += (out.empty() ? "" : " ") + std::string(o->keyword) + "=" + quoted + "'";
    }
    PQconninfoFree(options);
    return out;
}

namespace {

std::atomic<const std::atomic<bool>*> g_readCancel{nullptr};

bool readCancelled() {
    const auto* flag = g_readCancel.load();
    return flag && flag->load();
}

/// Connects with `connection` over defaults that notice a lost server: listed first, so that what
/// the user's string (expanded at "dbname", last) sets wins.
PGconn* connectWithDefaults(const std::string& connection) {
    std::vector<const char*> keywords, values;
    if (!std::getenv("PGCONNECT_TIMEOUT")) {
        keywords.push_back("connect_timeout");
        values.push_back("10");
    }
    for (const auto& [key, value] : {std::pair<const char*, const char*>{"keepalives", "1"},
                                     {"keepalives_idle", "10"},
                                     {"keepalives_interval", "5"},
                                     {"keepalives_count", "3"},
                                     {"tcp_user_timeout", "30000"}}) {
        keywords.push_back(key);
        values.push_back(value);
    }
    keywords.push_back("dbname");
    values.push_back(connection.c_str());
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    return PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1);
}

/// Asks the server to stop what the connection runs (a COPY), as psql's Ctrl-C does.
void cancelOnServer(PGconn* conn) {
    if (PGcancel* cancel = PQgetCancel(conn)) {
        char error[256];
        PQcancel(cancel, error, sizeof error);
        PQfreeCancel(cancel);
    }
}

} // namespace

void setReadCancelFlag(const std::atomic<bool>* flag) { g_readCancel = flag; }

double readStallSeconds() {
    if (const char* env = std::getenv("MPPDL_PG_READ_TIMEOUT")) {
        char* end = nullptr;
        const double v = std::strtod(env, &end);
        if (end != env && v > 0)
            return v;
    }
    return 60;
}

PgConnection::PgConnection(const std::string& connection, const std::string& where) : m_where(where) {
    m_conn = connectWithDefaults(connection);
    if (PQstatus(m_conn) == CONNECTION_OK) {
        // The server's NOTICEs ("table ... does not exist, skipping") are not the user's business.
        PQsetNoticeProcessor(
            m_conn, [](void*, const char*) {}, nullptr);
        return;
    }
    const std::string message = trimmed(PQerrorMessage(m_conn));
    const std::string target = connection.empty() ? "the PG* environment's server"
                                                  : connectionWithoutPassword(connection);
    PQfinish(m_conn);
    m_conn = nullptr;
    if (message.find("no password supplied") != std::string::npos)
        throw ConfigError(where + ": the server at " + target +
                          " asks for a password: supply it with PGPASSWORD, a ~/.pgpass entry, or password= in "
                          "--conn (mppdl never writes it to the project)");
    if (message.find("password authentication failed") != std::string::npos)
        throw ConfigError(where + ": wrong password for " + target + " (" + message + ")");
    if (message.find("does not exist") != std::string::npos)
        throw ConfigError(where + ": " + message + " (connecting with " + target + ")");
    throw DataError(where + ": cannot connect to " + target + ": " + message);
}

PgConnection::~PgConnection() {
    if (m_conn)
        PQfinish(m_conn);
}

int PgConnection::Result::rows() const { return PQntuples(result.get()); }
std::string PgConnection::Result::text(int row, int column) const { return PQgetvalue(result.get(), row, column); }
bool PgConnection::Result::isNull(int row, int column) const { return PQgetisnull(result.get(), row, column) != 0; }

PgConnection::Result PgConnection::query(const std::string& sql, const std::vector<std::string>& parameters) {
    std::vector<const char*> values;
    for (const auto& p : parameters)
        values.push_back(p.c_str());
    if (!PQsendQueryParams(m_conn, sql.c_str(), int(values.size()), nullptr, values.data(), nullptr, nullptr, 0))
        throw DataError(m_where + ": " + trimmed(PQerrorMessage(m_conn)));
    const auto result = lastResult("running a query");
    const auto status = PQresultStatus(result.get());
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
        throw DataError(m_where + ": " + trimmed(PQresultErrorMessage(result.get())));
    return Result{result};
}

std::vector<std::pair<std::string, std::string>> PgConnection::describeColumns(const std::string& select) {
    // The unnamed statement: prepared and described, never executed.
    std::shared_ptr<PGresult> prepared(PQprepare(m_conn, "", select.c_str(), 0, nullptr), PQclear);
    if (PQresultStatus(prepared.get()) != PGRES_COMMAND_OK)
        throw DataError(m_where + ": " + trimmed(PQresultErrorMessage(prepared.get())));
    std::shared_ptr<PGresult> described(PQdescribePrepared(m_conn, ""), PQclear);
    if (PQresultStatus(described.get()) != PGRES_COMMAND_OK)
        throw DataError(m_where + ": " + trimmed(PQresultErrorMessage(described.get())));
    const int fields = PQnfields(described.get());
    if (fields == 0)
        return {};
    // Every column's type name in one round trip, however many columns the query has.
    std::string oids, modifiers;
    for (int c = 0; c < fields; ++c) {
        oids += (c ? "," : "{") + std::to_string(PQftype(described.get(), c));
        modifiers += (c ? "," : "{") + std::to_string(PQfmod(described.get(), c));
    }
    const auto types = query(
        "SELECT format_type(t, m) FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS c(t, m, i) "
        "ORDER BY i",
        {oids + "}", modifiers + "}"});
    std::vector<std::pair<std::string, std::string>> columns;
    for (int c = 0; c < fields; ++c)
        columns.emplace_back(PQfname(described.get(), c), types.text(c, 0));
    return columns;
}

void PgConnection::waitForServer(double stallSeconds, const std::string& doing) {
    // In quarter seconds: a Ctrl-C stops the wait within one; silence for `stallSeconds` fails it.
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
        if (readCancelled()) {
            cancelOnServer(m_conn);
            throw CancelledError("cancelled while " + doing + " from " + m_where);
        }
        pollfd p{PQsocket(m_conn), POLLIN, 0};
        const int ready = poll(&p, 1, 250);
        if (ready > 0) {
            if (!PQconsumeInput(m_conn))
                throw DataError(m_where + ": the connection failed while " + doing + ": " +
                                trimmed(PQerrorMessage(m_conn)));
            return;
        }
        if (ready < 0 && errno != EINTR)
            throw DataError(m_where + ": waiting for the server failed: " + std::strerror(errno));
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (waited >= stallSeconds) {
            cancelOnServer(m_conn);
            throw DataError(m_where + ": the server sent nothing for " + std::to_string(int(stallSeconds)) +
                            " s while " + doing +
                            ": its backend stopped answering ($MPPDL_PG_READ_TIMEOUT sets the "
                            "wait)");
        }
    }
}

std::shared_ptr<PGresult> PgConnection::nextResult(const std::string& doing, double stallSeconds) {
    while (PQisBusy(m_conn))
        waitForServer(stallSeconds, doing);
    return std::shared_ptr<PGresult>(PQgetResult(m_conn), PQclear);
}

std::shared_ptr<PGresult> PgConnection::lastResult(const std::string& doing) {
    std::shared_ptr<PGresult> last;
    while (auto next = nextResult(doing))
        last = next;
    return last;
}

void PgConnection::copyOut(const std::string& sql, const std::function<void(const char*, size_t)>& tuple) {
    {
        // Sent without waiting, then waited for as long as it takes (a sort before the first row
        // may take minutes) but cancellable with Ctrl-C; the stall timeout starts with the rows.
        if (!PQsendQuery(m_conn, sql.c_str()))
            throw DataError(m_where +
                            ": the server failed the COPY before sending any rows: " + trimmed(PQerrorMessage(m_conn)));
        const auto start = nextResult("starting to stream rows");
        if (PQresultStatus(start.get()) != PGRES_COPY_OUT)
            throw DataError(m_where + ": the server failed the COPY before sending any rows: " +
                            trimmed(PQresultErrorMessage(start.get())));
    }
    static constexpr char kSignature[] = "PGCOPY\n\377\r\n";
    bool header = true;
    int64_t tuples = 0;
    const double stall = readStallSeconds();
    for (;;) {
        char* buffer = nullptr;
        const int n = PQgetCopyData(m_conn, &buffer, /*async=*/1);
        if (n == 0) {
            waitForServer(stall, "streaming rows (after " + std::to_string(tuples) + " rows)");
            continue;
        }
        if (n == -1)
            break; // the end; the final result says whether it went well
        if (n == -2) {
            throw DataError(m_where + ": the connection failed while streaming rows (after " + std::to_string(tuples) +
                            " rows): " + trimmed(PQerrorMessage(m_conn)));
        }
        std::unique_ptr<char, decltype(&PQfreemem)> owned(buffer, PQfreemem);
        const char* p = buffer;
        size_t size = size_t(n);
        if (header) {
            // Signature, flags, header extension length (and the extension): 19 bytes at least.
            if (size < 19 || std::memcmp(p, kSignature, 11) != 0)
                throw DataError(m_where + ": not a binary COPY stream");
            const uint32_t extension = (uint32_t(uint8_t(p[15])) << 24) | (uint32_t(uint8_t(p[16])) << 16) |
                                       (uint32_t(uint8_t(p[17])) << 8) | uint32_t(uint8_t(p[18]));
            p += 19 + extension;
            size -= std::min(size, size_t(19 + extension));
            header = false;
            if (size == 0)
                continue;
        }
        if (size == 2 && uint8_t(p[0]) == 0xff && uint8_t(p[1]) == 0xff)
            continue; // the trailer
        tuple(p, size);
        ++tuples;
    }
    for (;;) {
        const auto end = nextResult("finishing the stream of rows", stall);
        if (!end)
            break;
        if (PQresultStatus(end.get()) != PGRES_COMMAND_OK)
            throw DataError(m_where + ": the server stopped streaming rows (after " + std::to_string(tuples) +
                            " rows): " + trimmed(PQresultErrorMessage(end.get())));
    }
}

void PgConnection::copyIn(const std::string& sql, const std::string& text) {
    {
        if (!PQsendQuery(m_conn, sql.c_str()))
            throw DataError(m_where + ": " + trimmed(PQerrorMessage(m_conn)));
        const auto start = nextResult("starting to send rows");
        if (PQresultStatus(start.get()) != PGRES_COPY_IN)
            throw DataError(m_where + ": " + trimmed(PQresultErrorMessage(start.get())));
    }
    // In pieces of at most 1 MiB: libpq buffers what it cannot send at once.
    constexpr size_t kPiece = 1 << 20;
    for (size_t at = 0; at < text.size(); at += kPiece)
        if (PQputCopyData(m_conn, text.data() + at, int(std::min(kPiece, text.size() - at))) != 1)
            throw DataError(m_where + ": the connection failed while sending rows: " + trimmed(PQerrorMessage(m_conn)));
    if (PQputCopyEnd(m_conn, nullptr) != 1)
        throw DataError(m_where + ": the connection failed while sending rows: " + trimmed(PQerrorMessage(m_conn)));
    std::string failure;
    while (const auto end = nextResult("finishing sending rows")) {
        if (PQresultStatus(end.get()) != PGRES_COMMAND_OK && failure.empty())
            failure = trimmed(PQresultErrorMessage(end.get()));
    }
    if (!failure.empty())
        throw DataError(m_where + ": " + failure);
}

std::string PgConnection::describe() const {
    return std::string("database ") + PQdb(m_conn) + " on " + PQhost(m_conn) + ":" + PQport(m_conn) + " as user " +
           PQuser(m_conn);
}

} // namespace mppdl::data
