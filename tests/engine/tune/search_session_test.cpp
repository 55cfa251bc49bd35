// Searches recorded in a project: every configuration a run, Hyperband's promotions and stops,
// and a cancelled search resumed to the same result as one never stopped.

#include "mppdl/core/error.h"
#include "mppdl/store/project.h"
#include "mppdl/tune/search_session.h"

#include "support/expect_error.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>

#include <map>

using namespace mppdl;
using namespace mppdl::tune;

namespace {

SearchRequest request(const std::string& search, const std::string& space, int segments = 2) {
    SearchRequest r;
    r.search = search;
    r.spaceJson = space;
    r.spacePath = "space.json";
    r.schedule.scheduler = "mop";
    r.schedule.segments = segments;
    r.schedule.threads = 1;
    r.base.data.location = MPPDL_FASHION_MNIST_DIR;
    r.base.data.source.limit = 1000;
    r.base.data.validationFraction = 0.2;
    r.base.seed = 4;
    r.base.threads = 1;
    return r;
}

/// Keeps the last progress a search reported.
class LastProgress : public SearchObserver {
public:
    void onProgress(const SearchProgress& p) override {
        last = p;
        ++calls;
        if (onCall)
            onCall(p);
    }
    SearchProgress last;
    int calls = 0;
    std::function<void(const SearchProgress&)> onCall;
};

std::map<std::string, store::RunRecord> runsByName(const store::Project& project) {
    std::map<std::string, store::RunRecord> out;
    for (const auto& r : project.runs())
        out[r.name] = r;
    return out;
}

class SearchSession : public ScratchDirTest {};

} // namespace

TEST_F(SearchSession, EveryConfigurationIsARunOfTheProject) {
    auto project = store::Project::create(path("p.mppdl"));
    auto r = request("grid", R"({"architecture": ["mlp", "lenet5"], "lr": [0.05, 0.02], "momentum": 0.9,
        "batch_size": 16, "epochs": 2})");
    r.name = "grid1";
    LastProgress seen;
    const auto result = runSearch(project, r, &seen);
    ASSERT_EQ(result.rows.size(), 4u);
    EXPECT_EQ(result.epochsPlanned, 8);
    EXPECT_EQ(result.epochsDone, 8);
    EXPECT_GE(seen.calls, 2);
    const auto runs = runsByName(project);
    ASSERT_EQ(runs.size(), 4u);
    for (const auto& row : result.rows) {
        SCOPED_TRACE(row.runName);
        ASSERT_TRUE(runs.count(row.runName));
        const auto& run = runs.at(row.runName);
        EXPECT_EQ(run.state, store::RunState::Finished);
        EXPECT_EQ(run.epochsDone, 2);
        EXPECT_EQ(run.strategy, "mop");
        EXPECT_EQ(run.segments, 2);
        EXPECT_EQ(run.architectureName, row.configuration.architecture);
        ASSERT_TRUE(run.testAccuracy.has_value());
        EXPECT_EQ(*run.testAccuracy, *row.testAccuracy);
        EXPECT_EQ(row.state, "finished");
        EXPECT_GT(*row.status.valAccuracy, 0.4);
        EXPECT_EQ(project.metrics(run.id, "epoch").empty(), false);
        EXPECT_TRUE(project.lastResumable(run.id).has_value()) << "its weights can be evaluated and exported";
    }
    EXPECT_EQ(result.rows[0].runName, "grid1-01");
    EXPECT_EQ(result.rows[3].configuration.architecture, "lenet5");
    EXPECT_EQ(result.rows[3].configuration.lr, 0.02);
    const auto board = result.leaderboard();
    for (size_t i = 1; i < board.size(); ++i)
        EXPECT_GE(*board[i - 1].status.valAccuracy, *board[i].status.valAccuracy);

    EXPECT_EQ(searchNames(project), std::vector<std::string>{"grid1"});
    const auto recorded = recordedSearch(project, "grid1");
    ASSERT_EQ(recorded.rows.size(), 4u);
    EXPECT_EQ(recorded.scheduler, "mop");
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(recorded.rows[i].configuration, result.rows[i].configuration);
        EXPECT_EQ(recorded.rows[i].status.valAccuracy, result.rows[i].status.valAccuracy);
    }
    expectError<ConfigError>([&] { runSearch(project, r, nullptr); }, {"already has a search named 'grid1'"});
    expectError<ConfigError>([&] { recordedSearch(project, "grid2"); }, {"no search named 'grid2'", "grid1"});
    expectError<ConfigError>([&] { resumeSearch(project, "grid1", nullptr, nullptr); }, {"has finished"});
}

// Hyperband with R = 3, eta = 3: bracket 1 trains 3 configurations for 1 epoch and continues the
// best to 3; bracket 0 trains 2 for 3 epochs. 11 epochs in all.
TEST_F(SearchSession, HyperbandStopsAllButTheBestOfEachRung) {
    auto project = store::Project::create(path("p.mppdl"));
    auto r = request("hyperband", R"({"architecture": "mlp", "lr": {"range": [0.001, 0.3], "scale": "log"},
        "momentum": 0.9, "max_epochs": 3, "eta": 3, "seed": 2})");
    const auto plan = planSearch(r);
    ASSERT_EQ(plan.configurations.size(), 5u);
    EXPECT_EQ(plan.epochs, 11);
    const auto result = runSearch(project, r, nullptr);
    EXPECT_EQ(result.name, "search-1");
    EXPECT_EQ(result.epochsDone, 11);
    std::vector<const LeaderboardRow*> bracket1;
    for (const auto& row : result.rows)
        if (row.bracket == 1)
            bracket1.push_back(&row);
        else
            EXPECT_EQ(row.status.epochsDone, 3);
    ASSERT_EQ(bracket1.size(), 3u);
    int promoted = 0;
    for (const auto* row : bracket1) {
        const auto run = project.run(row->runId);
        EXPECT_EQ(run->state, store::RunState::Finished);
        if (row->status.epochsDone == 3) {
            ++promoted;
            EXPECT_EQ(row->state, "finished");
            continue;
        }
        EXPECT_EQ(row->status.epochsDone, 1);
        EXPECT_EQ(row->state, "stopped");
        EXPECT_EQ(recordedSearch(project, "search-1").rows[row->index].state, "stopped");
    }
    EXPECT_EQ(promoted, 1);
    // The promoted one had the best validation accuracy after rung 1.
    auto valAfterOne = [&](const LeaderboardRow* row) {
        for (const auto& p : project.metrics(row->runId, "epoch"))
            if (p.name == "val_accuracy" && p.epoch == 1 && p.segment < 0)
                return p.value;
        return -1.0;
    };
    double best = -1, promotedValue = -1;
    for (const auto* row : bracket1) {
        best = std::max(best, valAfterOne(row));
        if (row->status.epochsDone == 3)
            promotedValue = valAfterOne(row);
    }
    EXPECT_EQ(promotedValue, best);
    r.base.data.validationFraction = 0;
    expectError<ConfigError>([&] { planSearch(r); }, {"validation"});
}

// A cancelled search resumes where its runs' checkpoints left it, to the very models an
// uninterrupted search makes.
TEST_F(SearchSession, CancelledSearchResumesToTheSameResult) {
    const std::string space = R"({"architecture": "mlp", "lr": [0.05, 0.02, 0.01], "momentum": 0.9, "epochs": 4})";
    auto reference = store::Project::create(path("reference.mppdl"));
    auto r = request("grid", space, 3);
    r.name = "s";
    const auto whole = runSearch(reference, r, nullptr);

    {
        auto project = store::Project::create(path("p.mppdl"));
        std::atomic<bool> cancel{false};
        r.schedule.cancel = &cancel;
        // Cancelled as soon as a run has recorded its second epoch.
        struct CancelAfterEpochTwo : RunObserver {
            std::atomic<bool>* cancel;
            void onEvents(const std::vector<RunEvent>& batch) override {
                for (const auto& e : batch)
                    if (e.kind == EventKind::Epoch && e.epoch >= 2)
                        *cancel = true;
            }
        } trigger;
        trigger.cancel = &cancel;
        expectError<CancelledError>([&] { runSearch(project, r, nullptr, &trigger); }, {"cancelled"});
        int cancelled = 0;
        for (const auto& run : project.runs()) {
            EXPECT_TRUE(run.state == store::RunState::Cancelled || run.state == store::RunState::Finished) << run.name;
            cancelled += run.state == store::RunState::Cancelled;
        }
        EXPECT_GT(cancelled, 0);
    }
    auto project = store::Project::open(path("p.mppdl"), store::Access::Write);
    const auto resumed = resumeSearch(project, "s", nullptr, nullptr);
    ASSERT_EQ(resumed.rows.size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        SCOPED_TRACE(resumed.rows[i].runName);
        EXPECT_EQ(resumed.rows[i].status.epochsDone, 4);
        EXPECT_EQ(resumed.rows[i].state, "finished");
        EXPECT_EQ(resumed.rows[i].status.valAccuracy, whole.rows[i].status.valAccuracy);
        EXPECT_EQ(resumed.rows[i].testAccuracy, whole.rows[i].testAccuracy);
        EXPECT_EQ(resumed.rows[i].status.valLoss, whole.rows[i].status.valLoss) << "bit for bit";
        // One epoch point each: the cancelled epochs' points were dropped before the resume.
        int points = 0;
        for (const auto& p : project.metrics(resumed.rows[i].runId, "epoch"))
            points += p.name == "val_accuracy";
        EXPECT_EQ(points, 4);
    }
    expectError<ConfigError>([&] { resumeSearch(project, "nope", nullptr, nullptr); }, {"no search named 'nope'", "s"});
}
