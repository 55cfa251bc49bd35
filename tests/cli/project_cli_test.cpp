// Project files end to end through the real binary: recording, listing, showing, exporting,
// resuming after kill -9, reading while a run writes, warm starts, architecture versions, and the
// refusals that must leave a file untouched.

#include "mppdl/store/project.h"

#include "support/background.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;
using namespace mppdl;

namespace {

using Result = CliResult;

Result run(const std::string& args) { return runMppdl(args); }

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

class ProjectCli : public ScratchDirTest {};

/// Quick training flags: a Fashion-MNIST subset, fixed seed.
std::string quick(const std::string& arch, int epochs, int limit = 2000) {
    return "train --data " + kFmnist + " --arch " + arch + " --epochs " + std::to_string(epochs) + " --limit " +
           std::to_string(limit) + " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 5";
}

nlohmann::json runsJson(const std::string& project) {
    const auto r = run("runs --json --project " + project);
    EXPECT_EQ(r.code, 0) << r.out;
    return nlohmann::json::parse(r.out);
}

/// Epoch metrics of a run from export-metrics: epoch -> name -> value (as text, compared exactly).
std::map<int, std::map<std::string, std::string>> epochMetrics(const std::string& project, int runId,
                                                               const std::string& csv) {
    const auto r = run("export-metrics " + std::to_string(runId) + " --kind epoch --csv " + csv + " --project " +
                       project);
    EXPECT_EQ(r.code, 0) << r.out;
    std::ifstream in(csv);
    std::string header, line;
    std::getline(in, header);
    auto split = [](const std::string& s) {
        std::vector<std::string> cells;
        std::stringstream ss(s);
        std::string cell;
        while (std::getline(ss, cell, ','))
            cells.push_back(cell);
        if (!s.empty() && s.back() == ',')
            cells.emplace_back();
        return cells;
    };
    const auto names = split(header);
    std::map<int, std::map<std::string, std::string>> out;
    while (std::getline(in, line)) {
        const auto cells = split(line);
        const int epoch = std::stoi(cells.at(2));
        for (size_t i = 6; i < cells.size() && i < names.size(); ++i)
            if (!cells[i].empty() && names[i] != "images_per_sec" && names[i] != "epoch_seconds" &&
                names[i] != "store_seconds") // timings differ between any two runs
                out[epoch][names[i]] = cells[i];
    }
    return out;
}

} // namespace

TEST_F(ProjectCli, TrainRecordsAndEveryReaderShowsIt) {
    // No --project: the first run creates ./project.mppdl.
    auto r = run(quick("mlp", 2));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("run 1 (mlp-1) in project.mppdl (a new project file)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("recorded as run 1"), std::string::npos) << r.out;
    ASSERT_TRUE(fs::exists(path("project.mppdl")));

    r = run("runs");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mlp-1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("finished"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mlp@1"), std::string::npos) << r.out;

    const auto runs = runsJson("project.mppdl");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["state"], "finished");
    EXPECT_EQ(runs[0]["epochs_done"], 2);
    EXPECT_GT(runs[0]["best_val_accuracy"].get<double>(), 0.4); // chance is 0.1
    EXPECT_GT(runs[0]["test_accuracy"].get<double>(), 0.4);

    r = run("show 1");
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* expected : {"architecture", "mlp version 1", "sgd lr 0.05 momentum 0.9", "seed 5", "train loss",
                                 "val acc", "loss", "accuracy", "confusion matrix", "1:best"})
        EXPECT_NE(r.out.find(expected), std::string::npos) << expected << " missing in:\n" << r.out;
    r = run("show mlp-1 --ascii");
    ASSERT_EQ(r.code, 0) << r.out;

    r = run("eval --run 1:best --data " + kFmnist);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("test: accuracy"), std::string::npos) << r.out;

    const auto metrics = epochMetrics("project.mppdl", 1, path("m.csv"));
    ASSERT_EQ(metrics.size(), 2u);
    EXPECT_TRUE(metrics.at(1).count("train_loss"));
    EXPECT_TRUE(metrics.at(2).count("val_accuracy"));
    r = run("export-metrics 1 --csv " + path("all.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(slurp(path("all.csv")).find("run,segment,epoch,step,kind,wall_seconds"), std::string::npos);

    r = run("arch list");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mlp"), std::string::npos) << r.out;

    // Readers never create a project.
    fs::create_directories(path("empty"));
    fs::current_path(path("empty"));
    r = run("runs");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no project"), std::string::npos) << r.out;
    EXPECT_TRUE(fs::is_empty(path("empty")));
}

// The crash test: kill -9 during epoch 2 of 3; the file is intact, the run reads as
// interrupted, resume finishes it, and weights and metrics equal an uninterrupted run's.
TEST_F(ProjectCli, KilledRunResumesToTheSameResultBitForBit) {
    const std::string flags = quick("fmnist_cnn", 3, 6000) + " --project p.mppdl --json";
    {
        Background training(flags);
        ASSERT_TRUE(waitForProgressOfEpoch(training, 2)) << "never saw a progress event of epoch 2";
        training.kill9();
        EXPECT_EQ(training.wait(), 128 + SIGKILL);
    }
    {
        const auto project = store::Project::open(path("p.mppdl"), store::Access::Read);
        EXPECT_EQ(project.integrityCheck(), "ok");
        ASSERT_TRUE(project.lastResumable(1).has_value());
        EXPECT_EQ(project.lastResumable(1)->epoch, 1);
    }
    auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["state"], "interrupted");
    EXPECT_EQ(runs[0]["epochs_done"], 1);

    auto r = run("resume 1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("resuming run 1 (fmnist_cnn-1) after epoch 1 of 3"), std::string::npos) << r.out;
    runs = runsJson("p.mppdl");
    EXPECT_EQ(runs[0]["state"], "finished");
    EXPECT_EQ(runs[0]["epochs_done"], 3);

    // The same flags, never interrupted, as run 2.
    r = run(flags);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto resumed = epochMetrics("p.mppdl", 1, path("a.csv"));
    const auto whole = epochMetrics("p.mppdl", 2, path("b.csv"));
    ASSERT_EQ(resumed.size(), 3u);
    EXPECT_EQ(resumed, whole);

    const auto project = store::Project::open(path("p.mppdl"), store::Access::Read);
    const auto a = project.checkpoint(1, 3), b = project.checkpoint(2, 3);
    ASSERT_TRUE(a && b);
    EXPECT_TRUE(a->weights == b->weights) << "final weights differ";
    const auto ea = project.evaluations(1), eb = project.evaluations(2);
    ASSERT_EQ(ea.size(), 1u);
    ASSERT_EQ(eb.size(), 1u);
    EXPECT_EQ(ea[0].evaluation.loss, eb[0].evaluation.loss);
    EXPECT_EQ(ea[0].evaluation.confusion, eb[0].evaluation.confusion);
    EXPECT_EQ(project.integrityCheck(), "ok");

    r = run("resume 1 --project p.mppdl");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--warm-start"), std::string::npos) << r.out;
}

// A run killed before its first checkpoint starts again from the beginning, saying so, and ends
// as the same run never interrupted.
TEST_F(ProjectCli, ARunKilledInItsFirstEpochResumesFromTheBeginning) {
    const std::string flags = quick("fmnist_cnn", 2, 6000) + " --project p.mppdl --json";
    {
        Background training(flags);
        ASSERT_TRUE(waitForProgressOfEpoch(training, 1)) << "never saw a progress event of epoch 1";
        training.kill9();
        EXPECT_EQ(training.wait(), 128 + SIGKILL);
    }
    auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["epochs_done"], 0);
    auto r = run("resume 1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("run 1 (fmnist_cnn-1) stopped before its first checkpoint: training it again from the "
                         "beginning"),
              std::string::npos)
        << r.out;
    runs = runsJson("p.mppdl");
    EXPECT_EQ(runs[0]["state"], "finished");
    EXPECT_EQ(runs[0]["epochs_done"], 2);
    r = run(flags);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(epochMetrics("p.mppdl", 1, path("a.csv")), epochMetrics("p.mppdl", 2, path("b.csv")));
}

// One flipped byte in a checkpoint's weights: every command that reads them refuses with a
// storage error naming the checkpoint, and none of them writes anything.
TEST_F(ProjectCli, ADamagedCheckpointIsAStorageErrorForEveryReader) {
    auto r = run(quick("mlp", 1, 1000) + " --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    r = run("project check p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("integrity: ok"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("checkpoints: 1 read"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("every checksum good"), std::string::npos) << r.out;
    ASSERT_EQ(std::system(("sqlite3 " + path("p.mppdl") +
                           " \"UPDATE checkpoints SET weights = CAST(substr(weights, 1, 499) || (CASE WHEN "
                           "substr(weights, 500, 1) = X'5A' THEN X'5B' ELSE X'5A' END) || substr(weights, 501) AS "
                           "BLOB)\"")
                              .c_str()),
              0);
    for (const std::string& command : std::vector<std::string>{
             "eval --run 1 --data " + kFmnist + " --limit 200", "export --run 1 --format onnx -o m.onnx",
             "predict --run 1 --data " + kFmnist + " --limit 20 --out p.csv",
             quick("mlp", 1, 500) + " --warm-start 1"}) {
        r = run(command + " --project p.mppdl");
        EXPECT_EQ(r.code, 5) << command << "\n" << r.out;
        EXPECT_NE(r.out.find("the checkpoint of run 1, epoch 1 (weights) is damaged"), std::string::npos)
            << command << "\n"
            << r.out;
    }
    EXPECT_FALSE(fs::exists("m.onnx"));
    EXPECT_FALSE(fs::exists("p.csv"));
    EXPECT_EQ(runsJson("p.mppdl").size(), 1u) << "the refused warm start recorded no run";
    // `mppdl project check` finds it, names it, and exits with the storage error's code.
    r = run("project check --project p.mppdl --json");
    EXPECT_EQ(r.code, 5) << r.out;
    const auto report = nlohmann::json::parse(r.out.substr(0, r.out.find('\n')));
    EXPECT_EQ(report["integrity"], "ok");
    EXPECT_EQ(report["checkpoints"], 1);
    EXPECT_EQ(report["ok"], false);
    ASSERT_EQ(report["problems"].size(), 1u);
    EXPECT_NE(report["problems"][0].get<std::string>().find("the checkpoint of run 1, epoch 1 (weights) is damaged"),
              std::string::npos);
    EXPECT_NE(r.out.find("is damaged: 1 checkpoint cannot be used"), std::string::npos) << r.out;
}

// Ctrl-C ends a run as cancelled, with its error recorded; it can be resumed like an interrupted one.
TEST_F(ProjectCli, CancelledRunIsRecordedAndResumable) {
    {
        Background training(quick("lenet5", 2, 6000) + " --project p.mppdl --json");
        bool inEpoch2 = false;
        while (auto line = training.line())
            if (line->find("\"event\":\"progress\"") != std::string::npos &&
                line->find("\"epoch\":2") != std::string::npos) {
                inEpoch2 = true;
                break;
            }
        ASSERT_TRUE(inEpoch2);
        training.interrupt();
        while (training.line()) {
        }
        EXPECT_EQ(training.wait(), 130);
    }
    const auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["state"], "cancelled");
    auto r = run("show 1 --project p.mppdl");
    EXPECT_NE(r.out.find("cancelled in epoch 2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("mppdl resume 1"), std::string::npos) << r.out;
    r = run("resume 1 --project p.mppdl -q");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(runsJson("p.mppdl")[0]["state"], "finished");
}

TEST_F(ProjectCli, ReadersSucceedWhileARunWrites) {
    Background training(quick("fmnist_cnn", 2, 4000) + " --project p.mppdl --json");
    // Wait until the run exists.
    while (auto line = training.line())
        if (line->find("\"event\":\"run\"") != std::string::npos)
            break;
    int reads = 0;
    while (training.running()) {
        for (const char* command :
             {"runs --project p.mppdl", "show 1 --project p.mppdl", "runs --json --project p.mppdl"}) {
            const auto r = run(command);
            ASSERT_EQ(r.code, 0) << command << ":\n" << r.out;
            EXPECT_EQ(r.out.find("locked"), std::string::npos) << r.out;
            ++reads;
        }
        // Drain the training's output so it never blocks on a full pipe.
        for (int i = 0; i < 50; ++i)
            if (!training.line())
                break;
    }
    EXPECT_EQ(training.wait(), 0);
    EXPECT_GE(reads, 6);
    EXPECT_EQ(runsJson("p.mppdl")[0]["state"], "finished");
}

TEST_F(ProjectCli, WarmStartFromARunAndItsRefusals) {
    ASSERT_EQ(run(quick("mlp", 2) + " --project p.mppdl -q").code, 0);
    auto r = run(quick("mlp", 1) + " --project p.mppdl --warm-start 1:best --name tuned");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("warm start from run 1 (mlp-1), epoch"), std::string::npos) << r.out;
    const auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[1]["name"], "tuned");
    r = run("show tuned --project p.mppdl");
    EXPECT_NE(r.out.find("warm start"), std::string::npos) << r.out;

    // Weights of another architecture: the layer is named, nothing is trained.
    r = run(quick("lenet5", 1) + " --project p.mppdl --warm-start 1");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("run 1 (mlp-1), epoch 2"), std::string::npos) << r.out;
    r = run(quick("mlp", 1) + " --project p.mppdl --warm-start 1:9");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no weights for epoch 9"), std::string::npos) << r.out;
    r = run(quick("mlp", 1) + " --project p.mppdl --warm-start 42");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no run '42'"), std::string::npos) << r.out;
}

TEST_F(ProjectCli, ArchitectureVersions) {
    auto r = run("arch add " + std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/mlp.json --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("added mlp version 1"), std::string::npos) << r.out;
    r = run("arch add " + std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/mlp.json --project p.mppdl");
    EXPECT_NE(r.out.find("unchanged"), std::string::npos) << r.out;

    // A changed copy becomes version 2; training by name takes the latest, NAME@1 the first.
    auto spec = nlohmann::json::parse(slurp(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/mlp.json"));
    for (auto& layer : spec["layers"])
        if (layer["type"] == "Dense") {
            layer["units"] = 64;
            break;
        }
    std::ofstream(path("mlp64.json")) << spec.dump(2);
    r = run("arch add " + path("mlp64.json") + " --project p.mppdl --note 'narrower hidden layer'");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("added mlp version 2"), std::string::npos) << r.out;
    ASSERT_EQ(run(quick("mlp", 1) + " --project p.mppdl -q").code, 0);
    ASSERT_EQ(run(quick("mlp@1", 1) + " --project p.mppdl -q").code, 0);
    const auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0]["architecture_version"], 2);
    EXPECT_EQ(runs[1]["architecture_version"], 1);

    r = run("arch versions mlp --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("narrower hidden layer"), std::string::npos) << r.out;
    r = run("arch versions nope --project p.mppdl");
    EXPECT_EQ(r.code, 2) << r.out;
    r = run(quick("mlp@7", 1) + " --project p.mppdl");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no version 7"), std::string::npos) << r.out;
}

// Files that must be refused and left exactly as they were.
TEST_F(ProjectCli, RefusalsLeaveTheFileUntouched) {
    auto expectRefused = [&](const std::string& file, const std::string& command, const std::string& message) {
        const auto before = slurp(file);
        const auto r = run(command + " --project " + file);
        EXPECT_EQ(r.code, 5) << command << ":\n" << r.out;
        EXPECT_NE(r.out.find(message), std::string::npos) << command << ":\n" << r.out;
        EXPECT_EQ(slurp(file), before) << file << " was modified by " << command;
        EXPECT_FALSE(fs::exists(file + "-wal")) << command;
    };
    std::ofstream(path("notes.mppdl")) << "these are my notes, not a project\n";
    expectRefused(path("notes.mppdl"), "runs", "not an mppdl project");
    expectRefused(path("notes.mppdl"), quick("mlp", 1), "not an mppdl project");

    ASSERT_EQ(run(quick("mlp", 1) + " --project " + path("good.mppdl") + " -q").code, 0);
    fs::copy_file(path("good.mppdl"), path("newer.mppdl"));
    {
        std::fstream f(path("newer.mppdl"), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(60);
        const char version[4] = {0, 0, 0, 99};
        f.write(version, 4);
    }
    expectRefused(path("newer.mppdl"), "runs", "newer mppdl");
    expectRefused(path("newer.mppdl"), quick("mlp", 1), "newer mppdl");

    fs::copy_file(path("good.mppdl"), path("corrupt.mppdl"));
    {
        std::fstream f(path("corrupt.mppdl"), std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(16);
        const char pageSize[2] = {1, 1};
        f.write(pageSize, 2);
    }
    expectRefused(path("corrupt.mppdl"), "runs", "corrupt");

    fs::copy_file(path("good.mppdl"), path("readonly.mppdl"));
    fs::permissions(path("readonly.mppdl"), fs::perms::owner_read | fs::perms::group_read | fs::perms::others_read);
    expectRefused(path("readonly.mppdl"), quick("mlp", 1), "read-only");
    // Reading a read-only project works.
    const auto r = run("runs --project " + path("readonly.mppdl"));
    EXPECT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mlp-1"), std::string::npos) << r.out;
}

TEST_F(ProjectCli, ModelAveragingRunShowsItsSegments) {
    auto r = run(quick("mlp", 2) +
                 " --project p.mppdl --strategy model-averaging --segments 3 --distribute-by round-robin");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("model-averaging over 3 segments (round-robin distribution"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  segment 2: train loss"), std::string::npos) << r.out;
    const auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0]["strategy"], "model-averaging");
    EXPECT_EQ(runs[0]["segments"], 3);
    r = run("show 1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("segments in epoch 2"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("model-averaging, 3 segments"), std::string::npos) << r.out;

    r = run(quick("mlp", 1) + " --project p.mppdl --segments 3");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("choose a strategy such as model-averaging"), std::string::npos) << r.out;
}

TEST_F(ProjectCli, ScaleStudyRecordsARunPerSegmentCount) {
    const std::string flags =
        "scale-study --data " + kFmnist +
        " --arch mlp --epochs 2 --limit 2000 --batch-size 64 --lr 0.05 --seed 3 --project p.mppdl";
    auto r = run(flags + " --segments 1,2");
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* expected :
         {"validation accuracy per epoch against N", "N=1", "N=2", "vs N=1", "1.0000", "time per epoch against N"})
        EXPECT_NE(r.out.find(expected), std::string::npos) << expected << " missing in:\n" << r.out;
    const auto runs = runsJson("p.mppdl");
    ASSERT_EQ(runs.size(), 2u);
    EXPECT_EQ(runs[0]["name"], "scale-1");
    EXPECT_EQ(runs[1]["name"], "scale-2");
    EXPECT_EQ(runs[1]["segments"], 2);
    EXPECT_EQ(runs[1]["state"], "finished");

    r = run(flags + " --segments 1,x");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("'x' is not a segment count"), std::string::npos) << r.out;
    r = run(flags + " --segments 2 --strategy single");
    EXPECT_EQ(r.code, 2) << r.out;
}
