// mppdl train, demo, scale-study, resume.

#include "cli_common.h"
#include "cli_processes.h"
#include "cli_project.h"
#include "json_observer.h"
#include "terminal_observer.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/predictions.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/model/architecture.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/session/resume.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/trainer.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <map>

namespace mppdl::cli {

namespace {

std::unique_ptr<RunObserver> makeObserver(bool json, bool quiet) {
    if (json)
        return std::make_unique<JsonObserver>();
    return std::make_unique<TerminalObserver>(!quiet);
}

/// Trains with the run recorded in the project (session::trainRecorded), over processes when asked,
/// and says where the run is recorded.
train::TrainResult trainRecorded(store::Project& project, int64_t runId, const train::TrainConfig& config,
                                 const model::Architecture& architecture, const data::PreparedData& data,
                                 RunObserver& display, train::TrainControl control, int keepCheckpoints, bool json,
                                 ProcessRun* processes, bool projectCreated = false) {
    const auto run = project.run(runId);
    if (json)
        std::cout << nlohmann::json{{"event", "run"},
                                    {"id", runId},
                                    {"name", run->name},
                                    {"project", project.path()},
                                    {"project_created", projectCreated}}
                         .dump()
                  << std::endl;
    else
        std::cout << "run " << runId << " (" << run->name << ") in " << project.path()
                  << (projectCreated ? " (a new project file)" : "") << std::endl;
    auto result = session::trainRecorded(
        project, runId, config, architecture, data, display, std::move(control), keepCheckpoints,
        [&](const train::TrainConfig& c, const model::Architecture& a, const data::PreparedData& d,
            RunObserver& observers,
            const train::TrainControl& k) { return trainInProcesses(c, a, d, observers, k, processes); });
    if (!json)
        std::cout << "recorded as run " << runId << " in " << project.path() << " (mppdl show " << runId << ")"
                  << std::endl;
    return result;
}

struct TrainFlags {
    SourceFlags source;
    std::string architecture;
    train::TrainConfig config;
    std::string normalization = data::toString(train::DataConfig{}.normalization);
    std::string save;
    std::string project;
    bool noProject = false;
    std::string name;
    std::string warmStart;
    int keepCheckpoints = 3;
    bool json = false;
    bool quiet = false;
    bool failureReported = false;
    double movingRate = -1;
    double testFraction = 0;
    ProcessFlags processes;
    CLI::Option* segmentsOption = nullptr;
    CLI::Option* lrOption = nullptr;
    CLI::Option* momentumOption = nullptr;

    void add(CLI::App& c) {
        source.add(c);
        c.add_option("--arch", architecture,
                     "architecture: a JSON file, a name in the project (NAME or NAME@VERSION), or a bundled one: " +
                         bundledList())
            ->required();
        c.add_option("--epochs", config.epochs, "epochs")->capture_default_str();
        c.add_option("--batch-size", config.batchSize, "minibatch size")->capture_default_str();
        c.add_option("--optimizer", config.optimizer.name, joinChoiceNames(train::optimizerChoices(), "|"))
            ->capture_default_str();
        lrOption = c.add_option(
            "--lr", config.optimizer.lr,
            "learning rate (default: the optimizer's; sgd 0.05, adam and adamw 0.001, rmsprop 0.01)");
        momentumOption = c.add_option("--momentum", config.optimizer.momentum,
                                      "momentum (sgd, rmsprop; default: sgd 0.9, rmsprop 0)");
        c.add_flag("--nesterov", config.optimizer.nesterov, "Nesterov momentum (sgd)");
        c.add_option("--weight-decay", config.optimizer.weightDecay, "weight decay")->capture_default_str();
        c.add_option("--schedule", config.schedule.name,
                     "learning-rate schedule: " + joinChoiceNames(train::scheduleChoices(), "|"))
            ->capture_default_str();
        c.add_option("--step-size", config.schedule.stepSize, "step schedule: epochs between decays")
            ->capture_default_str();
        c.add_option("--gamma", config.schedule.gamma, "step schedule: decay factor")->capture_default_str();
        c.add_option("--min-lr", config.schedule.minLr, "cosine schedule: final learning rate")->capture_default_str();
        c.add_option("--val-fraction", config.data.validationFraction,
                     "fraction of the training rows held out for validation (seeded)")
            ->capture_default_str();
        c.add_option("--test-fraction", testFraction,
                     "a source without a test split: hold this fraction of its rows out as one (seeded), for a "
                     "test evaluation and its confusion matrix at the end")
            ->capture_default_str();
        c.add_option("--normalize", normalization,
                     "feature normalization: " + joinChoiceNames(data::normalizationChoices(), "|"))
            ->capture_default_str();
        c.add_option("--memory-budget", config.data.memoryBudget,
                     "memory the prepared rows may take (512M, 2G); more trains out of core, from memory-mapped "
                     "files of packed rows (default: half of what this process may use, its cgroup limit included)");
        c.add_option("--cache-dir", config.data.cacheDir,
                     "where out-of-core rows are cached, reused while the source is unchanged (default: "
                     "$XDG_CACHE_HOME/mppdl)");
        c.add_flag("--no-cache", config.data.noCache,
                   "pg: tables: read the training rows from the server again every epoch, in blocks shuffled "
                   "with a seed, keeping nothing of them (as MADlib without use_caching)");
        c.add_option("--early-stopping", config.earlyStoppingPatience,
                     "stop after N epochs without a lower validation loss (0 = off)")
            ->capture_default_str();
        c.add_option("--device", config.device, "cpu, cuda, cuda:N, or a list (cuda:0,1) the segments are dealt over")
            ->capture_default_str();
        c.add_option(
             "--threads", config.threads,
             "CPU threads of this host, shared by its segments and processes (0 = OMP_NUM_THREADS, else all CPUs)")
            ->capture_default_str();
        c.add_option("--seed", config.seed, "random seed; the same seed repeats a CPU run bit for bit")
            ->capture_default_str();
        c.add_option("--strategy", config.strategy,
                     "how segments train: " + joinChoiceNames(train::strategyChoices(), "|"))
            ->capture_default_str();
        segmentsOption = c.add_option("--segments", config.segments,
                                      "segments the rows are distributed over (default: 1, or --processes)");
        c.add_option("--distribute-by", config.distribution, "how rows go to segments: " + distributionNames())
            ->capture_default_str();
        c.add_option("--sync-every", config.syncEvery,
                     "minibatches between joins: model-averaging's merges (0 = after each pass over the shards), "
                     "easgd's tau (0 = 10)")
            ->capture_default_str();
        c.add_option("--moving-rate", movingRate, "easgd: the moving rate alpha (default 0.9 / segments)");
        c.add_option("--processes", config.processes,
                     "processes the segments are spread over (c10d over Gloo); 1 trains them on this process's threads")
            ->capture_default_str()
            ->check(CLI::Range(1, 4096));
        c.add_option("--gpus-per-host", config.gpusPerHost,
                     "deal the segments over this many GPUs of each host (cuda:0..G-1), as MADlib; 0 = CPU");
        processes.add(c);
        c.add_option("--save", save, "also write the trained model to this file (for eval --model)");
        addProjectFlags(c);
        c.add_option("--warm-start", warmStart,
                     "start from a recorded run's weights: RUN, RUN:EPOCH, RUN:best or RUN:last (default last)");
        c.add_flag("--json", json, "print one JSON object per line per event instead of text");
        c.add_flag("-q,--quiet", quiet, "only epoch lines and the result");
    }

    void addProjectFlags(CLI::App& c) {
        c.add_option("--project", project,
                     "record the run in this project file (default: $MPPDL_PROJECT, else the one *.mppdl in this "
                     "directory, else ./project.mppdl, created)");
        c.add_flag("--no-project", noProject, "do not record the run anywhere");
        c.add_option("--name", name, "the run's name (default: ARCHITECTURE-ID)");
        c.add_option("--keep-checkpoints", keepCheckpoints,
                     "epochs whose weights and resume state are kept (the last K; the best is kept besides)")
            ->capture_default_str()
            ->check(CLI::Range(1, 1000000));
    }

    static std::string distributionNames() {
        std::string out;
        for (const auto& p : data::distributionPolicies())
            out += (out.empty() ? "" : "|") + std::string(p.name);
        return out;
    }

    static std::string bundledList() {
        std::string out;
        for (const auto& n : bundledArchitectures())
            out += (out.empty() ? "" : ", ") + n;
        return out;
    }

    int run() {
        if (!json)
            return train();
        // Programs reading --json get the failure as the last line too, whatever stage it came from.
        try {
            return train();
        } catch (const Error& e) {
            if (!failureReported)
                std::cout << nlohmann::json{{"event", e.kind() == ErrorKind::Cancelled ? "cancelled" : "failed"},
                                            {"kind", toString(e.kind())},
                                            {"message", e.what()}}
                                 .dump()
                          << std::endl;
            throw;
        }
    }

    /// What the flags leave to be worked out from each other.
    void complete() {
        if (movingRate >= 0)
            config.movingRate = movingRate;
        if (segmentsOption && segmentsOption->count() == 0 && config.processes > 1)
            config.segments = config.processes;
        // Another optimizer starts from its own learning rate and momentum, not SGD's.
        if (config.optimizer.name != "sgd" && lrOption && momentumOption) {
            const auto defaults = train::defaultsOf(config.optimizer.name);
            if (lrOption->count() == 0)
                config.optimizer.lr = defaults.lr;
            if (momentumOption->count() == 0)
                config.optimizer.momentum = defaults.momentum;
        }
    }

    int train() {
        complete();
        config.data.location = source.location;
        config.data.source = source.options();
        config.data.source.testFraction = testFraction;
        config.data.normalization = data::parseNormalization(normalization);
        if (noProject && (!warmStart.empty() || !project.empty()))
            throw ConfigError(std::string(!warmStart.empty() ? "--warm-start" : "--project") +
                              " reads a project: it does not go with --no-project");
        const auto observer = makeObserver(json, quiet);
        train::TrainControl control;
        control.cancel = &cancelFlag();
        auto result = noProject ? trainUnrecorded(*observer, control) : trainInProject(*observer, control);
        if (!save.empty()) {
            result.model.save(save);
            if (!json)
                std::cout << "model saved to " << save << std::endl;
        }
        return 0;
    }

    train::TrainResult trainUnrecorded(RunObserver& observer, const train::TrainControl& control) {
        const auto arch = model::loadArchitecture(resolveArchitecture(architecture));
        failureReported = true; // from here on the trainer reports failures as events
        const auto run = ProcessRun::start(config, arch, processes);
        const auto loaded = train::loadData(config, arch, observer, run ? run->group() : nullptr);
        return trainInProcesses(config, arch, loaded.prepared, observer, control, run.get());
    }

    train::TrainResult trainInProject(RunObserver& observer, train::TrainControl control) {
        bool created = false;
        auto store = openProject(project, store::Access::Write, &created);
        store.reconcileInterrupted();
        const auto arch = projectArchitecture(store, architecture, true);
        std::optional<RunWeights> warm;
        if (!warmStart.empty()) {
            warm = runWeights(store, warmStart);
            control.initialWeights = &warm->checkpoint.weights;
            control.initialWeightsFrom = warm->label;
        }
        failureReported = true;
        const auto run = ProcessRun::start(config, arch.architecture, processes);
        const auto loaded = train::loadData(config, arch.architecture, observer, run ? run->group() : nullptr);

        session::RunStart start;
        start.name = name;
        if (warm) {
            start.warmStartRun = warm->run.id;
            start.warmStartEpoch = warm->checkpoint.epoch;
        }
        const int64_t runId = session::createRun(store, config, arch.version, loaded, start);
        return trainRecorded(store, runId, config, arch.architecture, loaded.prepared, observer, control,
                             keepCheckpoints, json, run.get(), created);
    }
};

/// mppdl scale-study: the same training for each N in a list of segment counts, each recorded as a
/// run, then accuracy and time per epoch against N side by side: what a cluster of N segments
/// would cost in accuracy, before buying it.
struct ScaleStudyFlags {
    TrainFlags train;
    std::string segmentList = "1,2,4,8";

    void add(CLI::App& c) {
        train.add(c);
        // Here --segments is the list to compare, as in the issue's `scale-study --segments 1,2,4,8`.
        c.remove_option(c.get_option("--segments"));
        c.add_option("--segments", segmentList, "segment counts to compare, e.g. 1,2,4,8")->capture_default_str();
        train.config.strategy = "model-averaging";
        train.quiet = true;
    }

    std::vector<int> counts() const {
        std::vector<int> out;
        std::stringstream in(segmentList);
        std::string item;
        while (std::getline(in, item, ',')) {
            try {
                size_t used = 0;
                const int n = std::stoi(item, &used);
                if (used != item.size() || n < 1)
                    throw std::invalid_argument(item);
                out.push_back(n);
            } catch (const std::exception&) {
                throw ConfigError("--segments: '" + item + "' is not a segment count (a whole number >= 1)");
            }
        }
        if (out.empty())
            throw ConfigError("--segments: give at least one segment count");
        return out;
    }

    int execute() {
        if (train.json)
            throw ConfigError("scale-study prints a comparison table; it has no --json (each run is recorded: "
                              "use mppdl runs --json and export-metrics)");
        if (train.config.strategy == "single")
            throw ConfigError("scale-study compares segment counts: choose a strategy such as model-averaging");
        const auto ns = counts();
        const std::string study = train.name.empty() ? "scale" : train.name;
        struct Outcome {
            int segments;
            int64_t run = 0;
            std::map<int, double> valAccuracy, epochSeconds;
            std::optional<double> test;
        };
        std::vector<Outcome> outcomes;
        for (const int n : ns) {
            std::cout << "\n== " << n << (n == 1 ? " segment" : " segments") << " ==" << std::endl;
            TrainFlags flags = train;
            flags.config.segments = n;
            flags.name = study + "-" + std::to_string(n);
            flags.config.data.location = flags.source.location;
            flags.config.data.source = flags.source.options();
            flags.config.data.source.testFraction = flags.testFraction;
            flags.config.data.normalization = data::parseNormalization(flags.normalization);
            RecordingObserver recording;
            const auto display = makeObserver(false, true);
            ObserverList observers;
            observers.add(display.get());
            observers.add(&recording);
            train::TrainControl control;
            control.cancel = &cancelFlag();
            const auto result = flags.noProject ? flags.trainUnrecorded(observers, control)
                                                : flags.trainInProject(observers, control);
            Outcome o;
            o.segments = n;
            o.test = result.test ? std::optional<double>(result.test->accuracy) : std::nullopt;
            for (const auto& e : recording.events())
                if (e.kind == EventKind::Epoch && e.segment < 0) {
                    if (e.hasMetric("val_accuracy"))
                        o.valAccuracy[e.epoch] = e.metric("val_accuracy");
                    o.epochSeconds[e.epoch] = e.metric("epoch_seconds");
                }
            outcomes.push_back(std::move(o));
        }

        std::vector<std::string> header = {"epoch"};
        std::vector<TextTable::Align> align = {TextTable::Align::Right};
        for (const auto& o : outcomes) {
            header.push_back("N=" + std::to_string(o.segments));
            align.push_back(TextTable::Align::Right);
        }
        TextTable accuracy(header, align), seconds(header, align);
        for (int epoch = 1; epoch <= train.config.epochs; ++epoch) {
            std::vector<std::string> a = {std::to_string(epoch)}, t = {std::to_string(epoch)};
            for (const auto& o : outcomes) {
                const auto va = o.valAccuracy.find(epoch);
                a.push_back(va == o.valAccuracy.end() ? "-" : percentText(va->second));
                const auto es = o.epochSeconds.find(epoch);
                t.push_back(es == o.epochSeconds.end() ? "-" : humanDuration(es->second));
            }
            accuracy.addRow(a);
            seconds.addRow(t);
        }
        std::vector<std::string> test = {"test"}, ratio = {"vs N=" + std::to_string(outcomes.front().segments)};
        for (const auto& o : outcomes) {
            test.push_back(o.test ? percentText(*o.test) : "-");
            ratio.push_back(o.test && outcomes.front().test ? fixedText(*o.test / *outcomes.front().test, 4) : "-");
        }
        accuracy.addRule();
        accuracy.addRow(test);
        accuracy.addRow(ratio);
        std::cout << "\n"
                  << train.config.strategy << ", " << train.config.distribution
                  << " distribution: validation accuracy per epoch against N\n"
                  << accuracy.render() << "\ntime per epoch against N (all segments share this machine's cores)\n"
                  << seconds.render();
        return 0;
    }
};

/// mppdl resume RUN: continues an interrupted or cancelled run from its last checkpoint, on the
/// same data, configuration and architecture version, in the same run record.
struct ResumeFlags {
    std::string project;
    std::string run;
    int keepCheckpoints = 3;
    int threads = -1;
    std::string device;
    bool json = false;
    bool quiet = false;
    ProcessFlags processes;

    void add(CLI::App& c) {
        c.add_option("RUN", run, "run id or name")->required();
        processes.add(c);
        c.add_option("--project", project, "project file (default: $MPPDL_PROJECT, else the one *.mppdl here)");
        c.add_option("--keep-checkpoints", keepCheckpoints, "epochs whose weights and resume state are kept")
            ->capture_default_str()
            ->check(CLI::Range(1, 1000000));
        c.add_option("--threads", threads, "CPU threads (default: the run's setting)");
        c.add_option("--device", device, "continue on this device: cpu, cuda, cuda:N (default: the run's)");
        c.add_flag("--json", json, "print one JSON object per line per event instead of text");
        c.add_flag("-q,--quiet", quiet, "only epoch lines and the result");
    }

    int execute() {
        auto store = openProject(project, store::Access::Write);
        store.reconcileInterrupted();
        const auto observer = makeObserver(json, quiet);
        std::unique_ptr<ProcessRun> processRun;
        const auto point = session::prepareResume(store, findRun(store, run), *observer, {threads, device},
                                                  [&](const train::TrainConfig& config,
                                                      const model::Architecture& architecture) {
                                                      processRun = ProcessRun::start(config, architecture, processes);
                                                      return processRun ? processRun->group() : nullptr;
                                                  });
        if (point.fromStart)
            // Said in --json mode too (on stderr): the run starts over rather than continues.
            std::cerr << point.label << " stopped before its first checkpoint: training it again from the "
                      << "beginning" << std::endl;
        else if (!json)
            std::cout << "resuming " << point.label << " after epoch " << point.checkpoint.epoch << " of "
                      << point.config.epochs << std::endl;
        train::TrainControl control;
        control.cancel = &cancelFlag();
        control.resumeFrom = point.fromStart ? nullptr : &point.checkpoint;
        if (point.warmStart) {
            control.initialWeights = &point.warmStart->checkpoint.weights;
            control.initialWeightsFrom = point.warmStart->label;
        }
        trainRecorded(store, point.run.id, point.config, point.architecture, point.loaded.prepared, *observer, control,
                      keepCheckpoints, json, processRun.get());
        return 0;
    }
};

} // namespace

void registerTrainCommands(CLI::App& app, Command& selected) {
    auto trainFlags = std::make_shared<TrainFlags>();
    auto* train = app.add_subcommand(
        "train", "train a network on a data source: one model, or segments on threads, processes or hosts");
    trainFlags->add(*train);
    train->callback([&selected, trainFlags] { selected = [trainFlags] { return trainFlags->run(); }; });

    auto demoFlags = std::make_shared<TrainFlags>();
    auto* demo = app.add_subcommand("demo",
                                    "train fmnist_cnn on Fashion-MNIST for one epoch and print the test accuracy");
    demoFlags->source.location = kFashionMnistDir;
    demoFlags->architecture = "fmnist_cnn";
    demoFlags->config.epochs = 1;
    demoFlags->config.batchSize = 128;
    demoFlags->config.optimizer.lr = 0.05;
    demoFlags->config.optimizer.momentum = 0.9;
    demoFlags->config.seed = 1;
    demo->add_option("--epochs", demoFlags->config.epochs, "epochs")->capture_default_str();
    demo->add_option("--limit", demoFlags->source.limit, "use only the first N training rows")->capture_default_str();
    demo->add_option("--threads", demoFlags->config.threads, "CPU threads (0 = OMP_NUM_THREADS, else all CPUs)")
        ->capture_default_str();
    demo->add_option("--device", demoFlags->config.device, "cpu, cuda or cuda:N")->capture_default_str();
    demo->add_flag("--json", demoFlags->json, "JSON lines instead of text");
    demoFlags->addProjectFlags(*demo);
    demo->callback([&selected, demoFlags] {
        selected = [demoFlags] {
            if (!demoFlags->json)
                std::cout << "mppdl demo: fmnist_cnn on Fashion-MNIST (" << kFashionMnistDir << "), "
                          << demoFlags->config.epochs << " epoch(s), SGD lr 0.05 momentum 0.9, batch 128\n";
            return demoFlags->run();
        };
    });

    auto studyFlags = std::make_shared<ScaleStudyFlags>();
    auto* study = app.add_subcommand(
        "scale-study", "train the same network for each segment count and compare accuracy and time against N");
    studyFlags->add(*study);
    study->callback([&selected, studyFlags] { selected = [studyFlags] { return studyFlags->execute(); }; });

    auto resumeFlags = std::make_shared<ResumeFlags>();
    auto* resume = app.add_subcommand("resume", "continue an interrupted or cancelled run from its last checkpoint");
    resumeFlags->add(*resume);
    resume->callback([&selected, resumeFlags] { selected = [resumeFlags] { return resumeFlags->execute(); }; });
}

} // namespace mppdl::cli
