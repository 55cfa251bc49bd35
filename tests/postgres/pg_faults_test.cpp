// The database's faults through the binary: a backend stopped (SIGSTOP) in the middle of a COPY
// fails the run within the read timeout with a data error naming the table, and Ctrl-C during a
// COPY stops the command within a second and cancels the query on the server.

#include "pg_test_db.h"

#include "support/background.h"
#include "support/run_cli.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

namespace {

/// A table of Fashion-MNIST rows, and a view of it that takes 5 ms a row: reads long enough to
/// be interrupted.
class PgFaults : public PgTest {
protected:
    void SetUp() override {
        PgTest::SetUp();
        if (HasFailure() || IsSkipped())
            return;
        table = testTableName("faults_", 24); // with "_slow" and "_reader"
        createFashionTable(*db, table, "bytea", fashionRows(1200).train);
        db->query("CREATE OR REPLACE VIEW " + table +
                  "_slow AS SELECT id, label, pixels, pg_sleep(0.005)::text AS "
                  "pause FROM " +
                  table);
        application = table + "_reader";
        setenv("PGPASSWORD", std::getenv("MPPDL_TEST_PG_PASSWORD"), 1);
    }
    void TearDown() override {
        if (!table.empty())
            db->query("DROP VIEW IF EXISTS " + table + "_slow");
    }
    std::string train() const {
        return "train --data pg:" + table + "_slow --conn '" + std::string(std::getenv("MPPDL_TEST_PG")) +
               " application_name=" + application +
               "' --shape 1,28,28 --features pixels --arch mlp --epochs 1 "
               "--no-project";
    }
    /// The pid of the backend running this test's COPY (whose text is LIKE `pattern`), once it
    /// runs (up to 10 s); 0 if never.
    int copyingBackend(const std::string& pattern = "COPY%") {
        for (int i = 0; i < 1000; ++i) {
            const auto r = db->query("SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2",
                                     {application, pattern});
            if (r.rows() > 0)
                return std::stoi(r.text(0, 0));
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return 0;
    }
    std::string table, application;
};

double secondsSince(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

} // namespace

TEST_F(PgFaults, AStoppedBackendFailsTheReadWithinTheTimeoutNamingTheTable) {
    CliResult result;
    const auto start = std::chrono::steady_clock::now();
    std::thread run([&] { result = runMppdl(train(), "MPPDL_PG_READ_TIMEOUT=3 "); });
    const int backend = copyingBackend();
    ASSERT_GT(backend, 0) << "the COPY never showed up";
    std::this_thread::sleep_for(std::chrono::milliseconds(300)); // some rows read first
    ASSERT_EQ(kill(backend, SIGSTOP), 0);
    const auto stopped = std::chrono::steady_clock::now();
    run.join();
    const double took = secondsSince(stopped);
    kill(backend, SIGCONT);
    db->query("SELECT pg_terminate_backend($1)", {std::to_string(backend)});
    EXPECT_EQ(result.code, 3) << result.out;
    EXPECT_NE(result.out.find("pg:" + table + "_slow"), std::string::npos) << result.out;
    EXPECT_NE(result.out.find("the server sent nothing for 3 s while streaming rows"), std::string::npos) << result.out;
    EXPECT_GE(took, 2.5);
    EXPECT_LT(took, 8.0) << "the read should fail about 3 s after the backend stopped";
    std::cerr << "a stopped backend failed the read " << took << " s later (total " << secondsSince(start) << " s)\n";
}

// The same during `predict --out-table`: the read fails within the timeout, and the table the
// predictions were going to (its transaction open on another connection) is not left behind.
// Without --id the rows stream as the view makes them (an ORDER BY would compute them all before
// the first row: a wait the stall timeout leaves alone, as it does any long query; Ctrl-C ends it).
TEST_F(PgFaults, AStoppedBackendDuringPredictLeavesNoOutputTable) {
    const std::string conn = std::getenv("MPPDL_TEST_PG");
    const std::string output = table + "_out";
    const std::string model = (std::filesystem::temp_directory_path() / (table + ".model")).string();
    auto trained = runMppdl("train --data pg:" + table + " --conn '" + conn +
                            "' --shape 1,28,28 --features pixels --arch mlp --epochs 1 --no-project --save " + model);
    ASSERT_EQ(trained.code, 0) << trained.out;
    db->query("DROP TABLE IF EXISTS " + output);
    CliResult result;
    std::thread run([&] {
        result = runMppdl("predict --model " + model + " --data pg:" + table + "_slow --conn '" + conn +
                              " application_name=" + application +
                              "' --shape 1,28,28 --features pixels --segments 1 --out-table " + output,
                          "MPPDL_PG_READ_TIMEOUT=3 ");
    });
    // The COPY of the features (before it, predict reads the labels alone, which is quick).
    const int backend = copyingBackend("COPY%pixels%");
    if (backend <= 0) {
        run.join();
        FAIL() << "the COPY never showed up: " << result.out;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const bool stoppedIt = kill(backend, SIGSTOP) == 0;
    const auto stopped = std::chrono::steady_clock::now();
    run.join();
    const double took = secondsSince(stopped);
    kill(backend, SIGCONT);
    db->query("SELECT pg_terminate_backend($1)", {std::to_string(backend)});
    ASSERT_TRUE(stoppedIt);
    EXPECT_EQ(result.code, 3) << result.out;
    EXPECT_NE(result.out.find("the server sent nothing for 3 s while"), std::string::npos) << result.out;
    EXPECT_LT(took, 8.0);
    EXPECT_EQ(db->query("SELECT to_regclass($1) IS NULL", {output}).text(0, 0), "t")
        << "the output table was left behind";
    db->query("DROP TABLE IF EXISTS " + output);
    std::filesystem::remove(model);
    std::cerr << "predict --out-table: a stopped backend failed the read " << took << " s later, no table left\n";
}

TEST_F(PgFaults, CtrlCDuringACopyStopsWithinASecondAndCancelsTheQuery) {
    Background training(train());
    const int backend = copyingBackend();
    ASSERT_GT(backend, 0) << "the COPY never showed up";
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const auto interrupted = std::chrono::steady_clock::now();
    training.interrupt();
    const int code = training.wait();
    const double took = secondsSince(interrupted);
    EXPECT_NE(code, 0);
    EXPECT_LT(took, 1.0) << "Ctrl-C took " << took << " s to stop the read";
    // The server stops the COPY too (the backend goes idle or away).
    bool stillCopying = true;
    for (int i = 0; i < 100 && stillCopying; ++i) {
        stillCopying = db->query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query LIKE "
                                 "'COPY%'",
                                 {std::to_string(backend)})
                           .rows() > 0;
        if (stillCopying)
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_FALSE(stillCopying) << "the server still runs the COPY";
    std::cerr << "Ctrl-C stopped the read " << took << " s later\n";
}
