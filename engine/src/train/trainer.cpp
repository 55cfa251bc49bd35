#include "mppdl/train/trainer.h"

#include "collectives.h"
#include "run_loop.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
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
    if (c.earlyStoppingPatience > 0 && c.data.validationFraction <= 0)
        problems.push_back("early stopping watches the validation loss: set a validation fraction > 0");
    if (c.threads < 0)
        problems.push_back("threads must be >= 0");
    return problems;
}

namespace {

at::Tensor indexTensor(const std::vector<int64_t>& positions) {
    return torch::tensor(at::ArrayRef<int64_t>(positions), torch::kInt64);
}

/// Once prepared, the rows as read are not needed: the run holds their normalized copy only.
void releaseRows(data::LoadedSource& source) {
    source.train = data::Dataset();
    source.test = data::Dataset();
}

/// The whole source, split and normalized here.
LoadedData loadWhole(const TrainConfig& config, const data::SourceOptions& options, bool readShards) {
    data::LoadedSource source = data::loadSource(config.data.location, options);
    if (readShards && !source.train.homeSegments().defined())
        throw ConfigError("the '" + config.distribution + "' distribution keeps each row on the segment the " +
                          "database holds it on: it needs a pg: source, not " + source.kind + " " + source.location);
    // The statistics first, while the rows as read are the only copy in memory.
    LoadedData loaded;
    loaded.schema = source.schema();
    loaded.statistics = data::computeStatistics(source.train);
    loaded.source = source;
    releaseRows(loaded.source);
    // Handed over, so that preparing gives the raw rows back as their float copies are made.
    loaded.prepared = data::prepare(std::move(source), config.data.validationFraction, config.seed,
                                    config.data.normalization);
    return loaded;
}

/// This process's rows of the run (data::planRankRows): read, split and normalized with the
/// other processes' rows in view.
LoadedData loadRankRows(const TrainConfig& config, data::SourceOptions options, Collectives& group) {
    const auto* policy = data::findDistributionPolicy(config.distribution);
    const StrategyKind& strategy = *findStrategy(config.strategy);
    data::RunLayout layout;
    layout.segments = config.segments;
    layout.policy = config.distribution;
    layout.seed = config.seed;
    layout.validationFraction = config.data.validationFraction;
    layout.rank = group.rank();
    layout.world = group.world();
    layout.shareEvaluation = !strategy.keepsMembers;
    const std::string& location = config.data.location;

    data::LoadedSource source;
    data::RankRows rows;
    if (policy->fromSource) {
        // A table read as the segments' shards: this process's shards only, the others counted.
        options.segments = config.segments;
        options.shards = data::segmentsOfRank(config.segments, layout.rank, layout.world);
        source = data::loadSource(location, options);
        if (source.shardRows.empty())
            throw ConfigError("the '" + config.distribution + "' distribution keeps each row on the segment the " +
                              "database holds it on: it needs a pg: source, not " + source.kind + " " + location);
        data::SourceRows known;
        known.trainRows = source.sourceTrainRows;
        known.shardRows = source.shardRows;
        known.classes = source.train.numClasses();
        rows = data::planRankRows(known, layout);
    } else {
        // Every row's label and the row counts first (no features decoded), then the own rows.
        auto first = options;
        first.rows = std::make_shared<data::RowSelection>();
        source = data::loadSource(location, first);
        const bool selective = source.sourceTrainRows >= 0;
        data::SourceRows known;
        known.trainRows = selective ? source.sourceTrainRows : source.train.size();
        known.testRows = selective ? source.sourceTestRows : source.test.size();
        known.classes = source.train.numClasses();
        if (policy->usesLabels) {
            if (selective)
                known.labels = source.allLabels;
            else {
                const auto labels = source.train.labels().contiguous();
                known.labels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
            }
        }
        rows = data::planRankRows(known, layout);
        if (selective) {
            options.rows = std::make_shared<data::RowSelection>(rows.read);
            source = data::loadSource(location, options);
        } else {
            // A kind that reads every row (a pg: table not read by shards): its rows are taken
            // from the whole read, which is what rows_read then says.
            const int64_t whole = source.rowsRead;
            source.train = source.train.select(indexTensor(rows.read.train));
            if (!source.test.empty())
                source.test = source.test.select(indexTensor(rows.read.test));
            source.sourceTrainRows = known.trainRows;
            source.sourceTestRows = known.testRows;
            source.rowsRead = whole;
        }
    }
    if (source.train.size() != static_cast<int64_t>(rows.read.train.size()))
        throw InternalError(location + ": read " + std::to_string(source.train.size()) + " rows, planned " +
                            std::to_string(rows.read.train.size()));

    const data::Reduce reduce = [&group](at::Tensor& values, bool max) { allreduceTensors(&group, {values}, max); };
    LoadedData loaded;
    // The dataset's record first, while the rows as read are the only copy: the schema and the
    // statistics of every row, each counted by one process.
    std::vector<int64_t> owned = rows.trainAt;
    for (const int64_t v : rows.validationOwnedAt)
        owned.push_back(rows.validationAt[static_cast<size_t>(v)]);
    std::sort(owned.begin(), owned.end());
    loaded.statistics = data::computeStatistics(source.train.select(indexTensor(owned)), reduce);
    loaded.schema = source.schema();
    loaded.schema.trainRows = rows.trainRows + rows.validationRows;
    loaded.schema.testRows = rows.testRows;

    auto& prepared = loaded.prepared;
    const auto trainAt = indexTensor(rows.trainAt);
    prepared.normalizer = data::Normalizer::fit(config.data.normalization, source.train.select(trainAt), reduce);
    prepared.train = prepared.normalizer.apply(source.train, trainAt);
    prepared.validation = prepared.normalizer.apply(source.train, indexTensor(rows.validationAt));
    source.train = data::Dataset(); // the raw rows go before the test set is made
    prepared.test = prepared.normalizer.apply(source.test);
    prepared.rowsRead = source.rowsRead;
    prepared.bytesRead = source.bytesRead;
    auto local = std::make_shared<data::LocalRows>();
    local->rank = layout.rank;
    local->world = layout.world;
    local->segmentRows = rows.segmentRows;
    local->segmentSizes = rows.segmentSizes;
    local->trainRows = rows.trainRows;
    local->validationRows = rows.validationRows;
    local->testRows = rows.testRows;
    local->sharedEvaluation = layout.shareEvaluation;
    prepared.local = local;
    loaded.source = std::move(source);
    releaseRows(loaded.source);
    return loaded;
}

} // namespace

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
        // A long read says how far it has come.
        options.progress = [&](int64_t rows, int64_t expected) {
            emitter.message("reading " + config.data.location + ": " + std::to_string(rows) +
                            (expected > 0 ? " of ~" + std::to_string(expected) : "") + " rows in " +
                            humanDuration(secondsSince(start)));
        };
        Collectives* group = processes ? processes->collectives() : nullptr;
        const bool ownRows = group && group->world() > 1;
        LoadedData loaded = ownRows ? loadRankRows(config, options, *group) : loadWhole(config, options, readShards);
        const auto& prepared = loaded.prepared;
        const auto* local = prepared.local.get();
        std::ostringstream m;
        m << "data: " << loaded.source.kind << " " << config.data.location << ", "
          << (local ? local->trainRows : prepared.train.size()) << " train / "
          << (local ? local->validationRows : prepared.validation.size()) << " validation / "
          << (local ? local->testRows : prepared.test.size()) << " test rows of "
          << data::formatShape(prepared.train.sampleShape()) << ", " << prepared.train.numClasses() << " classes";
        if (local)
            m << "; this process read " << prepared.rowsRead << " of them";
        m << ", loaded in " << humanDuration(secondsSince(start));
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
