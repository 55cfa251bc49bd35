#include "mppdl/train/trainer.h"

#include "collectives.h"
#include "data_loading.h"
#include "run_loop.h"

#include "data/seeded.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/memory.h"
#include "mppdl/data/run_rows.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/process_group.h"
#include "mppdl/train/strategies.h"

#include <algorithm>
#include <sstream>

namespace mppdl::train {

int64_t modelMembers(const TrainConfig& config) {
    const StrategyKind* strategy = findStrategy(config.strategy);
    return strategy && strategy->keepsMembers ? config.segments : 1;
}

std::vector<std::string> validate(const TrainConfig& c) {
    std::vector<std::string> problems = validate(c.optimizer);
    const StrategyKind* strategy = findStrategy(c.strategy);
    if (!strategy)
        problems.push_back("unknown strategy '" + c.strategy + "' (known: " + [] {
            std::string known;
            for (const auto& s : strategyChoices())
                known += (known.empty() ? "" : ", ") + std::string(s.name);
            return known;
        }() + ")");
    if (c.segments < 1)
        problems.push_back("segments must be >= 1, got " + std::to_string(c.segments));
    if (strategy && !strategy->segmented && c.segments > 1)
        problems.push_back("the " + c.strategy + " strategy trains one model on one device: for " +
                           std::to_string(c.segments) + " segments choose a strategy such as model-averaging");
    if (c.syncEvery < 0)
        problems.push_back("sync-every must be >= 0 (0: the strategy's default)");
    if (strategy && strategy->join == Join::Gradients && c.syncEvery > 1)
        problems.push_back("allreduce averages the gradients of every step: --sync-every does not apply");
    if (c.movingRate && (*c.movingRate < 0 || *c.movingRate > 1))
        problems.push_back("the moving rate must be in [0, 1], got " + std::to_string(*c.movingRate));
    if (c.movingRate && strategy && !strategy->usesMovingRate)
        problems.push_back("the moving rate is EASGD's: use it with --strategy easgd");
    if (c.processes < 1)
        problems.push_back("processes must be >= 1, got " + std::to_string(c.processes));
    if (c.processes > c.segments)
        problems.push_back(std::to_string(c.processes) + " processes for " + std::to_string(c.segments) +
                           " segments: each process trains at least one segment");
    if (c.gpusPerHost < -1)
        problems.push_back("gpus-per-host must be >= 0");
    if (!data::findDistributionPolicy(c.distribution))
        problems.push_back("unknown distribution '" + c.distribution + "'");
    for (auto& p : validate(c.schedule))
        problems.push_back(std::move(p));
    if (c.epochs < 1)
        problems.push_back("epochs must be >= 1, got " + std::to_string(c.epochs));
    if (c.batchSize < 1)
        problems.push_back("batch size must be >= 1, got " + std::to_string(c.batchSize));
    if (c.data.validationFraction < 0 || c.data.validationFraction >= 1)
        problems.push_back("validation fraction must be in [0, 1), got " + std::to_string(c.data.validationFraction));
    if (c.earlyStoppingPatience < 0)
        problems.push_back("early-stopping patience must be >= 0");
    if (c.data.source.testFraction < 0 || c.data.source.testFraction >= 1)
        problems.push_back("test fraction must be in [0, 1), got " + std::to_string(c.data.source.testFraction));
    if (c.data.source.testFraction > 0 && c.data.noCache)
        problems.push_back("--test-fraction holds rows out of a source read whole; --no-cache streams a table's rows "
                           "every epoch: hold the test rows out in SQL instead");
    if (c.earlyStoppingPatience > 0 && c.data.validationFraction <= 0)
        problems.push_back("early stopping watches the validation loss: set a validation fraction > 0");
    if (c.threads < 0)
        problems.push_back("threads must be >= 0");
    if (c.data.noCache) {
        const auto* policy = data::findDistributionPolicy(c.distribution);
        if (c.data.location.rfind("pg:", 0) != 0)
            problems.push_back("--no-cache reads a pg: table from its server again every epoch; " + c.data.location +
                               " is not one (files are read once: in memory, or from the cache "
                               "out of core)");
        else if (policy && policy->fromSource)
            problems.push_back("--no-cache streams the rows the trainer deals to segments; the '" + c.distribution +
                               "' distribution reads each segment's shard once, in memory");
    }
    if (!c.data.memoryBudget.empty()) {
        try {
            data::parseByteSize(c.data.memoryBudget);
        } catch (const Error& e) {
            problems.push_back(e.what());
        }
    }
    return problems;
}

LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer) {
    return loadData(config, architecture, observer, nullptr);
}

LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer,
                    ProcessGroup* processes) {
    Emitter emitter(observer);
    return reportFailures(emitter, [&] {
        const auto problems = validate(config);
        if (!problems.empty())
            throw ConfigError(problems.front());
        // Before the data is loaded: a wrong device should fail fast.
        segmentDevices(config.device, config.gpusPerHost, config.segments);
        const auto analysis = model::analyze(architecture);
        if (!analysis.ok())
            throw ConfigError("invalid architecture '" + architecture.name + "':\n" +
                              formatProblems(analysis.problems));
        const auto start = Clock::now();
        // The "database" distribution reads the table as the segments' shards, in parallel.
        auto options = config.data.source;
        const auto* policy = data::findDistributionPolicy(config.distribution);
        const bool readShards = policy && policy->fromSource && findStrategy(config.strategy)->segmented;
        if (readShards)
            options.segments = config.segments;
        // Flat rows as wide as the network's input take its shape; a test split drawn from the
        // training rows uses the run's seed; a CSV's categories are those of the run's own
        // training rows (not its validation or test rows).
        options.flatShape = analysis.inputShape;
        // A Keras model's rows are channels last, unless --shape declares the engine's shape.
        if (options.layout.empty() && options.shape.empty() && analysis.inputLayout != "chw")
            options.layout = analysis.inputLayout;
        options.testSeed = config.seed;
        const double validationFraction = config.data.validationFraction;
        const uint64_t seed = config.seed;
        options.fitRows = [validationFraction, seed](int64_t rows) {
            return data::splitValidation(rows, validationFraction, seed).train;
        };
        // A long read says how far it has come.
        options.progress = [&](int64_t rows, int64_t expected) {
            emitter.message("reading " + config.data.location + ": " + std::to_string(rows) +
                            (expected > 0 ? " of ~" + std::to_string(expected) : "") + " rows in " +
                            humanDuration(secondsSince(start)));
        };
        Collectives* group = processes ? processes->collectives() : nullptr;
        LoadedData loaded = loadRunData(config, options, group, readShards,
                                        [&](const std::string& text) { emitter.message(text); });
        // Kept with the model: new rows are read with the columns and categories it was trained on.
        loaded.prepared.normalizer.encoding = loaded.source.encoding;
        const auto& prepared = loaded.prepared;
        const auto* local = prepared.local.get();
        std::ostringstream m;
        m << "data: " << loaded.source.kind << " " << config.data.location << ", "
          << (local ? local->trainRows : prepared.train.size()) << " train / "
          << (local ? local->validationRows : prepared.validation.size()) << " validation / "
          << (local ? local->testRows : prepared.test.size()) << " test rows of "
          << data::formatShape(prepared.train.sampleShape()) << ", " << prepared.train.numClasses() << " classes";
        if (local && local->world > 1 && !prepared.residence.streamed)
            m << "; this process read " << prepared.rowsRead << " of them";
        m << ", loaded in " << humanDuration(secondsSince(start));
        if (loaded.source.badRows > 0)
            m << "; " << countText(loaded.source.badRows, "row")
              << " with a NaN or infinite feature left out (--on-bad-rows skip)";
        if (prepared.residence.outOfCore)
            m << "; out of core" << (prepared.residence.reused ? ", from the cache" : "") << ": "
              << prepared.residence.why;
        if (prepared.residence.streamed)
            m << "; " << prepared.residence.why;
        for (const auto& note : loaded.source.notes) // how the source was read, said before the figures
            emitter.message(note);
        emitter.message(m.str());
        return loaded;
    });
}

TrainResult train(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer,
                  const TrainControl& control) {
    const auto loaded = loadData(config, architecture, observer);
    return train(config, architecture, loaded.prepared, observer, control);
}

TrainResult train(const TrainConfig& config, const model::Architecture& architecture, const data::PreparedData& data,
                  RunObserver& observer, const TrainControl& control) {
    Emitter emitter(observer, control.resumeFrom ? control.resumeFrom->wallSeconds : 0);
    return reportFailures(emitter, [&] { return RunLoop(config, architecture, data, control, emitter).run(); });
}

} // namespace mppdl::train
