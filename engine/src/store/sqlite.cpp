#include "store/sqlite.h"

#include "mppdl/core/error.h"

#include <cmath>
#include <limits>
#include <utility>

namespace mppdl::store::sqlite {

bool isCorruption(int code) {
    const int primary = code & 0xff;
    return primary == SQLITE_CORRUPT || primary == SQLITE_NOTADB;
}

namespace {

[[noreturn]] void throwFor(int code, const std::string& message, const std::string& label, const std::string& what) {
    if (isCorruption(code))
        throw StorageError(label + " is corrupt: cannot " + what + ": " + message);
    std::string hint;
    if ((code & 0xff) == SQLITE_BUSY)
        hint = " (another process kept it locked for longer than this one waits)";
    throw StorageError(label + ": cannot " + what + ": " + message + hint);
}

// Which statement failed matters when reading a bug report; the first line of its SQL suffices.
std::string shortSql(const std::string& sql) {
    const auto begin = sql.find_first_not_of(" \n");
    auto line = sql.substr(begin == std::string::npos ? 0 : begin);
    line = line.substr(0, line.find('\n'));
    return line.size() > 60 ? line.substr(0, 60) + "..." : line;
}

} // namespace

void fail(sqlite3* db, int code, const std::string& label, const std::string& what) {
    // The connection's message is specific ("no such table: runs"); without a connection only
    // the code's generic text is known.
    throwFor(code, db ? sqlite3_errmsg(db) : sqlite3_errstr(code), label, what);
}

// --- Database

Database::Database(const std::string& file, int flags, std::string label) : m_label(std::move(label)) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(file.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
        // sqlite3_open_v2 hands back a connection even on failure (for the message); close it.
        try {
            sqlite::fail(db, rc, m_label, "open it");
        } catch (...) {
            sqlite3_close(db);
            throw;
        }
    }
    m_db = db;
    sqlite3_extended_result_codes(m_db, 1);
}

Database::Database(Database&& other) noexcept
    : m_db(std::exchange(other.m_db, nullptr)), m_label(std::move(other.m_label)) {}

Database& Database::operator=(Database&& other) noexcept {
    if (this != &other) {
        if (m_db)
            sqlite3_close_v2(m_db);
        m_db = std::exchange(other.m_db, nullptr);
        m_label = std::move(other.m_label);
    }
    return *this;
}

Database::~Database() {
    if (m_db)
        sqlite3_close_v2(m_db);
}

void Database::close() {
    if (!m_db)
        return;
    // sqlite3_close (not _v2) reports statements left unfinalized: a bug worth surfacing.
    const int rc = sqlite3_close(m_db);
    if (rc != SQLITE_OK)
        fail(rc, "close it");
    m_db = nullptr;
}

void Database::exec(const std::string& sql, const std::string& what) {
    char* error = nullptr;
    const int rc = sqlite3_exec(m_db, sql.c_str(), nullptr, nullptr, &error);
    sqlite3_free(error); // the same text as sqlite3_errmsg, which fail() reads
    if (rc != SQLITE_OK)
        fail(rc, what);
}

int64_t Database::queryInt(const std::string& sql, const std::string& what) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v2(m_db, sql.c_str(), -1, &stmt, nullptr);
    if (rc != SQLITE_OK)
        fail(rc, what);
    rc = sqlite3_step(stmt);
    const int64_t value = rc == SQLITE_ROW ? sqlite3_column_int64(stmt, 0) : 0;
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        const std::string message = sqlite3_errmsg(m_db);
        sqlite3_finalize(stmt);
        throwFor(rc, message, m_label, what);
    }
    sqlite3_finalize(stmt);
    return value;
}

int64_t Database::lastInsertId() const { return sqlite3_last_insert_rowid(m_db); }

int Database::changes() const { return sqlite3_changes(m_db); }

bool Database::autocommit() const { return sqlite3_get_autocommit(m_db) != 0; }

void Database::fail(int code, const std::string& what) const { sqlite::fail(m_db, code, m_label, what); }

// --- Statement

Statement::Statement(Database& db, const std::string& sql) : m_db(&db), m_sql(sql) {
    const int rc = sqlite3_prepare_v2(db.handle(), sql.c_str(), -1, &m_stmt, nullptr);
    if (rc != SQLITE_OK)
        db.fail(rc, "prepare \"" + shortSql(sql) + "\"");
}

Statement::Statement(Statement&& other) noexcept
    : m_db(other.m_db), m_stmt(std::exchange(other.m_stmt, nullptr)), m_sql(std::move(other.m_sql)) {}

Statement::~Statement() { sqlite3_finalize(m_stmt); }

void Statement::checkBind(int rc, int index) const {
    if (rc != SQLITE_OK)
        m_db->fail(rc, "bind parameter " + std::to_string(index) + " of \"" + shortSql(m_sql) + "\"");
}

Statement& Statement::bind(int index, int64_t value) {
    const int rc = sqlite3_bind_int64(m_stmt, index, value);
    checkBind(rc, index);
    return *this;
}

Statement& Statement::bind(int index, double value) {
    if (std::isnan(value))
        return bind(index, std::nullopt);
    const int rc = sqlite3_bind_double(m_stmt, index, value);
    checkBind(rc, index);
    return *this;
}

Statement& Statement::bind(int index, const std::string& text) {
    const int rc = sqlite3_bind_text64(m_stmt, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
    checkBind(rc, index);
    return *this;
}

Statement& Statement::bind(int index, std::nullopt_t) {
    const int rc = sqlite3_bind_null(m_stmt, index);
    checkBind(rc, index);
    return *this;
}

Statement& Statement::bindBlob(int index, const std::string& bytes) {
    // A null pointer would bind NULL; std::string::data() never is one, so "" stays a blob.
    const int rc = sqlite3_bind_blob64(m_stmt, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
    checkBind(rc, index);
    return *this;
}

bool Statement::step() {
    const int rc = sqlite3_step(m_stmt);
    if (rc == SQLITE_ROW)
        return true;
    if (rc == SQLITE_DONE)
        return false;
    // Reset so that a failed statement does not hold a read transaction open.
    const std::string message = sqlite3_errmsg(m_db->handle());
    sqlite3_reset(m_stmt);
    throwFor(rc, message, m_db->label(), "run \"" + shortSql(m_sql) + "\"");
}

void Statement::run() {
    while (step()) {
    }
    reset();
}

void Statement::reset() {
    sqlite3_reset(m_stmt);
    sqlite3_clear_bindings(m_stmt);
}

bool Statement::isNull(int column) const { return sqlite3_column_type(m_stmt, column) == SQLITE_NULL; }

int64_t Statement::integer(int column) const { return sqlite3_column_int64(m_stmt, column); }

double Statement::real(int column) const {
    return isNull(column) ? std::numeric_limits<double>::quiet_NaN() : sqlite3_column_double(m_stmt, column);
}

std::optional<double> Statement::optionalReal(int column) const {
    if (isNull(column))
        return std::nullopt;
    return sqlite3_column_double(m_stmt, column);
}

std::optional<int64_t> Statement::optionalInteger(int column) const {
    if (isNull(column))
        return std::nullopt;
    return sqlite3_column_int64(m_stmt, column);
}

std::string Statement::text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(m_stmt, column));
    return text ? std::string(text, static_cast<size_t>(sqlite3_column_bytes(m_stmt, column))) : std::string();
}

std::string Statement::blob(int column) const {
    // column_blob before column_bytes: the documented order that avoids a type conversion.
    const auto* data = static_cast<const char*>(sqlite3_column_blob(m_stmt, column));
    const int size = sqlite3_column_bytes(m_stmt, column);
    return data ? std::string(data, static_cast<size_t>(size)) : std::string();
}

// --- Transaction

Transaction::Transaction(Database& db) : m_db(db) { m_db.exec("BEGIN IMMEDIATE", "start a write transaction"); }

Transaction::~Transaction() {
    // Some errors (a full disk, I/O) make SQLite roll back by itself: then there is nothing left.
    if (!m_done && !m_db.autocommit())
        sqlite3_exec(m_db.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
    m_db.exec("COMMIT", "commit a write transaction");
    m_done = true;
}

} // namespace mppdl::store::sqlite
