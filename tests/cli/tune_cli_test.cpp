// mppdl tune through the real binary on real Fashion-MNIST: the plan, a search and its
// leaderboard, the runs it records, a space with a bad value, and a search killed with -9 then
// resumed to the same leaderboard as one never stopped.

#include "mppdl/store/project.h"

#include "support/background.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace fs = std::filesystem;
using namespace mppdl;

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

class TuneCli : public ScratchDirTest {
protected:
    void write(const std::string& name, const std::string& text) { std::ofstream(path(name)) << text; }
    CliResult run(const std::string& args) { return runMppdl(args); }
    /// The last JSON line of an output.
    static nlohmann::json lastJson(const std::string& out) {
        nlohmann::json last;
        size_t begin = 0;
        while (begin < out.size()) {
            const size_t end = out.find('\n', begin);
            const auto line = out.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
            const auto j = nlohmann::json::parse(line, nullptr, false);
            if (!j.is_discarded() && j.is_object())
                last = j;
            if (end == std::string::npos)
                break;
            begin = end + 1;
        }
        return last;
    }
};

constexpr const char* kSpace =
    R"({"architecture": "mlp", "lr": [0.05, 0.02, 0.01], "momentum": 0.9, "batch_size": 32, "epochs": 3})";

} // namespace

TEST_F(TuneCli, PlanListsConfigurationsAndBracketsWithoutTraining) {
    write("space.json", kSpace);
    auto r = run("tune --space " + path("space.json") + " --plan");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mlp sgd lr 0.02 momentum 0.9 batch 32"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("3 configurations, 9 epochs in all (grid search)"), std::string::npos) << r.out;
    r = run("tune --space " + path("space.json") + " --plan --search hyperband --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto plan = nlohmann::json::parse(r.out);
    EXPECT_EQ(plan["epochs"], 69) << "R = 9, eta = 3";
    ASSERT_EQ(plan["brackets"].size(), 3u);
    EXPECT_EQ(plan["brackets"][0]["rungs"][0]["configurations"], 9);
    EXPECT_EQ(plan["configurations"].size(), 17u);
    EXPECT_FALSE(fs::exists(path("project.mppdl"))) << "a plan records nothing";
}

TEST_F(TuneCli, ASearchRecordsItsRunsAndPrintsTheLeaderboard) {
    write("space.json", kSpace);
    auto r = run("tune --space " + path("space.json") + " --data " + kFmnist +
                 " --limit 1500 --segments 3 --name s1 --threads 2 --project " + path("p.mppdl"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("search s1 (grid, mop over 3 segments): done; 9 of 9 epochs"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rank  run"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("best: s1-0"), std::string::npos) << r.out;
    const auto project = store::Project::open(path("p.mppdl"), store::Access::Read);
    const auto runs = project.runs();
    ASSERT_EQ(runs.size(), 3u);
    for (const auto& run : runs) {
        EXPECT_EQ(run.state, store::RunState::Finished) << run.name;
        EXPECT_EQ(run.epochsDone, 3);
        EXPECT_EQ(run.strategy, "mop");
    }
    r = run("tune --show s1 --json --project " + path("p.mppdl"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto shown = nlohmann::json::parse(r.out);
    ASSERT_EQ(shown["leaderboard"].size(), 3u);
    EXPECT_GE(shown["leaderboard"][0]["val_accuracy"].get<double>(),
              shown["leaderboard"][1]["val_accuracy"].get<double>());
    // A search's run is a run: show, eval and predict take it.
    r = run("show s1-02 --project " + path("p.mppdl"));
    EXPECT_NE(r.out.find("s1 (grid, configuration 2 of 3"), std::string::npos) << r.out;
    r = run("eval --run s1-02 --data " + kFmnist + " --project " + path("p.mppdl"));
    EXPECT_EQ(r.code, 0) << r.out;
    r = run("tune --resume s1 --project " + path("p.mppdl"));
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("search s1 has finished"), std::string::npos) << r.out;
}

TEST_F(TuneCli, AnInvalidValueIsNamedAndNothingIsRecorded) {
    write("bad.json", R"({"architecture": "mlp", "lr": [0.01, -0.5]})");
    auto r = run("tune --space " + path("bad.json") + " --data " + kFmnist + " --project " + path("p.mppdl"));
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find(path("bad.json") + ": \"lr\": -0.5 is not a positive learning rate"), std::string::npos)
        << r.out;
    write("arch.json", R"({"architecture": ["mlp", "no_such_net"], "lr": 0.01})");
    r = run("tune --space " + path("arch.json") + " --data " + kFmnist + " --project " + path("p.mppdl"));
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no_such_net"), std::string::npos) << r.out;
    if (fs::exists(path("p.mppdl"))) {
        const auto project = store::Project::open(path("p.mppdl"), store::Access::Read);
        EXPECT_TRUE(project.runs().empty());
    }
    r = run("tune --data " + kFmnist);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--space"), std::string::npos) << r.out;
    r = run("tune --resume nope --project " + path("p.mppdl"));
    EXPECT_NE(r.code, 0) << r.out;
}

// kill -9 in the middle of a search: its runs read as interrupted, --resume finishes them from
// their checkpoints, and the leaderboard equals an uninterrupted search's to the last digit.
TEST_F(TuneCli, KilledSearchResumesToTheSameLeaderboard) {
    write("space.json", kSpace);
    const std::string flags = "tune --space " + path("space.json") + " --data " + kFmnist +
                              " --limit 10000 --segments 3 --threads 2 --name s --json";
    {
        Background search(flags + " --project " + path("p.mppdl"));
        bool killed = false;
        while (auto line = search.line()) {
            const auto j = nlohmann::json::parse(*line, nullptr, false);
            if (!j.is_discarded() && j.value("event", "") == "progress" && j.value("epochs_done", 0) >= 2) {
                search.kill9();
                killed = true;
                break;
            }
        }
        ASSERT_TRUE(killed) << "the search ended before it could be killed";
        EXPECT_EQ(search.wait(), 128 + SIGKILL);
    }
    auto r = run("tune --resume s --json --project " + path("p.mppdl"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto resumed = lastJson(r.out);
    r = run(flags + " --project " + path("q.mppdl"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto whole = lastJson(r.out);
    ASSERT_EQ(resumed["leaderboard"].size(), 3u);
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(resumed["leaderboard"][i]["configuration"], whole["leaderboard"][i]["configuration"]);
        EXPECT_EQ(resumed["leaderboard"][i]["val_accuracy"], whole["leaderboard"][i]["val_accuracy"]);
        EXPECT_EQ(resumed["leaderboard"][i]["test_accuracy"], whole["leaderboard"][i]["test_accuracy"]);
        EXPECT_EQ(resumed["leaderboard"][i]["epochs_done"], 3);
    }
}
