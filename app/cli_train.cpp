// mppdl train, demo, eval.

#include "cli_common.h"
#include "json_observer.h"
#include "terminal_observer.h"

#include "mppdl/core/error.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/trainer.h"

#include <nlohmann/json.hpp>

#include <iostream>
#include <memory>

namespace mppdl::cli {

namespace {

struct TrainFlags {
    SourceFlags source;
    std::string architecture;
    train::TrainConfig config;
    std::string normalization = "scale";
    std::string save;
    bool json = false;
    bool quiet = false;
    bool failureReported = false;

    void add(CLI::App& c) {
        source.add(c);
        c.add_option("--arch", architecture, "architecture JSON file, or a bundled one: " + bundledList())
            ->required();
        c.add_option("--epochs", config.epochs, "epochs")->capture_default_str();
        c.add_option("--batch-size", config.batchSize, "minibatch size")->capture_default_str();
        c.add_option("--optimizer", config.optimizer.name, joinNames(train::optimizerChoices()))->capture_default_str();
        c.add_option("--lr", config.optimizer.lr, "learning rate")->capture_default_str();
        c.add_option("--momentum", config.optimizer.momentum, "momentum (sgd, rmsprop)")->capture_default_str();
        c.add_flag("--nesterov", config.optimizer.nesterov, "Nesterov momentum (sgd)");
        c.add_option("--weight-decay", config.optimizer.weightDecay, "weight decay")->capture_default_str();
        c.add_option("--schedule", config.schedule.name, "learning-rate schedule: " + joinNames(train::scheduleChoices()))
            ->capture_default_str();
        c.add_option("--step-size", config.schedule.stepSize, "step schedule: epochs between decays")->capture_default_str();
        c.add_option("--gamma", config.schedule.gamma, "step schedule: decay factor")->capture_default_str();
        c.add_option("--min-lr", config.schedule.minLr, "cosine schedule: final learning rate")->capture_default_str();
        c.add_option("--val-fraction", config.data.validationFraction,
                     "fraction of the training rows held out for validation (seeded)")
            ->capture_default_str();
        c.add_option("--normalize", normalization, "feature normalization: none|scale|standardize")->capture_default_str();
        c.add_option("--early-stopping", config.earlyStoppingPatience,
                     "stop after N epochs without a lower validation loss (0 = off)")
            ->capture_default_str();
        c.add_option("--device", config.device, "cpu, cuda or cuda:N")->capture_default_str();
        c.add_option("--threads", config.threads, "CPU threads (0 = OMP_NUM_THREADS, else all CPUs)")->capture_default_str();
        c.add_option("--seed", config.seed, "random seed; the same seed repeats a CPU run bit for bit")
            ->capture_default_str();
        c.add_option("--save", save, "write the trained model to this file (for eval)");
        c.add_flag("--json", json, "print one JSON object per line per event instead of text");
        c.add_flag("-q,--quiet", quiet, "only epoch lines and the result");
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

    int train() {
        config.data.location = source.location;
        config.data.source = source.options();
        config.data.normalization = data::parseNormalization(normalization);
        const auto architecture = model::loadArchitecture(resolveArchitecture(this->architecture));
        std::unique_ptr<train::RunObserver> observer;
        if (json)
            observer = std::make_unique<JsonObserver>();
        else
            observer = std::make_unique<TerminalObserver>(!quiet);
        failureReported = true; // from here on the trainer reports failures as events
        train::TrainControl control;
        control.cancel = &cancelFlag();
        auto result = train::train(config, architecture, *observer, control);
        if (!save.empty()) {
            result.model.save(save);
            if (!json)
                std::cout << "model saved to " << save << std::endl;
        }
        return 0;
    }
};

struct EvalFlags {
    SourceFlags source;
    std::string modelPath;
    std::string split = "test";
    std::string device = "cpu";
    bool json = false;

    void add(CLI::App& c) {
        c.add_option("--model", modelPath, "a model file written by 'mppdl train --save'")->required();
        source.add(c);
        c.add_option("--split", split, "test (the source's test split, or all rows when it has none)|train|all")
            ->capture_default_str();
        c.add_option("--device", device, "cpu, cuda or cuda:N")->capture_default_str();
        c.add_flag("--json", json, "print the result as one JSON object");
    }

    int run() {
        const auto model = train::TrainedModel::load(modelPath, device);
        const auto loaded = data::loadSource(source.location, source.options());
        data::Dataset rows;
        std::string name = split;
        if (split == "test") {
            rows = loaded.test.empty() ? loaded.train : loaded.test;
            if (loaded.test.empty())
                name = "all";
        } else if (split == "train") {
            rows = loaded.train;
        } else if (split == "all") {
            rows = loaded.train;
            if (!loaded.test.empty())
                throw ConfigError("--split all is for sources without a test split; use --split train or test");
        } else {
            throw ConfigError("--split must be test, train or all, got '" + split + "'");
        }
        const auto evaluation = model.evaluate(rows, name);
        if (json)
            std::cout << evaluationJson(evaluation) << std::endl;
        else
            printEvaluation(evaluation);
        return 0;
    }
};

} // namespace

void registerTrainCommands(CLI::App& app, Command& selected) {
    auto trainFlags = std::make_shared<TrainFlags>();
    auto* train = app.add_subcommand("train", "train a network on a data source (single device)");
    trainFlags->add(*train);
    train->callback([&selected, trainFlags] { selected = [trainFlags] { return trainFlags->run(); }; });

    auto demoFlags = std::make_shared<TrainFlags>();
    auto* demo = app.add_subcommand(
        "demo", "train fmnist_cnn on Fashion-MNIST for one epoch and print the test accuracy");
    demoFlags->source.location = kFashionMnistDir;
    demoFlags->architecture = "fmnist_cnn";
    demoFlags->config.epochs = 1;
    demoFlags->config.batchSize = 128;
    demoFlags->config.optimizer.lr = 0.05;
    demoFlags->config.optimizer.momentum = 0.9;
    demoFlags->config.seed = 1;
    demo->add_option("--epochs", demoFlags->config.epochs, "epochs")->capture_default_str();
    demo->add_option("--limit", demoFlags->source.limit, "use only the first N training rows")->capture_default_str();
    demo->add_option("--threads", demoFlags->config.threads, "CPU threads (0 = OMP_NUM_THREADS, else all CPUs)")->capture_default_str();
    demo->add_option("--device", demoFlags->config.device, "cpu, cuda or cuda:N")->capture_default_str();
    demo->add_flag("--json", demoFlags->json, "JSON lines instead of text");
    demo->callback([&selected, demoFlags] {
        selected = [demoFlags] {
            if (!demoFlags->json)
                std::cout << "mppdl demo: fmnist_cnn on Fashion-MNIST (" << kFashionMnistDir << "), "
                          << demoFlags->config.epochs << " epoch(s), SGD lr 0.05 momentum 0.9, batch 128\n";
            return demoFlags->run();
        };
    });

    auto evalFlags = std::make_shared<EvalFlags>();
    auto* eval = app.add_subcommand("eval", "evaluate a saved model on a data source");
    evalFlags->add(*eval);
    eval->callback([&selected, evalFlags] { selected = [evalFlags] { return evalFlags->run(); }; });
}

} // namespace mppdl::cli
