#pragma once

// The throwaway PostgreSQL server packaging/test.sh starts (MPPDL_TEST_PG without the password,
// MPPDL_TEST_PG_PASSWORD): connections for the tests and Fashion-MNIST rows in each table layout.

#include "data/pg_connection.h"

#include "mppdl/data/dataset.h"
#include "mppdl/data/source.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <torch/torch.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

/// The server's keyword string with the password, or "" when no server was given.
inline std::string testConnection() {
    const char* conn = std::getenv("MPPDL_TEST_PG");
    const char* password = std::getenv("MPPDL_TEST_PG_PASSWORD");
    if (!conn || !*conn)
        return "";
    return std::string(conn) + (password ? std::string(" password=") + password : "");
}

#define MPPDL_REQUIRE_POSTGRES()                                                                                       \
    do {                                                                                                               \
        if (testConnection().empty())                                                                                  \
            GTEST_SKIP() << "no PostgreSQL server: run through packaging/test.sh, or set MPPDL_TEST_PG and "           \
                            "MPPDL_TEST_PG_PASSWORD";                                                                  \
    } while (0)

/// The first `rows` Fashion-MNIST training rows from the IDX files (Debian's dataset-fashion-mnist).
inline mppdl::data::LoadedSource fashionRows(int64_t rows) {
    mppdl::data::SourceOptions o;
    o.limit = rows;
    return mppdl::data::loadSource(MPPDL_FASHION_MNIST_DIR, o);
}

/// Options for a table createFashionTable() made: the test server, 1x28x28 samples, read by id.
inline mppdl::data::SourceOptions fashionTableOptions() {
    mppdl::data::SourceOptions o;
    o.connection = testConnection();
    o.shape = {1, 28, 28};
    o.id = "id";
    return o;
}

/// Sends `text` (COPY text format) into `COPY table FROM STDIN`.
inline void copyIn(mppdl::data::PgConnection& db, const std::string& copy, const std::string& text) {
    PGconn* c = db.raw();
    PGresult* start = PQexec(c, copy.c_str());
    ASSERT_EQ(PQresultStatus(start), PGRES_COPY_IN) << PQerrorMessage(c);
    PQclear(start);
    ASSERT_EQ(PQputCopyData(c, text.data(), int(text.size())), 1) << PQerrorMessage(c);
    ASSERT_EQ(PQputCopyEnd(c, nullptr), 1) << PQerrorMessage(c);
    PGresult* end = PQgetResult(c);
    ASSERT_EQ(PQresultStatus(end), PGRES_COMMAND_OK) << PQerrorMessage(c);
    PQclear(end);
    while (PGresult* more = PQgetResult(c))
        PQclear(more);
}

/// Rows of an IDX dataset ([N,1,28,28] uint8, labels) as a table in one layout:
/// "real[]" (pixels real[]), "bytea" (pixels bytea, one byte a pixel), "columns" (p0..p783 smallint);
/// `textLabels` stores the class names instead of the indexes. Every table has an id column.
inline void createFashionTable(mppdl::data::PgConnection& db, const std::string& table, const std::string& layout,
                               const mppdl::data::Dataset& rows, bool textLabels = false) {
    const auto x = rows.features().reshape({rows.size(), -1}).contiguous();
    const auto y = rows.labels();
    const int64_t n = x.size(0), width = x.size(1);
    const std::string name = mppdl::data::quoteIdentifier(table);
    std::string columns;
    if (layout == "columns")
        for (int64_t k = 0; k < width; ++k)
            columns += ", p" + std::to_string(k) + " smallint";
    else
        columns = layout == "bytea" ? ", pixels bytea" : ", pixels real[]";
    db.query("DROP TABLE IF EXISTS " + name);
    db.query("CREATE TABLE " + name + " (id integer, label " + (textLabels ? "text" : "integer") + columns + ")");
    std::string text;
    static const char* hex = "0123456789abcdef";
    const auto* px = x.data_ptr<uint8_t>();
    for (int64_t r = 0; r < n; ++r) {
        const int64_t label = y[r].item<int64_t>();
        text += std::to_string(r) + "\t" + (textLabels ? rows.classNames()[size_t(label)] : std::to_string(label)) +
                "\t";
        if (layout == "bytea") {
            text += "\\\\x";
            for (int64_t k = 0; k < width; ++k) {
                text += hex[px[r * width + k] >> 4];
                text += hex[px[r * width + k] & 15];
            }
        } else {
            text += layout == "columns" ? "" : "{";
            for (int64_t k = 0; k < width; ++k)
                text += (k ? (layout == "columns" ? "\t" : ",") : "") + std::to_string(px[r * width + k]);
            text += layout == "columns" ? "" : "}";
        }
        text += "\n";
    }
    copyIn(db, "COPY " + name + " FROM STDIN", text);
}

/// Terminates, from a thread of its own, the first backend whose application_name is
/// `application` and whose query is LIKE `query`, as soon as it shows up (polling every 5 ms, up
/// to 5 s); stops polling when destroyed.
class BackendKiller {
public:
    BackendKiller(const std::string& application, const std::string& query)
        : m_thread([this, application, query] {
              mppdl::data::PgConnection admin(testConnection(), "the killer");
              for (int i = 0; i < 1000 && !m_done; ++i) {
                  if (admin
                          .query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 "
                                 "AND query LIKE $2",
                                 {application, query})
                          .rows() > 0)
                      return;
                  std::this_thread::sleep_for(std::chrono::milliseconds(5));
              }
          }) {}
    ~BackendKiller() {
        m_done = true;
        m_thread.join();
    }

private:
    std::atomic<bool> m_done{false};
    std::thread m_thread;
};

/// A table name of the running test's own, `prefix` and its name in lower case (the SQL names it
/// unquoted; ctest runs tests in parallel processes), cut to `length` bytes so that suffixes fit
/// in PostgreSQL's 63.
inline std::string testTableName(const std::string& prefix, size_t length = 40) {
    std::string name = prefix + ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (auto& c : name)
        c = char(std::tolower(static_cast<unsigned char>(c)));
    return name.substr(0, length);
}

/// A test that needs the server: skipped without one, with a connection to it.
class PgTest : public ::testing::Test {
protected:
    void SetUp() override {
        MPPDL_REQUIRE_POSTGRES();
        db = std::make_unique<mppdl::data::PgConnection>(testConnection(), "the test database");
    }
    std::unique_ptr<mppdl::data::PgConnection> db;
};
