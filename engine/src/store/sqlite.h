#pragma once

// Internal: a thin RAII layer over the sqlite3 C API. Every failure becomes a StorageError that
// names the project file (the "label") and carries SQLite's own message; corruption is reported as
// "<file> is corrupt: ...", so no caller can forget to say which file is damaged.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>

namespace mppdl::store::sqlite {

/// Whether a result code (primary or extended) means the file is damaged or not a database.
bool isCorruption(int code);

/// One connection.
class Database {
public:
    Database() = default;
    /// sqlite3_open_v2(file, flags); `label` names the file in messages (the project path, also
    /// when `file` is a "file:...?immutable=1" URI). Extended result codes are on.
    Database(const std::string& file, int flags, std::string label);
    Database(Database&& other) noexcept;
    Database& operator=(Database&& other) noexcept;
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;
    ~Database();

    bool isOpen() const { return m_db != nullptr; }
    sqlite3* handle() const { return m_db; }
    const std::string& label() const { return m_label; }

    /// Runs one or more statements that return no rows; `what` completes "cannot ..." on failure.
    void exec(const std::string& sql, const std::string& what);
    /// The first column of the first row of `sql` as an integer (a PRAGMA, a count).
    int64_t queryInt(const std::string& sql, const std::string& what);
    int64_t lastInsertId() const;
    /// Rows changed by the last INSERT, UPDATE or DELETE.
    int changes() const;
    /// Whether no transaction is open.
    bool autocommit() const;

    /// Throws the StorageError for result `code` of the operation `what` ("read the runs").
    [[noreturn]] void fail(int code, const std::string& what) const;

    /// Closes now (reporting a failure) instead of in the destructor.
    void close();

private:
    sqlite3* m_db = nullptr;
    std::string m_label;
};

/// The StorageError for `code`, with SQLite's message for it (also when there is no connection).
[[noreturn]] void fail(sqlite3* db, int code, const std::string& label, const std::string& what);

/// A prepared statement. Parameters are 1-based, columns 0-based, as in the C API.
class Statement {
public:
    Statement(Database& db, const std::string& sql);
    Statement(Statement&& other) noexcept;
    Statement& operator=(Statement&&) = delete;
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;
    ~Statement();

    Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
    Statement& bind(int index, int64_t value);
    /// NaN is stored as NULL (SQLite would do that anyway); read it back with real().
    Statement& bind(int index, double value);
    Statement& bind(int index, const std::string& text);
    Statement& bind(int index, const char* text) { return bind(index, std::string(text)); }
    Statement& bind(int index, std::nullopt_t);
    template <class T>
    Statement& bind(int index, const std::optional<T>& value) {
        return value ? bind(index, *value) : bind(index, std::nullopt);
    }
    /// A BLOB; an empty string is a zero-length blob, not NULL.
    Statement& bindBlob(int index, const std::string& bytes);

    /// Binds the arguments to parameters 1, 2, ...
    template <class... Args>
    Statement& bindAll(const Args&... args) {
        int index = 0;
        (bind(++index, args), ...);
        return *this;
    }

    /// Advances: true when a row is ready, false when the statement is done.
    bool step();
    /// Steps to the end (an INSERT, UPDATE or DELETE), then resets the statement for reuse.
    void run();
    /// Ready to run again; the bindings are cleared.
    void reset();

    bool isNull(int column) const;
    int64_t integer(int column) const;
    /// NULL reads as NaN.
    double real(int column) const;
    std::optional<double> optionalReal(int column) const;
    std::optional<int64_t> optionalInteger(int column) const;
    /// NULL reads as "".
    std::string text(int column) const;
    std::string blob(int column) const;

private:
    void checkBind(int rc, int index) const;

    Database* m_db;
    sqlite3_stmt* m_stmt = nullptr;
    std::string m_sql;
};

/// BEGIN IMMEDIATE: takes the write lock at once (waiting up to the busy timeout), so a
/// transaction never fails half-way because another writer came first. Rolls back unless
/// committed.
class Transaction {
public:
    explicit Transaction(Database& db);
    Transaction(const Transaction&) = delete;
    Transaction& operator=(const Transaction&) = delete;
    ~Transaction();
    void commit();

private:
    Database& m_db;
    bool m_done = false;
};

} // namespace mppdl::store::sqlite
