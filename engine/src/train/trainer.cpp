#include "mppdl/train/trainer.h"

#include "evaluate.h"
#include "optimizer_factory.h"
#include "trained_model_impl.h"
#include "weights.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <dlfcn.h>

#include <algorithm>
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

/// A model that trains: the single strategy's one, or one segment's replica, with its shard.
struct Replica {
    model::GraphModule module{nullptr};
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    at::Generator permutation; ///< the epoch order of its rows
    at::Generator dropout;     ///< its Dropout masks (undefined on a GPU: the device's default)
    torch::Tensor x, y;        ///< its rows, resident on the device
    int64_t batch = 0;         ///< min(batch size, rows)
    int64_t rows() const { return x.size(0); }
    int64_t stepsPerEpoch() const { return (rows() + batch - 1) / batch; }
};

/// Archive keys of replica i: segment 0 (and the single strategy) without a suffix.
std::string key(const char* name, size_t i) { return i == 0 ? name : std::string(name) + "_" + std::to_string(i); }

/// The resume half of a checkpoint: each replica's optimizer state and random generators (its
/// epoch order's, and its Dropout's), the device's generator, and the loop counters.
std::string serializeState(std::vector<Replica>& replicas, const torch::Device& device, const LoopState& loop) {
    torch::serialize::OutputArchive archive;
    for (size_t i = 0; i < replicas.size(); ++i) {
        auto& r = replicas[i];
        torch::serialize::OutputArchive optimizerArchive;
        r.optimizer->save(optimizerArchive);
        archive.write(key("optimizer", i), optimizerArchive);
        {
            std::lock_guard<std::mutex> lock(r.permutation.mutex());
            archive.write(key("permutation_rng", i), r.permutation.get_state());
        }
        if (r.dropout.defined()) {
            std::lock_guard<std::mutex> lock(r.dropout.mutex());
            archive.write(key("dropout_rng", i), r.dropout.get_state());
        }
    }
    if (!device.is_cpu()) {
        auto gen = at::globalContext().defaultGenerator(device);
        std::lock_guard<std::mutex> lock(gen.mutex());
        archive.write("device_rng", gen.get_state());
    }
    archive.write("loop", c10::IValue(loop.toJson().dump()));
    return serializeArchive(archive);
}

LoopState restoreState(const std::string& blob, const std::string& what, std::vector<Replica>& replicas,
                       const torch::Device& device) {
    torch::serialize::InputArchive archive;
    // Read onto the training device, so that the optimizer's buffers land beside the parameters.
    loadArchive(archive, blob, what, device);
    try {
        auto readRng = [&](const std::string& name, at::Generator gen) {
            torch::Tensor state;
            archive.read(name, state);
            std::lock_guard<std::mutex> lock(gen.mutex());
            gen.set_state(state.to(torch::kCPU));
        };
        for (size_t i = 0; i < replicas.size(); ++i) {
            auto& r = replicas[i];
            torch::serialize::InputArchive optimizerArchive;
            if (!archive.try_read(key("optimizer", i), optimizerArchive))
                throw ConfigError(what + " has no state for segment " + std::to_string(i) +
                                  " (it was made with fewer segments)");
            r.optimizer->load(optimizerArchive);
            readRng(key("permutation_rng", i), r.permutation);
            if (r.dropout.defined())
                readRng(key("dropout_rng", i), r.dropout);
        }
        if (!device.is_cpu())
            readRng("device_rng", at::globalContext().defaultGenerator(device));
        c10::IValue loop;
        archive.read("loop", loop);
        return LoopState::fromJson(nlohmann::json::parse(loop.toStringRef()));
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw StorageError(what + ": damaged resume state (" + std::string(e.what()).substr(0, 200) + ")");
    }
}

/// Model averaging's merge: `merged` becomes the average of the replicas weighted by `weights`
/// (summing to 1; floating parameters and buffers; integer buffers such as BatchNorm's batch
/// count take the maximum), each replica's L2 distance from it goes to `divergence`, and it is
/// copied back into every replica. With one replica of weight 1 the result is that replica bit for
/// bit (0 + 1 * p).
void mergeReplicas(model::GraphModule& merged, std::vector<Replica>& replicas, const std::vector<double>& weights,
                   std::vector<double>& divergence) {
    torch::NoGradGuard noGrad;
    auto tensorsOf = [](model::GraphModule& m) {
        std::vector<torch::Tensor> out = m->parameters();
        for (auto& b : m->buffers())
            out.push_back(b);
        return out;
    };
    auto target = tensorsOf(merged);
    std::vector<std::vector<torch::Tensor>> sources;
    for (auto& r : replicas)
        sources.push_back(tensorsOf(r.module));
    for (size_t j = 0; j < target.size(); ++j) {
        if (at::isFloatingType(target[j].scalar_type())) {
            auto sum = torch::zeros_like(target[j]);
            for (size_t i = 0; i < replicas.size(); ++i)
                if (weights[i] > 0)
                    sum.add_(sources[i][j], weights[i]);
            target[j].copy_(sum);
        } else {
            auto top = sources[0][j].clone();
            for (size_t i = 1; i < replicas.size(); ++i)
                top = torch::maximum(top, sources[i][j]);
            target[j].copy_(top);
        }
    }
    divergence.assign(replicas.size(), 0.0);
    const size_t parameters = merged->parameters().size();
    for (size_t i = 0; i < replicas.size(); ++i) {
        double squares = 0;
        for (size_t j = 0; j < parameters; ++j)
            squares += (sources[i][j] - target[j]).pow(2).sum().item<double>();
        divergence[i] = std::sqrt(squares);
        for (size_t j = 0; j < target.size(); ++j)
            sources[i][j].copy_(target[j]);
    }
}

/// Sets this thread's OpenMP team size. Each segment's worker thread runs its own intra-op
/// parallelism; N workers with T/N threads each keep the machine's T cores busy, not N x T.
void setThreadTeam(int threads) {
    at::internal::lazy_init_num_threads(); // first, or a later lazy init would undo what follows
    using SetThreads = void (*)(int);
    static const auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
    if (set)
        set(threads);
}

} // namespace

const std::vector<Choice>& strategyChoices() {
    static const std::vector<Choice> choices = {
        {"single", "one model trained on all rows (the reference the others are compared with)"},
        {"model-averaging",
         "MADlib's fit: a replica per segment trains on its shard; the replicas are averaged, weighted "
         "by rows, after each pass (or every --sync-every minibatches) and the average is broadcast"},
    };
    return choices;
}

std::vector<std::string> validate(const TrainConfig& c) {
    std::vector<std::string> problems = validate(c.optimizer);
    const auto& strategies = strategyChoices();
    if (std::none_of(strategies.begin(), strategies.end(), [&](const Choice& s) { return c.strategy == s.name; })) {
        std::string known;
        for (const auto& s : strategies)
            known += (known.empty() ? "" : ", ") + std::string(s.name);
        problems.push_back("unknown strategy '" + c.strategy + "' (known: " + known + ")");
    }
    if (c.segments < 1)
        problems.push_back("segments must be >= 1, got " + std::to_string(c.segments));
    if (c.strategy == "single" && c.segments > 1)
        problems.push_back("the single strategy trains one model on one device: for " + std::to_string(c.segments) +
                           " segments choose a strategy such as model-averaging");
    if (c.syncEvery < 0)
        problems.push_back("sync-every must be >= 0 (0: once per pass over the shards)");
    const auto& policies = data::distributionPolicies();
    if (std::none_of(policies.begin(), policies.end(),
                     [&](const data::DistributionPolicy& p) { return c.distribution == p.name; }))
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
        checkDevice(config.device); // before the data is loaded: a wrong device should fail fast
        const auto analysis = model::analyze(architecture);
        if (!analysis.ok())
            throw ConfigError("invalid architecture '" + architecture.name + "':\n" +
                              formatProblems(analysis.problems));
        const auto start = Clock::now();
        const data::LoadedSource source = data::loadSource(config.data.location, config.data.source);
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
    const Checkpoint* resume = control.resumeFrom;
    const std::atomic<bool>* cancel = control.cancel;
    Emitter emitter(observer, resume ? resume->wallSeconds : 0);
    return reportFailures(emitter, [&] {
        const auto problems = validate(config);
        if (!problems.empty())
            throw ConfigError(problems.front());
        if (data.train.empty())
            throw DataError("the training data has no rows");
        applyThreadCount(config.threads);
        const torch::Device device(checkDevice(config.device));

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
        if (control.initialWeights && !resume)
            loadWeights(*module, *control.initialWeights, control.initialWeightsFrom);

        // Everything stays resident on the device as packed tensors: a minibatch is one
        // index_select, with no per-sample work in the loop.
        const auto x = data.train.features().to(device);
        const auto y = data.train.labels().to(device);
        const bool hasValidation = !data.validation.empty();
        torch::Tensor xVal, yVal;
        if (hasValidation) {
            xVal = data.validation.features().to(device);
            yVal = data.validation.labels().to(device);
        }
        const auto& classNames = data.train.classNames();

        // The replicas: for single, the network itself on all rows; for model averaging, one clone
        // of it per segment on that segment's shard, while `module` holds the merged model.
        const bool averaging = config.strategy == "model-averaging";
        const int segments = averaging ? config.segments : 1;
        std::vector<torch::Tensor> shards;
        if (averaging)
            shards = data::distribute(data.train, segments, config.distribution, config.seed);
        std::vector<Replica> replicas(static_cast<size_t>(segments));
        for (int i = 0; i < segments; ++i) {
            Replica& r = replicas[size_t(i)];
            r.module = averaging ? model::GraphModule(std::dynamic_pointer_cast<model::GraphModuleImpl>(module->clone(device)))
                                 : module;
            r.x = averaging ? x.index_select(0, shards[size_t(i)].to(device)) : x;
            r.y = averaging ? y.index_select(0, shards[size_t(i)].to(device)) : y;
            r.batch = std::min<int64_t>(config.batchSize, r.rows());
            r.optimizer = makeOptimizer(config.optimizer, r.module->parameters());
            // Segment 0's streams are the single strategy's, so that one segment repeats it exactly.
            const uint64_t seed = config.seed + uint64_t(i) * 1000003ULL;
            r.permutation = at::make_generator<at::CPUGeneratorImpl>(seed);
            // Dropout draws from the network's own stream, seeded apart from the permutations'.
            // On a GPU the masks come from the device's default generator.
            if (device.is_cpu()) {
                r.dropout = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ULL);
                r.module->setGenerator(r.dropout);
            }
        }

        const int64_t n = x.size(0);
        const int64_t batch = replicas.front().batch;
        int64_t stepsPerEpoch = 0;
        for (const auto& r : replicas)
            stepsPerEpoch += r.stepsPerEpoch();
        const int64_t totalSteps = stepsPerEpoch * config.epochs;

        LoopState loop;
        if (resume) {
            const std::string what = "the checkpoint of epoch " + std::to_string(resume->epoch);
            loadWeights(*module, resume->weights, what);
            if (resume->state.empty())
                throw ConfigError(what + " keeps only weights: it cannot be resumed from");
            // A checkpoint is taken right after a merge: every replica holds the merged weights.
            if (averaging)
                for (auto& r : replicas)
                    loadWeights(*r.module, resume->weights, what);
            loop = restoreState(resume->state, what, replicas, device);
            if (loop.epochsDone != resume->epoch)
                throw StorageError(what + " holds the state of epoch " + std::to_string(loop.epochsDone));
            if (loop.globalStep != int64_t(loop.epochsDone) * stepsPerEpoch)
                throw ConfigError(what + " was made with " + std::to_string(loop.globalStep / std::max(1, loop.epochsDone)) +
                                  " steps per epoch, this data and batch size give " + std::to_string(stepsPerEpoch) +
                                  " (a resume needs the run's own data and configuration)");
        }
        const int startEpoch = loop.epochsDone;
        const int64_t startStep = loop.globalStep;
        const int threads = at::get_num_threads();
        {
            RunEvent e;
            e.kind = EventKind::Started;
            e.epochs = config.epochs;
            e.stepsPerEpoch = stepsPerEpoch;
            std::ostringstream m;
            m << "training '" << architecture.name << "' (" << groupThousands(analysis.totalParams)
              << " parameters) on " << device.str() << " with " << config.optimizer.name << " lr "
              << config.optimizer.lr;
            if (config.optimizer.momentum > 0)
                m << (config.optimizer.nesterov ? " nesterov momentum " : " momentum ") << config.optimizer.momentum;
            if (config.optimizer.weightDecay > 0)
                m << " weight decay " << config.optimizer.weightDecay;
            if (config.schedule.name != "none")
                m << " (" << config.schedule.name << " schedule)";
            m << ", batch " << batch << ", " << config.epochs
              << (config.epochs == 1 ? " epoch" : " epochs") << ", seed " << config.seed;
            if (averaging)
                m << ", model averaging over " << segments << " segments (" << config.distribution
                  << " distribution, merge "
                  << (config.syncEvery > 0 ? "every " + std::to_string(config.syncEvery) + " minibatches"
                                           : std::string("after each pass"))
                  << ")";
            if (device.is_cpu())
                m << ", " << threads << (threads == 1 ? " thread" : " threads");
            if (control.initialWeights && !resume)
                m << ", warm start from " << control.initialWeightsFrom;
            if (resume)
                m << "; resuming after epoch " << startEpoch;
            e.epoch = startEpoch;
            e.step = startStep;
            e.message = m.str();
            emitter.emit(std::move(e));
        }

        const bool checkEveryStep = device.is_cpu(); // loss.item() is free on the CPU, a sync on a GPU
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

        for (int epoch = startEpoch; epoch < config.epochs && !loop.stoppedEarly; ++epoch) {
            const double lr = scheduledLearningRate(config.schedule, config.optimizer.lr, epoch, config.epochs);
            for (auto& r : replicas) {
                setLearningRate(*r.optimizer, lr);
                r.module->train();
            }
            const auto epochStart = Clock::now();
            auto nonFinite = [&](int64_t step, bool exact, int segment) {
                std::ostringstream m;
                m << "the loss became " << (exact ? "" : "non-finite ") << "NaN or infinite in epoch " << epoch + 1;
                if (segment >= 0)
                    m << " on segment " << segment;
                m << (exact ? ", step " : " at or before step ") << step
                  << " (lower the learning rate, or check the data for NaN values)";
                return DataError(m.str());
            };
            auto progress = [&](int64_t stepInEpoch, double seen, std::optional<double> lossSum,
                                std::optional<double> correct) {
                const double runSeconds = secondsSince(runStart);
                RunEvent e = positioned(EventKind::Progress, epoch, stepInEpoch);
                if (lossSum) {
                    if (!std::isfinite(*lossSum / seen))
                        throw nonFinite(stepInEpoch, false, -1);
                    e.metrics.push_back({"train_loss", *lossSum / seen});
                }
                if (correct)
                    e.metrics.push_back({"train_accuracy", *correct / seen});
                e.metrics.push_back({"images_per_sec", seen / secondsSince(epochStart)});
                e.metrics.push_back({"eta_seconds", runSeconds / double(std::max<int64_t>(1, globalStep - startStep)) *
                                                        double(totalSteps - globalStep)});
                e.metrics.push_back({"lr", lr});
                emitter.emit(std::move(e));
            };

            // One epoch of every replica: the loss summed over rows and the correct predictions.
            struct SegmentEpoch {
                torch::Tensor order, lossSum, correct;
                int64_t cursor = 0, roundRows = 0, roundSteps = 0;
                std::atomic<int64_t> steps{0}; // read by the reporting thread while a worker trains
                double seconds = 0, divergence = 0;
                std::atomic<double> lossSeen{0};
                std::atomic<int64_t> correctSeen{0}, rowsSeen{0};
                std::exception_ptr error;
            };
            std::vector<SegmentEpoch> seg(replicas.size());
            for (size_t i = 0; i < replicas.size(); ++i) {
                seg[i].order = torch::randperm(replicas[i].rows(), replicas[i].permutation, torch::kLong).to(device);
                seg[i].lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(device));
                seg[i].correct = torch::zeros({}, torch::TensorOptions().dtype(torch::kLong).device(device));
            }
            std::atomic<bool> stop{false};
            // Up to `maxSteps` minibatches of replica i, in order; on the calling thread.
            auto runSegment = [&](size_t i, int64_t maxSteps, bool report) {
                Replica& r = replicas[i];
                SegmentEpoch& sg = seg[i];
                const auto start = Clock::now();
                auto lastProgress = start;
                for (int64_t k = 0; k < maxSteps && sg.cursor < r.rows(); ++k) {
                    if ((cancel && cancel->load(std::memory_order_relaxed)) || stop.load(std::memory_order_relaxed))
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
                    if (checkEveryStep) { // loss.item() is free on the CPU, a sync on a GPU
                        const float value = loss.item<float>();
                        if (!std::isfinite(value))
                            throw nonFinite(sg.steps, true, averaging ? int(i) : -1);
                        if (!report) { // running figures for the thread that reports while workers train
                            sg.lossSeen.store(sg.lossSeen.load() + double(value) * double(end - begin));
                            sg.correctSeen.fetch_add(hits.item<int64_t>());
                        }
                    }
                    sg.rowsSeen.fetch_add(end - begin);
                    if (report) {
                        ++globalStep;
                        const auto now = Clock::now();
                        if (std::chrono::duration<double>(now - lastProgress).count() >= config.progressIntervalSeconds &&
                            sg.cursor < r.rows()) {
                            lastProgress = now;
                            progress(sg.steps, double(end), sg.lossSum.item<double>(),
                                     double(sg.correct.item<int64_t>()));
                        }
                    }
                }
                sg.seconds += secondsSince(start);
            };

            double mergeSeconds = 0;
            int merges = 0;
            if (!averaging) {
                runSegment(0, std::numeric_limits<int64_t>::max(), true);
            } else {
                const int64_t maxSteps = config.syncEvery > 0 ? config.syncEvery : std::numeric_limits<int64_t>::max();
                // A pool of min(N, T) workers, each running its share of the segments one after the
                // other with T / workers threads: more threads than cores only thrash the caches.
                const int pool = std::min(segments, std::max(1, threads));
                const int team = std::max(1, threads / pool);
                auto unfinished = [&] {
                    for (size_t i = 0; i < replicas.size(); ++i)
                        if (seg[i].cursor < replicas[i].rows())
                            return true;
                    return false;
                };
                while (unfinished()) {
                    for (auto& sg : seg)
                        sg.roundRows = sg.roundSteps = 0;
                    if (segments == 1) {
                        runSegment(0, maxSteps, false);
                    } else {
                        std::vector<std::thread> workers;
                        std::atomic<int> running{pool};
                        for (int w = 0; w < pool; ++w)
                            workers.emplace_back([&, w] {
                                setThreadTeam(team);
                                for (size_t i = size_t(w); i < replicas.size(); i += size_t(pool)) {
                                    try {
                                        runSegment(i, maxSteps, false);
                                    } catch (...) {
                                        seg[i].error = std::current_exception();
                                        stop = true;
                                    }
                                }
                                --running;
                            });
                        // The observer hears from this thread only: it reports while the workers train.
                        auto lastProgress = Clock::now();
                        while (running.load() > 0) {
                            std::this_thread::sleep_for(std::chrono::milliseconds(10));
                            if (secondsSince(lastProgress) < config.progressIntervalSeconds)
                                continue;
                            lastProgress = Clock::now();
                            double lossSeen = 0, correctSeen = 0, rowsSeen = 0;
                            int64_t steps = 0;
                            for (auto& sg : seg) {
                                lossSeen += sg.lossSeen.load();
                                correctSeen += double(sg.correctSeen.load());
                                rowsSeen += double(sg.rowsSeen.load());
                                steps += sg.steps;
                            }
                            // (globalStep counts a round's steps at its merge: the ETA lags by a round.)
                            if (rowsSeen > 0)
                                progress(steps, rowsSeen, checkEveryStep ? std::optional<double>(lossSeen) : std::nullopt,
                                         checkEveryStep ? std::optional<double>(correctSeen) : std::nullopt);
                        }
                        for (auto& w : workers)
                            w.join();
                        for (auto& sg : seg)
                            if (sg.error)
                                std::rethrow_exception(sg.error);
                    }
                    if (cancel && cancel->load(std::memory_order_relaxed))
                        break;
                    const auto mergeStart = Clock::now();
                    double rows = 0;
                    for (auto& sg : seg)
                        rows += double(sg.roundRows);
                    std::vector<double> weights, divergence;
                    for (auto& sg : seg)
                        weights.push_back(double(sg.roundRows) / rows);
                    mergeReplicas(module, replicas, weights, divergence);
                    for (size_t i = 0; i < seg.size(); ++i)
                        seg[i].divergence = divergence[i];
                    mergeSeconds += secondsSince(mergeStart);
                    ++merges;
                    for (auto& sg : seg)
                        globalStep += sg.roundSteps;
                }
            }
            if (cancel && cancel->load(std::memory_order_relaxed)) {
                int64_t steps = 0;
                for (auto& sg : seg)
                    steps += sg.steps;
                throw CancelledError("cancelled in epoch " + std::to_string(epoch + 1) + ", step " +
                                     std::to_string(steps + 1));
            }

            double lossTotal = 0, correctTotal = 0;
            for (auto& sg : seg) {
                lossTotal += sg.lossSum.item<double>();
                correctTotal += double(sg.correct.item<int64_t>());
            }
            const double trainLoss = lossTotal / double(n);
            if (!std::isfinite(trainLoss))
                throw nonFinite(stepsPerEpoch, false, -1);
            const double trainSeconds = secondsSince(epochStart);
            if (averaging) // each segment's own view first; the merged epoch event closes the epoch
                for (size_t i = 0; i < seg.size(); ++i) {
                    RunEvent se = positioned(EventKind::Epoch, epoch, stepsPerEpoch);
                    se.segment = int(i);
                    const double rows = double(replicas[i].rows());
                    se.metrics = {{"train_loss", seg[i].lossSum.item<double>() / rows},
                                  {"train_accuracy", double(seg[i].correct.item<int64_t>()) / rows},
                                  {"images_per_sec", rows / std::max(1e-9, seg[i].seconds)},
                                  {"rows", rows},
                                  {"segment_seconds", seg[i].seconds},
                                  {"divergence", seg[i].divergence}};
                    emitter.emit(std::move(se));
                }
            RunEvent e = positioned(EventKind::Epoch, epoch, stepsPerEpoch);
            e.metrics = {{"train_loss", trainLoss},
                         {"train_accuracy", correctTotal / double(n)},
                         {"lr", lr},
                         {"images_per_sec", double(n) / trainSeconds}};
            if (averaging) {
                e.metrics.push_back({"merges", double(merges)});
                e.metrics.push_back({"merge_seconds", mergeSeconds});
            }
            bool improved = false;
            if (hasValidation) {
                auto validation = evaluateModule(module, xVal, yVal, classNames, "validation");
                e.metrics.push_back({"val_loss", validation.loss});
                e.metrics.push_back({"val_accuracy", validation.accuracy});
                if (validation.accuracy > loop.bestValAccuracy) {
                    loop.bestValAccuracy = validation.accuracy;
                    loop.bestEpoch = result.bestEpoch = epoch + 1;
                }
                improved = validation.loss < loop.bestValLoss;
                if (improved)
                    loop.bestValLoss = validation.loss;
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
            if (control.checkpoints) {
                const auto checkpointStart = Clock::now();
                Checkpoint checkpoint;
                checkpoint.epoch = loop.epochsDone;
                checkpoint.valAccuracy = valAccuracy;
                checkpoint.weights = serializeWeights(*module);
                checkpoint.state = serializeState(replicas, device, loop);
                checkpoint.wallSeconds = emitter.elapsed();
                checkpoint.serializeSeconds = secondsSince(checkpointStart);
                control.checkpoints->onCheckpoint(checkpoint);
            }
        }
        // A resume of a run whose epochs were all done (it stopped during the test evaluation).
        if (hasValidation && !result.validation)
            result.validation = evaluateModule(module, xVal, yVal, classNames, "validation");

        if (!data.test.empty()) {
            auto test = evaluateModule(module, data.test.features().to(device), data.test.labels().to(device),
                                       classNames, "test");
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
        module->eval();
        impl->module = module;
        impl->device = device;
        result.model = TrainedModel(std::move(impl));
        return result;
    });
}

} // namespace mppdl::train
