// Training recorded in a project (session::trainRecorded) when the project itself fails: the run's
// own error is rethrown, and that its end could not be recorded reaches the display.

#include "mppdl/core/error.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/store/project.h"

#include "engine/store/store_test_support.h"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <string>

namespace {

using namespace mppdl;
using store::testing::TempDir;

/// Holds a write lock on a project from a second connection, as another process would.
class WriteLock {
public:
    explicit WriteLock(const std::string& path) {
        EXPECT_EQ(sqlite3_open(path.c_str(), &m_db), SQLITE_OK);
        EXPECT_EQ(sqlite3_exec(m_db, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(m_db);
    }
    ~WriteLock() {
        sqlite3_exec(m_db, "ROLLBACK", nullptr, nullptr, nullptr);
        sqlite3_close(m_db);
    }

private:
    sqlite3* m_db = nullptr;
};

TEST(TrainRecorded, AnEndThatCannotBeRecordedReachesTheDisplay) {
    TempDir dir;
    const std::string path = (dir.path() / "p.mppdl").string();
    auto project = store::Project::create(path);
    const auto architecture = project.addArchitecture("mlp", R"({"layers": []})", "first");
    store::NewRun run;
    run.name = "r";
    run.architectureVersionId = architecture.id;
    run.epochs = 1;
    const int64_t runId = project.createRun(run);

    // A trainer that fails as train() does (a Failed event, then the error) while another process
    // holds the project's write lock: recording the failure cannot succeed.
    std::unique_ptr<WriteLock> lock;
    const session::Trainer failing = [&](const train::TrainConfig&, const model::Architecture&,
                                         const data::PreparedData&, RunObserver& observer,
                                         const train::TrainControl&) -> train::TrainResult {
        lock = std::make_unique<WriteLock>(path);
        RunEvent failed;
        failed.kind = EventKind::Failed;
        failed.errorKind = "data";
        failed.message = "row 7: not a number";
        observer.onEvents({failed});
        throw DataError("row 7: not a number");
    };
    RecordingObserver display;
    EXPECT_THROW(session::trainRecorded(project, runId, {}, {}, {}, display, {}, 3, failing), DataError);
    lock.reset();

    bool warned = false;
    for (const auto& e : display.events())
        if (e.kind == EventKind::Message && e.errorKind == "storage") {
            warned = true;
            EXPECT_NE(e.message.find("could not record how run " + std::to_string(runId) + " ended"), std::string::npos)
                << e.message;
            EXPECT_NE(e.message.find("locked"), std::string::npos) << "names SQLite's cause: " << e.message;
        }
    EXPECT_TRUE(warned) << "the display was not told that the end went unrecorded";
}

} // namespace
