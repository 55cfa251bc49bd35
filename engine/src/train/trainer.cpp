#include "mppdl/train/trainer.h"

#include "evaluate.h"
#include "collectives.h"
#include "optimizer_factory.h"
#include "segments.h"
#include "trained_model_impl.h"
#include "weights.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/process_group.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <chrono>
#include <exception>
#include <limits>
#include <thread>
#include <cmath>
#include <sstream>

namespace mppdl::train {

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// Stamps events with the run's wall time and hands them to the observer.
class Emitter {
public:
    /// `offset`: wall time the run had already spent before this process (a resume).
    explicit Emitter(RunObserver& observer, double offset = 0)
        : m_observer(observer), m_start(Clock::now()), m_offset(offset) {}

    void emit(RunEvent event) {
        event.wallSeconds = elapsed();
        m_observer.onEvents({std::move(event)});
    }
    void message(const std::string& text) {
        RunEvent e;
        e.kind = EventKind::Message;
        e.message = text;
        emit(std::move(e));
    }
    void failed(const Error& error) {
        RunEvent e;
        e.kind = error.kind() == ErrorKind::Cancelled ? EventKind::Cancelled : EventKind::Failed;
        e.message = error.what();
        e.errorKind = toString(error.kind());
        emit(std::move(e));
    }
    double elapsed() const { return m_offset + secondsSince(m_start); }

private:
    RunObserver& m_observer;
    Clock::time_point m_start;
    double m_offset;
};

/// Runs `body`, reporting any failure once as a Failed/Cancelled event and rethrowing it as an
/// mppdl::Error; libtorch's own exceptions are translated here, at the engine's edge.
template <typename Body>
auto reportFailures(Emitter& emitter, Body&& body) -> decltype(body()) {
    try {
        return body();
    } catch (const Error& e) {
        emitter.failed(e);
        throw;
    } catch (const c10::Error& e) {
        const std::string what = e.what_without_backtrace();
        if (what.find("out of memory") != std::string::npos) {
            DeviceError error("the device ran out of memory: " + what.substr(0, what.find('\n')) +
                              " (try a smaller --batch-size)");
            emitter.failed(error);
            throw error;
        }
        InternalError error("libtorch: " + what.substr(0, what.find('\n')));
        emitter.failed(error);
        throw error;
    } catch (const std::bad_alloc&) {
        DeviceError error("out of memory");
        emitter.failed(error);
        throw error;
    } catch (const std::exception& e) {
        InternalError error(e.what());
        emitter.failed(error);
        throw error;
    }
}

/// What the epoch loop carries from one epoch to the next besides weights and optimizer state.
struct LoopState {
    int epochsDone = 0;
    int64_t globalStep = 0;
    int bestEpoch = 0;
    double bestValAccuracy = -1;
    double bestValLoss = INFINITY;
    int epochsWithoutImprovement = 0;
    bool stoppedEarly = false;

    nlohmann::json toJson() const {
        // JSON has no infinity: a run without validation keeps bestValLoss infinite.
        return {{"epochs_done", epochsDone},
                {"global_step", globalStep},
                {"best_epoch", bestEpoch},
                {"best_val_accuracy", bestValAccuracy},
                {"best_val_loss", std::isfinite(bestValLoss) ? nlohmann::json(bestValLoss) : nlohmann::json()},
                {"epochs_without_improvement", epochsWithoutImprovement},
                {"stopped_early", stoppedEarly}};
    }
    static LoopState fromJson(const nlohmann::json& j) {
        LoopState s;
        s.epochsDone = j.at("epochs_done").get<int>();
        s.globalStep = j.at("global_step").get<int64_t>();
        s.bestEpoch = j.at("best_epoch").get<int>();
        s.bestValAccuracy = j.at("best_val_accuracy").get<double>();
        s.bestValLoss = j.at("best_val_loss").is_null() ? INFINITY : j.at("best_val_loss").get<double>();
        s.epochsWithoutImprovement = j.at("epochs_without_improvement").get<int>();
        s.stoppedEarly = j.at("stopped_early").get<bool>();
        return s;
    }
};

/// How a strategy joins its segments' models; the rows of the one table of strategies.
enum class Join {
    None,      ///< single (one segment), ensemble (independent members)
    Average,   ///< model averaging
    Elastic,   ///< EASGD
    Gradients, ///< all-reduce
};

struct Strategy {
    Choice choice;
    Join join;
    /// Minibatches between joins when --sync-every is 0; 0 means once per pass over the shards.
    int64_t defaultSyncEvery;
};

/// EASGD's communication period when none is given: the paper's tau.
constexpr int64_t kDefaultTau = 10;

const std::vector<Strategy>& strategies() {
    static const std::vector<Strategy> table = {
        {{"single", "one model trained on all rows (the reference the others are compared with)"}, Join::None, 0},
        {{"model-averaging",
          "MADlib's fit: a replica per segment trains on its shard; the replicas are averaged, weighted "
          "by rows, after each pass (or every --sync-every minibatches) and the average is broadcast"},
         Join::Average, 0},
        {{"easgd",
          "elastic averaging SGD: every --sync-every minibatches (tau, default 10) each replica moves toward a "
          "center model by the moving rate and the center toward the replicas (alpha = 0.9 / segments)"},
         Join::Elastic, kDefaultTau},
        {{"ensemble",
          "one independent model per segment; the prediction is the mean of their class probabilities"},
         Join::None, 0},
        {{"allreduce",
          "synchronous data parallel, as DDP: each step the segments' gradients are averaged, weighted by rows, "
          "so the replicas stay equal (one step over the union of the segments' minibatches)"},
         Join::Gradients, 1},
    };
    return table;
}

const Strategy* findStrategy(const std::string& name) {
    for (const auto& s : strategies())
        if (name == s.choice.name)
            return &s;
    return nullptr;
}

/// A segment's minibatch: the configured size, or all its rows when it has fewer (at least 1).
int64_t minibatchOf(int64_t batchSize, int64_t rows) { return std::min<int64_t>(batchSize, std::max<int64_t>(1, rows)); }

/// Archive keys of the resume state: one entry per segment, holding that segment's own archive.
std::string segmentKey(int segment) { return "segment_" + std::to_string(segment); }
constexpr int64_t kStateFormat = 2;

torch::Tensor bytesTensor(const std::string& bytes) {
    auto t = torch::empty({int64_t(bytes.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    return t;
}
std::string tensorBytes(const torch::Tensor& t) {
    const auto c = t.contiguous().to(torch::kCPU);
    return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel()));
}

/// One segment's resume state: its optimizer state, the generators of its epoch order and
/// Dropout, and (when its weights are its own, as in EASGD and ensembles) its weights.
std::string serializeSegment(Replica& r, bool withWeights) {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive optimizerArchive;
    r.optimizer->save(optimizerArchive);
    archive.write("optimizer", optimizerArchive);
    writeGenerator(archive, "permutation_rng", r.permutation);
    if (r.dropout.defined())
        writeGenerator(archive, "dropout_rng", r.dropout);
    if (withWeights) {
        torch::serialize::OutputArchive weights;
        r.module->save(weights);
        archive.write("weights", weights);
    }
    return serializeArchive(archive);
}

void restoreSegment(Replica& r, const std::string& blob, bool withWeights, const std::string& what) {
    torch::serialize::InputArchive archive;
    // Read onto the segment's device, so that the optimizer's buffers land beside the parameters.
    loadArchive(archive, blob, what, r.device);
    torch::serialize::InputArchive optimizerArchive;
    archive.read("optimizer", optimizerArchive);
    r.optimizer->load(optimizerArchive);
    readGenerator(archive, "permutation_rng", r.permutation);
    if (r.dropout.defined())
        readGenerator(archive, "dropout_rng", r.dropout);
    if (withWeights) {
        torch::serialize::InputArchive weights;
        archive.read("weights", weights);
        r.module->load(weights);
    }
}

/// Every segment's state blob, at every process: the local ones made here, the others gathered.
std::map<int, std::string> gatherSegments(std::vector<Replica>& replicas, bool withWeights, Collectives* group) {
    std::map<int, std::string> all;
    torch::serialize::OutputArchive mine;
    for (auto& r : replicas) {
        auto blob = serializeSegment(r, withWeights);
        if (!group || group->world() == 1)
            all[r.segment] = std::move(blob);
        else
            mine.write(segmentKey(r.segment), bytesTensor(blob));
    }
    if (!group || group->world() == 1)
        return all;
    for (const auto& bytes : group->allgather(serializeArchive(mine))) {
        torch::serialize::InputArchive theirs;
        loadArchive(theirs, bytes, "a process's segment state");
        for (const auto& key : theirs.keys()) {
            torch::Tensor t;
            theirs.read(key, t);
            all[std::stoi(key.substr(std::strlen("segment_")))] = tensorBytes(t);
        }
    }
    return all;
}

/// The resume half of a checkpoint: every segment's state, the devices' generators and the loop
/// counters.
std::string serializeState(const std::map<int, std::string>& segments, const std::vector<torch::Device>& devices,
                           const LoopState& loop) {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(kStateFormat));
    for (const auto& [segment, blob] : segments)
        archive.write(segmentKey(segment), bytesTensor(blob));
    for (const auto& device : devices)
        if (!device.is_cpu())
            writeGenerator(archive, "device_rng_" + device.str(), at::globalContext().defaultGenerator(device));
    archive.write("loop", c10::IValue(loop.toJson().dump()));
    return serializeArchive(archive);
}

LoopState restoreState(const std::string& blob, const std::string& what, std::vector<Replica>& replicas,
                       bool withWeights, const std::vector<torch::Device>& devices) {
    torch::serialize::InputArchive archive;
    loadArchive(archive, blob, what);
    try {
        c10::IValue format;
        if (!archive.try_read("format", format) || !format.isInt() || format.toInt() != kStateFormat)
            throw ConfigError(what + " was made by an earlier mppdl whose resume state this one cannot read "
                                     "(its weights can still be evaluated or warm-started from)");
        for (auto& r : replicas) {
            torch::Tensor bytes;
            if (!archive.try_read(segmentKey(r.segment), bytes))
                throw ConfigError(what + " has no state for segment " + std::to_string(r.segment) +
                                  " (it was made with fewer segments)");
            restoreSegment(r, tensorBytes(bytes), withWeights, what + ", segment " + std::to_string(r.segment));
        }
        for (const auto& device : devices)
            if (!device.is_cpu())
                readGenerator(archive, "device_rng_" + device.str(), at::globalContext().defaultGenerator(device));
        c10::IValue loop;
        archive.read("loop", loop);
        return LoopState::fromJson(nlohmann::json::parse(loop.toStringRef()));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw StorageError(what + ": damaged resume state (" + std::string(e.what()).substr(0, 200) + ")");
    }
}

/// Every member of an ensemble at every process: the local replicas, and the others' rebuilt from
/// their gathered state (a run in one process has them all).
std::vector<model::GraphModule> allMembers(std::vector<Replica>& replicas, const std::map<int, std::string>& states,
                                           int segments, const model::Architecture& architecture,
                                           const torch::Device& device) {
    std::vector<model::GraphModule> members;
    for (int s = 0; s < segments; ++s) {
        auto local = std::find_if(replicas.begin(), replicas.end(), [&](const Replica& r) { return r.segment == s; });
        if (local != replicas.end()) {
            members.push_back(local->module);
            continue;
        }
        model::GraphModule member(architecture);
        torch::serialize::InputArchive archive, weights;
        loadArchive(archive, states.at(s), "segment " + std::to_string(s) + "'s state");
        archive.read("weights", weights);
        member->load(weights);
        member->to(device);
        members.push_back(member);
    }
    return members;
}

} // namespace

const std::vector<Choice>& strategyChoices() {
    static const std::vector<Choice> choices = [] {
        std::vector<Choice> out;
        for (const auto& s : strategies())
            out.push_back(s.choice);
        return out;
    }();
    return choices;
}

int64_t modelMembers(const TrainConfig& config) { return config.strategy == "ensemble" ? config.segments : 1; }

std::vector<std::string> validate(const TrainConfig& c) {
    std::vector<std::string> problems = validate(c.optimizer);
    const Strategy* strategy = findStrategy(c.strategy);
    if (!strategy)
        problems.push_back("unknown strategy '" + c.strategy + "' (known: " + [] {
            std::string known;
            for (const auto& s : strategies())
                known += (known.empty() ? "" : ", ") + std::string(s.choice.name);
            return known;
        }() + ")");
    if (c.segments < 1)
        problems.push_back("segments must be >= 1, got " + std::to_string(c.segments));
    if (c.strategy == "single" && c.segments > 1)
        problems.push_back("the single strategy trains one model on one device: for " + std::to_string(c.segments) +
                           " segments choose a strategy such as model-averaging");
    if (c.syncEvery < 0)
        problems.push_back("sync-every must be >= 0 (0: the strategy's default)");
    if (strategy && strategy->join == Join::Gradients && c.syncEvery > 1)
        problems.push_back("allreduce averages the gradients of every step: --sync-every does not apply");
    if (c.movingRate && (*c.movingRate < 0 || *c.movingRate > 1))
        problems.push_back("the moving rate must be in [0, 1], got " + std::to_string(*c.movingRate));
    if (c.movingRate && c.strategy != "easgd")
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

LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer) {
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
        const bool readShards = policy && policy->fromSource && config.strategy != "single";
        if (readShards)
            options.segments = config.segments;
        // A long read says how far it has come.
        options.progress = [&](int64_t rows, int64_t expected) {
            emitter.message("reading " + config.data.location + ": " + std::to_string(rows) +
                            (expected > 0 ? " of ~" + std::to_string(expected) : "") + " rows in " +
                            humanDuration(secondsSince(start)));
        };
        const data::LoadedSource source = data::loadSource(config.data.location, options);
        if (readShards && !source.train.homeSegments().defined())
            throw ConfigError("the '" + config.distribution + "' distribution keeps each row on the segment the " +
                              "database holds it on: it needs a pg: source, not " + source.kind + " " +
                              source.location);
        LoadedData loaded{source, data::prepare(source, config.data.validationFraction, config.seed,
                                                config.data.normalization)};
        const auto& prepared = loaded.prepared;
        std::ostringstream m;
        m << "data: " << source.kind << " " << source.location << ", "
          << prepared.train.size() << " train / " << prepared.validation.size() << " validation / "
          << prepared.test.size() << " test rows of " << data::formatShape(prepared.train.sampleShape())
          << ", " << prepared.train.numClasses() << " classes, loaded in " << humanDuration(secondsSince(start));
        emitter.message(m.str());
        return loaded;
    });
}

TrainResult train(const TrainConfig& config, const model::Architecture& architecture,
                  RunObserver& observer, const TrainControl& control) {
    const auto loaded = loadData(config, architecture, observer);
    return train(config, architecture, loaded.prepared, observer, control);
}

TrainResult train(const TrainConfig& config, const model::Architecture& architecture,
                  const data::PreparedData& data, RunObserver& observer, const TrainControl& control) {
    Collectives* group = control.group ? control.group->collectives() : nullptr;
    const int rank = group ? group->rank() : 0;
    const int world = group ? group->world() : 1;
    const Checkpoint* resume = control.resumeFrom;
    const std::atomic<bool>* cancel = control.cancel;
    Emitter emitter(observer, resume ? resume->wallSeconds : 0);
    return reportFailures(emitter, [&] {
        const auto problems = validate(config);
        if (!problems.empty())
            throw ConfigError(problems.front());
        if (world != config.processes)
            throw ConfigError("the run is configured for " + std::to_string(config.processes) +
                              " processes but " + std::to_string(world) + " joined");
        if (data.train.empty())
            throw DataError("the training data has no rows");
        applyThreadCount(config.threads);
        const Strategy& strategy = *findStrategy(config.strategy);
        const int segments = config.segments;
        const bool multi = config.strategy != "single";
        const bool ensemble = config.strategy == "ensemble";
        // Segments whose weights are their own between joins keep them in the resume state.
        const bool ownWeights = ensemble || strategy.join == Join::Elastic;
        std::vector<torch::Device> segmentDevice;
        for (const auto& name : segmentDevices(config.device, config.gpusPerHost, segments))
            segmentDevice.emplace_back(name);
        const torch::Device device = segmentDevice.front(); // where the merged model lives
        std::vector<torch::Device> devices; // the distinct ones, for their generators
        for (const auto& d : segmentDevice)
            if (std::find(devices.begin(), devices.end(), d) == devices.end())
                devices.push_back(d);

        // Seed before building the network so its initial weights are part of what the seed fixes.
        torch::manual_seed(config.seed);
        auto module = model::GraphModule(architecture);
        const auto& analysis = module->analysis();
        checkInputShape(analysis, data.train.sampleShape(), "the training data");
        if (analysis.numClasses() != data.train.numClasses())
            throw ConfigError("the network's output has " + std::to_string(analysis.numClasses()) +
                              " values but the data has " + std::to_string(data.train.numClasses()) +
                              " classes (change the last Dense layer's units)");
        module->to(device);
        // Every process starts from rank 0's initial or warm-start weights and resume point.
        const std::string initialWeights =
            broadcastBytes(group, control.initialWeights && !resume ? *control.initialWeights : std::string());
        const std::string resumeWeights = broadcastBytes(group, resume ? resume->weights : std::string());
        const std::string resumeState = broadcastBytes(group, resume ? resume->state : std::string());
        const int resumeEpoch = int(std::stoll(broadcastBytes(group, std::to_string(resume ? resume->epoch : -1))));
        const bool resuming = resumeEpoch >= 0;
        if (!initialWeights.empty())
            loadWeights(*module, initialWeights, control.initialWeightsFrom);

        // Everything stays resident on the devices as packed tensors: a minibatch is one
        // index_select, with no per-sample work in the loop.
        const bool hasValidation = !data.validation.empty();
        torch::Tensor xVal, yVal;
        if (hasValidation) {
            xVal = data.validation.features().to(device);
            yVal = data.validation.labels().to(device);
        }
        const auto& classNames = data.train.classNames();

        // The replicas of this process: for single, the network itself on all rows; otherwise a
        // clone per segment s with s % processes == rank, on its shard, while `module` holds the
        // merged model (the center for EASGD; unused by an ensemble).
        std::vector<torch::Tensor> shards;
        if (multi)
            shards = data::distribute(data.train, segments, config.distribution, config.seed);
        else
            shards = {torch::arange(data.train.size(), torch::kLong)};
        std::vector<int64_t> shardRows;
        for (const auto& s : shards)
            shardRows.push_back(s.size(0));
        // Each shard's class histogram, reported with its first epoch: how IID the segments are.
        const auto shardClasses = multi ? data::summarize(data.train, shards) : data::DistributionSummary{};
        std::vector<Replica> replicas;
        for (int s = rank; s < segments; s += world) {
            Replica r;
            r.segment = s;
            r.device = segmentDevice[size_t(s)];
            r.module = multi ? model::GraphModule(std::dynamic_pointer_cast<model::GraphModuleImpl>(module->clone(r.device)))
                             : module;
            r.x = data.train.features().index_select(0, shards[size_t(s)]).to(r.device);
            r.y = data.train.labels().index_select(0, shards[size_t(s)]).to(r.device);
            r.batch = minibatchOf(config.batchSize, r.rows());
            r.optimizer = makeOptimizer(config.optimizer, r.module->parameters());
            // Segment 0's streams are the single strategy's, so that one segment repeats it exactly.
            const uint64_t seed = config.seed + uint64_t(s) * 1000003ULL;
            r.permutation = at::make_generator<at::CPUGeneratorImpl>(seed);
            // Dropout draws from the network's own stream, seeded apart from the permutations'.
            // On a GPU the masks come from the device's default generator.
            if (r.device.is_cpu()) {
                r.dropout = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ULL);
                r.module->setGenerator(r.dropout);
            }
            replicas.push_back(std::move(r));
        }
        if (replicas.empty())
            throw ConfigError("process " + std::to_string(rank) + " of " + std::to_string(world) + " has no segment");

        const int64_t n = data.train.size();
        const int64_t batch = std::min<int64_t>(config.batchSize, n);
        auto stepsOf = [&](int64_t rows) {
            const int64_t b = minibatchOf(config.batchSize, rows);
            return (rows + b - 1) / b;
        };
        int64_t stepsPerEpoch = 0, longestShard = 0;
        for (auto rows : shardRows) {
            stepsPerEpoch += stepsOf(rows);
            longestShard = std::max(longestShard, stepsOf(rows));
        }
        const int64_t totalSteps = stepsPerEpoch * config.epochs;
        // Minibatches between joins, and joins per epoch (the same count on every process).
        const int64_t syncEvery = config.syncEvery > 0 ? config.syncEvery : strategy.defaultSyncEvery;
        const int64_t roundSteps = syncEvery > 0 ? syncEvery : std::numeric_limits<int64_t>::max();
        const int64_t rounds = syncEvery > 0 ? (longestShard + syncEvery - 1) / syncEvery : 1;
        const double movingRate = config.movingRate ? *config.movingRate : 0.9 / double(segments);

        LoopState loop;
        if (resuming) {
            const std::string what = "the checkpoint of epoch " + std::to_string(resumeEpoch);
            if (resumeState.empty())
                throw ConfigError(what + " keeps only weights: it cannot be resumed from");
            // A checkpoint is taken right after a join: the replicas hold the merged weights,
            // except where they are their own (then they are in the state).
            if (!ensemble) { // an ensemble's members are all in the state
                loadWeights(*module, resumeWeights, what);
                if (multi)
                    for (auto& r : replicas)
                        loadWeights(*r.module, resumeWeights, what);
            }
            loop = restoreState(resumeState, what, replicas, ownWeights, devices);
            if (loop.epochsDone != resumeEpoch)
                throw StorageError(what + " holds the state of epoch " + std::to_string(loop.epochsDone));
            if (loop.globalStep != int64_t(loop.epochsDone) * stepsPerEpoch)
                throw ConfigError(what + " was made with " + std::to_string(loop.globalStep / std::max(1, loop.epochsDone)) +
                                  " steps per epoch, this data and batch size give " + std::to_string(stepsPerEpoch) +
                                  " (a resume needs the run's own data and configuration)");
        }
        const int startEpoch = loop.epochsDone;
        const int64_t startStep = loop.globalStep;
        const int threads = at::get_num_threads();
        // A pool of min(local segments, T) workers, each running its share of the segments one
        // after the other with T / workers threads: more threads than cores only thrash the caches.
        const int poolSize = std::min<int>(int(replicas.size()), std::max(1, threads));
        std::unique_ptr<SegmentPool> pool;
        if (poolSize > 1)
            pool = std::make_unique<SegmentPool>(poolSize, std::max(1, threads / poolSize));
        {
            RunEvent e;
            e.kind = EventKind::Started;
            e.epochs = config.epochs;
            e.stepsPerEpoch = stepsPerEpoch;
            std::ostringstream m;
            m << "training '" << architecture.name << "' (" << groupThousands(analysis.totalParams)
              << " parameters) on " << (config.gpusPerHost > 0 ? std::to_string(config.gpusPerHost) + " GPUs per host"
                                                                : config.device)
              << " with " << config.optimizer.name << " lr " << config.optimizer.lr;
            if (config.optimizer.momentum > 0)
                m << (config.optimizer.nesterov ? " nesterov momentum " : " momentum ") << config.optimizer.momentum;
            if (config.optimizer.weightDecay > 0)
                m << " weight decay " << config.optimizer.weightDecay;
            if (config.schedule.name != "none")
                m << " (" << config.schedule.name << " schedule)";
            m << ", batch " << batch << ", " << config.epochs
              << (config.epochs == 1 ? " epoch" : " epochs") << ", seed " << config.seed;
            if (multi) {
                m << ", " << config.strategy << " over " << segments << " segments (" << config.distribution
                  << " distribution";
                if (strategy.join == Join::Average || strategy.join == Join::Elastic)
                    m << ", " << (strategy.join == Join::Average ? "merge " : "elastic step ")
                      << (syncEvery > 0 ? "every " + std::to_string(syncEvery) + " minibatches"
                                        : std::string("after each pass"));
                if (strategy.join == Join::Elastic)
                    m << ", moving rate " << fixedText(movingRate, 4);
                m << ")";
            }
            if (world > 1)
                m << " in " << world << " processes";
            if (device.is_cpu())
                m << ", " << threads << (threads == 1 ? " thread" : " threads")
                  << (world > 1 ? " each" : "");
            if (!initialWeights.empty())
                m << ", warm start from " << control.initialWeightsFrom;
            if (resuming)
                m << "; resuming after epoch " << startEpoch;
            e.epoch = startEpoch;
            e.step = startStep;
            e.message = m.str();
            emitter.emit(std::move(e));
        }

        // loss.item() is free on the CPU, a sync on a GPU: only CPU runs check every step.
        const bool checkEveryStep = device.is_cpu();
        const auto runStart = Clock::now();
        int64_t& globalStep = loop.globalStep;
        TrainResult result;
        result.epochsRun = loop.epochsDone;
        result.bestEpoch = loop.bestEpoch;
        result.stoppedEarly = loop.stoppedEarly;
        // An event that knows where in the run it happened (0-based epoch, 1-based step in it).
        auto positioned = [&](EventKind kind, int epoch, int64_t stepInEpoch) {
            RunEvent e;
            e.kind = kind;
            e.epoch = epoch + 1;
            e.epochs = config.epochs;
            e.step = globalStep;
            e.stepInEpoch = stepInEpoch;
            e.stepsPerEpoch = stepsPerEpoch;
            return e;
        };
        // The members whose mean probabilities an ensemble predicts; the merged model otherwise.
        auto localMembers = [&] {
            std::vector<model::GraphModule> out;
            if (!ensemble)
                out.push_back(module);
            else
                for (auto& r : replicas)
                    out.push_back(r.module);
            return out;
        };
        // Evaluates what the run has made so far: for an ensemble, every process's members.
        // `memberAccuracy[i]`, when given, gets local member i's own accuracy, from the same
        // forward passes.
        auto evaluateRun = [&](const torch::Tensor& x, const torch::Tensor& y, const std::string& split,
                               std::vector<double>* memberAccuracy = nullptr) {
            auto members = localMembers();
            if (!ensemble)
                return evaluateMembers(members, x, y, classNames, split);
            torch::Tensor sum;
            for (auto& member : members) {
                std::vector<model::GraphModule> one{member};
                auto probabilities = sumProbabilities(one, x);
                if (memberAccuracy)
                    memberAccuracy->push_back(double(probabilities.argmax(1).eq(y).sum().item<int64_t>()) /
                                              double(std::max<int64_t>(1, y.size(0))));
                sum = sum.defined() ? sum.add_(probabilities) : probabilities;
            }
            allreduceTensors(group, {sum});
            return evaluateLogits(ensembleLogits(sum, segments), y, classNames, split);
        };

        std::map<int, std::string> lastStates; // every segment's, as the last epoch gathered them
        for (int epoch = startEpoch; epoch < config.epochs && !loop.stoppedEarly; ++epoch) {
            const double lr = scheduledLearningRate(config.schedule, config.optimizer.lr, epoch, config.epochs);
            for (auto& r : replicas) {
                setLearningRate(*r.optimizer, lr);
                r.module->train();
            }
            const auto epochStart = Clock::now();
            const int64_t epochStartStep = globalStep;
            auto nonFinite = [&](int64_t step, bool exact, int segment) {
                std::ostringstream m;
                m << "the loss became " << (exact ? "" : "non-finite ") << "NaN or infinite in epoch " << epoch + 1;
                if (segment >= 0)
                    m << " on segment " << segment;
                m << (exact ? ", step " : " at or before step ") << step
                  << " (lower the learning rate, or check the data for NaN values)";
                return DataError(m.str());
            };

            // One epoch of each local replica: the loss summed over rows and the correct predictions.
            struct SegmentEpoch {
                torch::Tensor order, lossSum, correct;
                int64_t cursor = 0, roundRows = 0, roundSteps = 0;
                std::atomic<int64_t> steps{0}; // read by the reporting thread while a worker trains
                double seconds = 0, divergence = 0;
                std::atomic<double> lossSeen{0};
                std::atomic<int64_t> correctSeen{0}, rowsSeen{0};
            };
            std::vector<SegmentEpoch> seg(replicas.size());
            for (size_t i = 0; i < replicas.size(); ++i) {
                const auto& r = replicas[i];
                seg[i].order = torch::randperm(r.rows(), r.permutation, torch::kLong).to(r.device);
                seg[i].lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(r.device));
                seg[i].correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(r.device));
            }
            // Progress from this process's segments. `sameThread`: called from the thread that
            // trains (it may read the running sums), else from the reporting thread (atomics).
            auto lastProgress = Clock::now();
            auto progress = [&](bool sameThread) {
                if (secondsSince(lastProgress) < config.progressIntervalSeconds)
                    return;
                lastProgress = Clock::now();
                double lossSum = 0, correct = 0, seen = 0;
                int64_t steps = 0;
                for (auto& sg : seg) {
                    seen += double(sg.rowsSeen.load());
                    steps += sg.steps.load();
                    lossSum += sameThread ? sg.lossSum.item<double>() : sg.lossSeen.load();
                    correct += sameThread ? double(sg.correct.item<int64_t>()) : double(sg.correctSeen.load());
                }
                if (seen <= 0)
                    return;
                // Other processes' segments are assumed as far along as this one's.
                const int64_t stepInEpoch = steps * world;
                const int64_t now = epochStartStep + stepInEpoch;
                RunEvent e = positioned(EventKind::Progress, epoch, stepInEpoch);
                e.step = now;
                if (sameThread || checkEveryStep) {
                    if (!std::isfinite(lossSum / seen))
                        throw nonFinite(steps, false, -1);
                    e.metrics.push_back({"train_loss", lossSum / seen});
                    e.metrics.push_back({"train_accuracy", correct / seen});
                }
                e.metrics.push_back({"images_per_sec", seen / secondsSince(epochStart)});
                e.metrics.push_back({"eta_seconds", secondsSince(runStart) / double(std::max<int64_t>(1, now - startStep)) *
                                                        double(std::max<int64_t>(0, totalSteps - now))});
                e.metrics.push_back({"lr", lr});
                emitter.emit(std::move(e));
            };
            // Up to `maxSteps` minibatches of local replica i, in order. With `gradientsOnly` the
            // optimizer step is left to the join (all-reduce). `inlineReport`: this is the thread
            // that reports progress.
            auto runSegment = [&](size_t i, int64_t maxSteps, bool gradientsOnly, bool inlineReport) {
                Replica& r = replicas[i];
                SegmentEpoch& sg = seg[i];
                const auto start = Clock::now();
                for (int64_t k = 0; k < maxSteps && sg.cursor < r.rows(); ++k) {
                    if ((cancel && cancel->load(std::memory_order_relaxed)) ||
                        (pool && pool->failed.load(std::memory_order_relaxed)))
                        break;
                    const int64_t begin = sg.cursor;
                    const int64_t end = std::min(r.rows(), begin + r.batch);
                    const auto index = sg.order.slice(0, begin, end);
                    const auto xb = r.x.index_select(0, index);
                    const auto yb = r.y.index_select(0, index);
                    const auto logits = r.module->forwardLogits(xb);
                    const auto loss = torch::nn::functional::cross_entropy(logits, yb);
                    r.optimizer->zero_grad();
                    loss.backward();
                    if (!gradientsOnly)
                        r.optimizer->step();
                    torch::Tensor hits;
                    {
                        torch::NoGradGuard noGrad;
                        sg.lossSum += loss.detach().to(torch::kDouble) * double(end - begin);
                        hits = logits.argmax(1).eq(yb).sum();
                        sg.correct += hits;
                    }
                    sg.cursor = end;
                    sg.roundRows += end - begin;
                    ++sg.roundSteps;
                    ++sg.steps;
                    if (checkEveryStep) {
                        const float value = loss.item<float>();
                        if (!std::isfinite(value))
                            throw nonFinite(sg.steps, true, multi ? r.segment : -1);
                        if (!inlineReport) { // running figures for the thread that reports while workers train
                            sg.lossSeen.store(sg.lossSeen.load() + double(value) * double(end - begin));
                            sg.correctSeen.fetch_add(hits.item<int64_t>());
                        }
                    }
                    sg.rowsSeen.fetch_add(end - begin);
                    if (inlineReport && sg.cursor < r.rows())
                        progress(true);
                }
                sg.seconds += secondsSince(start);
            };
            // Job `job(i)` for every local replica: on the pool, or here when there is none.
            auto forEachReplica = [&](const std::function<void(size_t)>& job) {
                if (pool)
                    pool->run(replicas.size(), job, [&] { progress(false); });
                else
                    for (size_t i = 0; i < replicas.size(); ++i)
                        job(i);
            };

            double joinSeconds = 0;
            int joins = 0;
            // Each round: every segment's next `roundSteps` minibatches, then the strategy's join.
            // Every process runs the same number of rounds, so their collectives pair up.
            for (int64_t round = 0; round < rounds; ++round) {
                for (auto& sg : seg)
                    sg.roundRows = sg.roundSteps = 0;
                const bool gradientsOnly = strategy.join == Join::Gradients;
                forEachReplica([&](size_t i) { runSegment(i, roundSteps, gradientsOnly, !pool); });
                const auto joinStart = Clock::now();
                // The round's rows and steps of every segment, and whether any process cancels.
                auto counts = torch::zeros({2 * segments + 1}, torch::kDouble);
                auto count = counts.accessor<double, 1>();
                for (size_t i = 0; i < replicas.size(); ++i) {
                    count[replicas[i].segment] = double(seg[i].roundRows);
                    count[segments + replicas[i].segment] = double(seg[i].roundSteps);
                }
                count[2 * segments] = cancel && cancel->load() ? 1.0 : 0.0;
                allreduceTensors(group, {counts});
                if (count[2 * segments] > 0)
                    break;
                double rows = 0;
                for (int s = 0; s < segments; ++s) {
                    rows += count[s];
                    globalStep += int64_t(count[segments + s]);
                }
                std::vector<double> weights, divergence;
                for (auto& r : replicas)
                    weights.push_back(rows > 0 ? count[r.segment] / rows : 0.0);
                switch (strategy.join) {
                case Join::None:
                    continue; // nothing joined, no time spent joining
                case Join::Average:
                    averageReplicas(module, replicas, weights, divergence, group);
                    break;
                case Join::Elastic:
                    elasticAverage(module, replicas, movingRate, divergence, group);
                    break;
                case Join::Gradients:
                    if (rows > 0) {
                        averageGradients(replicas, weights, group);
                        joinSeconds += secondsSince(joinStart); // the steps are training, not joining
                        // Every replica steps, with or without a minibatch of its own: they stay equal.
                        forEachReplica([&](size_t i) { replicas[i].optimizer->step(); });
                    }
                    ++joins;
                    continue;
                }
                for (size_t i = 0; i < seg.size(); ++i)
                    seg[i].divergence = divergence[i];
                joinSeconds += secondsSince(joinStart);
                ++joins;
            }
            if (cancel && cancel->load(std::memory_order_relaxed)) {
                int64_t steps = 0;
                for (auto& sg : seg)
                    steps += sg.steps;
                throw CancelledError("cancelled in epoch " + std::to_string(epoch + 1) + ", step " +
                                     std::to_string(steps + 1));
            }
            if (strategy.join == Join::Gradients) {
                // The parameters are equal everywhere; BatchNorm's running statistics, which each
                // replica keeps from its own minibatches, are averaged once per epoch.
                std::vector<double> weights, divergence;
                for (auto& r : replicas)
                    weights.push_back(double(r.rows()) / double(n));
                averageReplicas(module, replicas, weights, divergence, group, /*buffersOnly=*/true);
                for (size_t i = 0; i < seg.size(); ++i)
                    seg[i].divergence = divergence[i];
            }

            // The validation of the joined model (an ensemble's members scored alone on the way).
            std::optional<Evaluation> validation;
            std::vector<double> memberValAccuracy;
            if (hasValidation)
                validation = evaluateRun(xVal, yVal, "validation", &memberValAccuracy);

            // Each segment's own figures, from every process: [segment][figure].
            enum Figure { LossSum, Correct, Seconds, Divergence, ValAccuracy, Figures };
            auto figures = torch::zeros({segments, Figures}, torch::kDouble);
            auto figure = figures.accessor<double, 2>();
            for (size_t i = 0; i < replicas.size(); ++i) {
                const int s = replicas[i].segment;
                figure[s][LossSum] = seg[i].lossSum.item<double>();
                figure[s][Correct] = double(seg[i].correct.item<int64_t>());
                figure[s][Seconds] = seg[i].seconds;
                figure[s][Divergence] = seg[i].divergence;
                if (ensemble && hasValidation) // what each member scores alone
                    figure[s][ValAccuracy] = memberValAccuracy[i];
            }
            allreduceTensors(group, {figures});
            const auto fig = figures.accessor<double, 2>();
            double lossTotal = 0, correctTotal = 0;
            for (int s = 0; s < segments; ++s) {
                lossTotal += fig[s][LossSum];
                correctTotal += fig[s][Correct];
            }
            const double trainLoss = lossTotal / double(n);
            if (!std::isfinite(trainLoss))
                throw nonFinite(stepsPerEpoch, false, -1);
            const double trainSeconds = secondsSince(epochStart);
            if (multi) // each segment's own view first; the merged epoch event closes the epoch
                for (int s = 0; s < segments; ++s) {
                    RunEvent se = positioned(EventKind::Epoch, epoch, stepsPerEpoch);
                    se.segment = s;
                    const double rows = double(shardRows[size_t(s)]);
                    se.metrics = {{"train_loss", fig[s][LossSum] / rows},
                                  {"train_accuracy", fig[s][Correct] / rows},
                                  {"images_per_sec", rows / std::max(1e-9, fig[s][Seconds])},
                                  {"rows", rows},
                                  {"segment_seconds", fig[s][Seconds]}};
                    if (strategy.join != Join::None)
                        se.metrics.push_back({"divergence", fig[s][Divergence]});
                    if (ensemble && hasValidation)
                        se.metrics.push_back({"val_accuracy", fig[s][ValAccuracy]});
                    if (epoch == startEpoch)
                        for (size_t c = 0; c < shardClasses.segments[size_t(s)].classCounts.size(); ++c)
                            se.metrics.push_back({"rows_of_class_" + std::to_string(c),
                                                  double(shardClasses.segments[size_t(s)].classCounts[c])});
                    emitter.emit(std::move(se));
                }
            RunEvent e = positioned(EventKind::Epoch, epoch, stepsPerEpoch);
            e.metrics = {{"train_loss", trainLoss},
                         {"train_accuracy", correctTotal / double(n)},
                         {"lr", lr},
                         {"images_per_sec", double(n) / trainSeconds}};
            if (multi && strategy.join != Join::None) {
                e.metrics.push_back({"merges", double(joins)});
                e.metrics.push_back({"merge_seconds", joinSeconds});
            }
            bool improved = false;
            if (validation) {
                e.metrics.push_back({"val_loss", validation->loss});
                e.metrics.push_back({"val_accuracy", validation->accuracy});
                if (validation->accuracy > loop.bestValAccuracy) {
                    loop.bestValAccuracy = validation->accuracy;
                    loop.bestEpoch = result.bestEpoch = epoch + 1;
                }
                improved = validation->loss < loop.bestValLoss;
                if (improved)
                    loop.bestValLoss = validation->loss;
                result.validation = std::move(validation);
            }
            e.metrics.push_back({"epoch_seconds", secondsSince(epochStart)});
            e.metrics.push_back({"eta_seconds", secondsSince(runStart) / double(epoch + 1 - startEpoch) *
                                                    double(config.epochs - epoch - 1)});
            const std::optional<double> valAccuracy =
                hasValidation ? std::optional<double>(result.validation->accuracy) : std::nullopt;
            emitter.emit(std::move(e));
            result.epochsRun = loop.epochsDone = epoch + 1;

            loop.epochsWithoutImprovement = improved ? 0 : loop.epochsWithoutImprovement + 1;
            if (config.earlyStoppingPatience > 0 && loop.epochsWithoutImprovement >= config.earlyStoppingPatience &&
                epoch + 1 < config.epochs) {
                result.stoppedEarly = loop.stoppedEarly = true;
                emitter.message("early stopping: the validation loss has not improved for " +
                                std::to_string(loop.epochsWithoutImprovement) + " epochs");
            }
            // Every process takes part in gathering the state; rank 0 hands it over.
            if (control.checkpoints || world > 1) {
                const auto checkpointStart = Clock::now();
                const auto& states = lastStates = gatherSegments(replicas, ownWeights, group);
                if (control.checkpoints) {
                    Checkpoint checkpoint;
                    checkpoint.epoch = loop.epochsDone;
                    checkpoint.valAccuracy = valAccuracy;
                    const auto members =
                        ensemble ? allMembers(replicas, states, segments, architecture, device) : localMembers();
                    checkpoint.weights = serializeWeights(*weightsModule(members));
                    checkpoint.state = serializeState(states, devices, loop);
                    checkpoint.wallSeconds = emitter.elapsed();
                    checkpoint.serializeSeconds = secondsSince(checkpointStart);
                    control.checkpoints->onCheckpoint(checkpoint);
                }
            }
        }
        // A resume of a run whose epochs were all done (it stopped during the test evaluation).
        if (hasValidation && !result.validation)
            result.validation = evaluateRun(xVal, yVal, "validation");

        // The final model: the merged one, or every member of an ensemble.
        std::vector<model::GraphModule> members = localMembers();
        if (ensemble && world > 1) // the last epoch gathered them already, unless no epoch ran here
            members = allMembers(replicas, lastStates.empty() ? gatherSegments(replicas, true, group) : lastStates,
                                 segments, architecture, device);

        if (!data.test.empty()) {
            const auto xTest = data.test.features().to(device);
            const auto yTest = data.test.labels().to(device);
            if (ensemble) // each member alone, to weigh the ensemble against its best member
                for (int s = 0; s < segments; ++s) {
                    std::vector<model::GraphModule> one{members[size_t(s)]};
                    const auto alone = evaluateMembers(one, xTest, yTest, classNames, "test");
                    RunEvent e;
                    e.kind = EventKind::Evaluation;
                    e.segment = s;
                    e.epoch = result.epochsRun;
                    e.epochs = config.epochs;
                    e.step = globalStep;
                    e.metrics = {{"test_loss", alone.loss}, {"test_accuracy", alone.accuracy}};
                    emitter.emit(std::move(e));
                }
            auto test = evaluateMembers(members, xTest, yTest, classNames, "test");
            RunEvent e;
            e.kind = EventKind::Evaluation;
            e.epoch = result.epochsRun;
            e.epochs = config.epochs;
            e.step = globalStep; // after the last step: series ordered by step end with it
            e.metrics = {{"test_loss", test.loss}, {"test_accuracy", test.accuracy}};
            e.message = "test accuracy " + percentText(test.accuracy);
            e.evaluation = std::make_shared<Evaluation>(test);
            emitter.emit(std::move(e));
            result.test = std::move(test);
        }

        result.seconds = emitter.elapsed();
        RunEvent done;
        done.kind = EventKind::Finished;
        done.epoch = result.epochsRun;
        done.epochs = config.epochs;
        done.step = globalStep;
        done.metrics = {{"epochs", double(result.epochsRun)}, {"seconds", result.seconds},
                        {"best_epoch", double(result.bestEpoch)}};
        if (result.validation) {
            done.metrics.push_back({"val_loss", result.validation->loss});
            done.metrics.push_back({"val_accuracy", result.validation->accuracy});
        }
        if (result.test) {
            done.metrics.push_back({"test_loss", result.test->loss});
            done.metrics.push_back({"test_accuracy", result.test->accuracy});
            done.evaluation = std::make_shared<Evaluation>(*result.test);
        }
        emitter.emit(std::move(done));

        auto impl = std::make_unique<TrainedModel::Impl>();
        impl->architecture = architecture;
        impl->normalizer = data.normalizer;
        impl->classNames = classNames;
        impl->members = members;
        impl->device = device;
        for (auto& m : impl->members)
            m->eval();
        result.model = TrainedModel(std::move(impl));
        return result;
    });
}

} // namespace mppdl::train
