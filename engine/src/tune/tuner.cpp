#include "mppdl/tune/tuner.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/train/devices.h"

#include "model/graph_module.h"
#include "train/evaluate.h"
#include "train/optimizer_factory.h"
#include "train/segments.h"
#include "train/train_step.h"
#include "train/trained_model_impl.h"
#include "train/weights.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <sstream>

namespace mppdl::tune {

using train::Clock;
using train::secondsSince;

namespace {

constexpr int64_t kStateFormat = 1;

} // namespace

const std::vector<Choice>& schedulerChoices() {
    static const std::vector<Choice> choices = {
        {"mop", "model hopper: each configuration trains a sub-epoch on one segment's shard, then hops to the "
                "next; one configuration per segment at a time (Cerebro, MADlib fit_multiple_model)"},
        {"task", "task parallelism: each configuration trains whole, on all rows, on one of the segments' workers"},
        {"sequential", "one configuration after another, each with every thread"},
    };
    return choices;
}

/// A trial's model, optimizer and place in its run. Owned by the worker that trains it while
/// `busy`; by the calling thread otherwise.
struct TrialState {
    Trial trial;
    size_t index = 0;
    model::GraphModule module{nullptr};
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    at::Generator permutation;
    at::Generator dropout;
    TrialStatus status;
    int64_t step = 0;      ///< minibatches since the run started
    double wallOffset = 0; ///< wall time of earlier processes (a resume)
    bool started = false;  ///< its Started event was sent
    bool ended = false;    ///< Finished, Failed or Cancelled was sent
    // This round and epoch.
    int until = 0;
    bool busy = false;
    int visits = 0; ///< shards trained in the current epoch
    double lossSum = 0;
    int64_t correct = 0, rows = 0;
    double epochTrainSeconds = 0;
    Clock::time_point runStart;

    int64_t stepsPerEpoch(const std::vector<int64_t>& shardRows) const {
        int64_t steps = 0;
        const int64_t b = trial.config.batchSize;
        for (auto r : shardRows)
            steps += (r + b - 1) / b;
        return steps;
    }
    double wall() const { return wallOffset + (started ? secondsSince(runStart) : 0.0); }
};

struct TrialSet::Shared {
    torch::Device device{torch::kCPU};
    /// The shards the trials hop over (mop), or one shard of every row (task, sequential).
    std::vector<torch::Tensor> x, y;
    std::vector<int64_t> shardRows;
    torch::Tensor xVal, yVal, xTest, yTest;
    int workers = 1, team = 1;
    bool hop = true;
    std::vector<std::string> classNames;

    std::mutex mutex;
    std::condition_variable changed;
    /// What workers hand to the calling thread: observer and sink calls, run in order.
    std::vector<std::function<void()>> outbox;
    void post(std::function<void()> f) {
        std::lock_guard<std::mutex> lock(mutex);
        outbox.push_back(std::move(f));
    }
    void deliver() {
        std::vector<std::function<void()>> now;
        {
            std::lock_guard<std::mutex> lock(mutex);
            now.swap(outbox);
        }
        for (auto& f : now)
            f();
    }
};

namespace {

/// An event of the trial's run at its current position.
RunEvent positioned(const TrialState& t, EventKind kind, int64_t stepsPerEpoch) {
    RunEvent e;
    e.kind = kind;
    e.epoch = t.status.epochsDone;
    e.epochs = t.trial.config.epochs;
    e.step = t.step;
    e.stepsPerEpoch = stepsPerEpoch;
    e.wallSeconds = t.wall();
    return e;
}

void send(TrialSet::Shared& shared, TrialState& t, RunEvent e) {
    auto* observer = t.trial.observer;
    if (!observer)
        return;
    shared.post([observer, e = std::move(e)] { observer->onEvents({e}); });
}

std::string serializeState(TrialState& t) {
    torch::serialize::OutputArchive archive;
    archive.write("format", torch::tensor(kStateFormat));
    torch::serialize::OutputArchive optimizerArchive;
    t.optimizer->save(optimizerArchive);
    archive.write("optimizer", optimizerArchive);
    train::writeGenerator(archive, "permutation_rng", t.permutation);
    if (t.dropout.defined())
        train::writeGenerator(archive, "dropout_rng", t.dropout);
    archive.write("epochs_done", torch::tensor(int64_t(t.status.epochsDone)));
    archive.write("step", torch::tensor(t.step));
    archive.write("seconds", torch::tensor(t.status.seconds, torch::kDouble));
    return train::serializeArchive(archive);
}

void restoreState(TrialState& t, const Checkpoint& c, const torch::Device& device, const std::string& what) {
    if (c.state.empty())
        throw ConfigError(what + " keeps only weights: it cannot be resumed from");
    train::loadWeights(*t.module, c.weights, what);
    torch::serialize::InputArchive archive;
    train::loadArchive(archive, c.state, what, device);
    torch::Tensor format;
    if (!archive.try_read("format", format) || format.item<int64_t>() != kStateFormat)
        throw ConfigError(what + " was not made by a search: it cannot continue one");
    torch::serialize::InputArchive optimizerArchive;
    archive.read("optimizer", optimizerArchive);
    t.optimizer->load(optimizerArchive);
    train::readGenerator(archive, "permutation_rng", t.permutation);
    if (t.dropout.defined())
        train::readGenerator(archive, "dropout_rng", t.dropout);
    torch::Tensor epochs, step, seconds;
    archive.read("epochs_done", epochs);
    archive.read("step", step);
    archive.read("seconds", seconds);
    t.status.epochsDone = int(epochs.item<int64_t>());
    t.step = step.item<int64_t>();
    t.status.seconds = seconds.item<double>();
    if (t.status.epochsDone != c.epoch)
        throw StorageError(what + " holds the state of epoch " + std::to_string(t.status.epochsDone));
    t.status.valAccuracy = c.valAccuracy;
    t.wallOffset = c.wallSeconds;
}

/// One pass of trial `t` over shard rows x, y: the minibatches of its batch size in an order drawn
/// from its generator. Runs on a worker.
void trainShard(TrialState& t, const torch::Tensor& x, const torch::Tensor& y, const std::function<bool()>& stop) {
    const int64_t n = x.size(0);
    const int64_t batch = std::min<int64_t>(t.trial.config.batchSize, std::max<int64_t>(1, n));
    const auto order = torch::randperm(n, t.permutation, torch::kLong).to(x.device());
    t.module->train();
    train::EpochSums sums(x.device());
    const bool checkEveryStep = train::checksEveryStep(x.device());
    const int epoch = t.status.epochsDone + 1;
    for (int64_t begin = 0; begin < n; begin += batch) {
        if (stop())
            return;
        const int64_t end = std::min(n, begin + batch);
        const auto figures = train::trainMinibatch(t.module, *t.optimizer, x, y, order, begin, end, true, sums);
        ++t.step;
        if (checkEveryStep)
            train::checkedLoss(figures, epoch, t.step);
    }
    t.lossSum += sums.lossSum.item<double>();
    t.correct += sums.correct.item<int64_t>();
    t.rows += n;
    if (!std::isfinite(t.lossSum))
        throw train::nonFiniteLoss(epoch, t.step, false);
}

} // namespace

// Building the networks may exhaust the device as training does: the same translation
// (asEngineError), so that a search's out-of-memory is a DeviceError as a run's is.
TrialSet::TrialSet(std::vector<Trial> trials, const data::PreparedData& data, ScheduleOptions options) try
    : m_data(data), m_options(std::move(options)), m_shared(std::make_unique<Shared>()) {
    auto& sh = *m_shared;
    const auto& choices = schedulerChoices();
    if (std::none_of(choices.begin(), choices.end(), [&](const auto& c) { return m_options.scheduler == c.name; }))
        throw ConfigError("unknown scheduler '" + m_options.scheduler + "' (mop, task, sequential)");
    if (m_options.segments < 1)
        throw ConfigError("a search needs at least 1 segment, got " + std::to_string(m_options.segments));
    if (data.train.empty())
        throw DataError("the training data has no rows");
    if (trials.empty())
        throw ConfigError("a search needs at least one configuration");
    train::applyThreadCount(m_options.threads);
    const int threads = at::get_num_threads();
    sh.device = torch::Device(train::checkDevice(trials.front().config.device));
    sh.classNames = data.train.classNames();
    sh.hop = m_options.scheduler == "mop";
    sh.workers = m_options.scheduler == "sequential" ? 1 : m_options.segments;
    sh.team = std::max(1, threads / sh.workers);

    if (sh.hop) {
        if (m_options.segments > data.train.size())
            throw ConfigError("more segments (" + std::to_string(m_options.segments) + ") than training rows (" +
                              std::to_string(data.train.size()) + ")");
        for (const auto& rows :
             data::distribute(data.train, m_options.segments, m_options.distribution, m_options.seed)) {
            sh.x.push_back(data.train.features().index_select(0, rows).to(sh.device));
            sh.y.push_back(data.train.labels().index_select(0, rows).to(sh.device));
            sh.shardRows.push_back(rows.size(0));
        }
    } else {
        sh.x.push_back(data.train.features().to(sh.device));
        sh.y.push_back(data.train.labels().to(sh.device));
        sh.shardRows.push_back(data.train.size());
    }
    if (!data.validation.empty()) {
        sh.xVal = data.validation.features().to(sh.device);
        sh.yVal = data.validation.labels().to(sh.device);
    }
    if (!data.test.empty()) {
        sh.xTest = data.test.features().to(sh.device);
        sh.yTest = data.test.labels().to(sh.device);
    }

    for (size_t i = 0; i < trials.size(); ++i) {
        auto t = std::make_unique<TrialState>();
        t->trial = std::move(trials[i]);
        t->index = i;
        auto& c = t->trial.config;
        const std::string who = "configuration " + std::to_string(i + 1);
        auto problems = train::validate(c);
        if (!problems.empty())
            throw ConfigError(who + ": " + problems.front());
        if (c.device != trials.front().config.device && train::checkDevice(c.device) != sh.device.str())
            throw ConfigError(who + ": every configuration of a search trains on the same device");
        // Seeded before the network is built: the seed fixes its initial weights, as in train().
        torch::manual_seed(c.seed);
        t->module = model::GraphModule(t->trial.architecture);
        const auto& analysis = t->module->analysis();
        train::checkInputShape(analysis, data.train.sampleShape(), who + "'s training data");
        if (analysis.numClasses() != data.train.numClasses())
            throw ConfigError(who + ": the network '" + t->trial.architecture.name + "' has " +
                              std::to_string(analysis.numClasses()) + " outputs but the data has " +
                              std::to_string(data.train.numClasses()) + " classes");
        t->module->to(sh.device);
        t->optimizer = train::makeOptimizer(c.optimizer, t->module->parameters());
        t->permutation = at::make_generator<at::CPUGeneratorImpl>(c.seed);
        if (sh.device.is_cpu()) {
            t->dropout = at::make_generator<at::CPUGeneratorImpl>(c.seed ^ 0x9E3779B97F4A7C15ULL);
            t->module->setGenerator(t->dropout);
        }
        t->ended = t->trial.ended;
        if (t->trial.resumeFrom && !t->ended)
            restoreState(*t, *t->trial.resumeFrom, sh.device,
                         who + "'s checkpoint of epoch " + std::to_string(t->trial.resumeFrom->epoch));
        t->status.finished = t->status.epochsDone >= c.epochs;
        m_trials.push_back(std::move(t));
    }
} catch (...) {
    std::rethrow_exception(train::asEngineError(std::current_exception()));
}

TrialSet::~TrialSet() = default;

size_t TrialSet::size() const { return m_trials.size(); }
const TrialStatus& TrialSet::status(size_t trial) const { return m_trials.at(trial)->status; }

train::TrainedModel TrialSet::model(size_t trial) const {
    const auto& t = *m_trials.at(trial);
    auto impl = std::make_unique<train::TrainedModel::Impl>();
    impl->architecture = t.trial.architecture;
    impl->normalizer = m_data.normalizer;
    impl->classNames = m_shared->classNames;
    impl->members = {model::GraphModule(std::dynamic_pointer_cast<model::GraphModuleImpl>(t.module->clone()))};
    impl->device = m_shared->device;
    impl->members.front()->eval();
    return train::TrainedModel(std::move(impl));
}

void TrialSet::stop(size_t trial, const std::string& why) {
    auto& t = *m_trials.at(trial);
    if (t.ended)
        return;
    RunEvent e = positioned(t, EventKind::Message, t.stepsPerEpoch(m_shared->shardRows));
    e.message = why;
    send(*m_shared, t, e);
    RunEvent done = positioned(t, EventKind::Finished, e.stepsPerEpoch);
    done.metrics = {{"epochs", double(t.status.epochsDone)}, {"seconds", t.status.seconds}};
    if (t.status.valAccuracy)
        done.metrics.push_back({"val_accuracy", *t.status.valAccuracy});
    send(*m_shared, t, done);
    t.ended = true;
    m_shared->deliver();
}

namespace {

/// One call of TrialSet::train(): the active trials trained to their target epochs on a pool of
/// workers, their events handed to the calling thread, and how the round ends when it fails.
class TrialRound {
public:
    TrialRound(TrialSet::Shared& shared, const ScheduleOptions& options, std::vector<TrialState*> active)
        : m_sh(shared), m_options(options), m_active(std::move(active)), m_segments(int(shared.x.size())),
          m_pool(shared.workers, shared.team) {}

    void run();

private:
    /// The shard trial t needs next: in epoch e, visit v goes to shard (t + e + v) mod N, so each
    /// trial's data order is fixed by its index and the result does not depend on timing.
    int nextShard(const TrialState& t) const {
        return int((t.index + size_t(t.status.epochsDone) + size_t(t.visits)) % size_t(m_segments));
    }
    static bool done(const TrialState& t) { return t.ended || t.status.epochsDone >= t.until; }
    /// Workers stop at the next minibatch when one of them failed, the caller cancels, or handing
    /// events to the observers failed (a full disk: training on without a record helps nobody).
    bool stopping() const {
        return m_pool.failed.load(std::memory_order_relaxed) || m_abort.load(std::memory_order_relaxed) || cancelled();
    }
    bool cancelled() const { return m_options.cancel && m_options.cancel->load(std::memory_order_relaxed); }

    void start(TrialState& t);
    void work(size_t w);
    TrialState* take(size_t w);
    void trainOnce(TrialState& t, int shard);
    void endEpoch(TrialState& t);
    void finish(TrialState& t, int64_t steps);
    void whileWaiting();
    [[noreturn]] void fail(std::exception_ptr failure);

    TrialSet::Shared& m_sh;
    const ScheduleOptions& m_options;
    std::vector<TrialState*> m_active;
    int m_segments;
    train::SegmentPool m_pool;
    std::atomic<bool> m_abort{false};
    std::exception_ptr m_deliveryError;
};

void TrialRound::run() {
    for (auto* t : m_active)
        start(*t);
    m_sh.deliver();
    std::exception_ptr failure;
    try {
        m_pool.run(
            size_t(m_sh.workers), [this](size_t w) { work(w); }, [this] { whileWaiting(); });
    } catch (...) {
        failure = std::current_exception();
    }
    if (m_deliveryError)
        failure = m_deliveryError;
    m_sh.deliver();
    if (!failure && m_options.cancel && m_options.cancel->load())
        failure = std::make_exception_ptr(CancelledError("the search was cancelled"));
    if (failure)
        fail(failure);
}

void TrialRound::start(TrialState& t) {
    if (t.started)
        return;
    t.started = true;
    t.runStart = Clock::now();
    const auto& c = t.trial.config;
    RunEvent e = positioned(t, EventKind::Started, t.stepsPerEpoch(m_sh.shardRows));
    std::ostringstream m;
    m << "training '" << t.trial.architecture.name << "' (" << groupThousands(t.module->analysis().totalParams)
      << " parameters) with " << c.optimizer.name << " lr " << c.optimizer.lr;
    if (c.optimizer.momentum > 0)
        m << " momentum " << c.optimizer.momentum;
    if (c.optimizer.weightDecay > 0)
        m << " weight decay " << c.optimizer.weightDecay;
    m << ", batch " << c.batchSize << ", up to " << c.epochs << (c.epochs == 1 ? " epoch" : " epochs") << ", seed "
      << c.seed << "; configuration " << t.index + 1 << " of a search, ";
    if (m_sh.hop)
        m << "hopping over " << m_segments << " segments (" << m_options.distribution << " distribution)";
    else
        m << (m_options.scheduler == "task" ? "on one of " + std::to_string(m_sh.workers) + " workers"
                                            : std::string("one after another"));
    m << " on " << m_sh.device.str();
    if (m_sh.device.is_cpu())
        m << ", " << m_sh.team << (m_sh.team == 1 ? " thread" : " threads");
    if (t.status.epochsDone > 0)
        m << "; resuming after epoch " << t.status.epochsDone;
    e.message = m.str();
    send(m_sh, t, e);
}

// Worker w is segment w's under mop: it trains whichever free trial needs shard w next, one
// sub-epoch at a time. A task worker takes a free trial and keeps it to its target epoch.
void TrialRound::work(size_t w) {
    while (TrialState* t = take(w)) {
        struct Release { // the trial goes back to the pool, also when training throws
            TrialSet::Shared& m_sh;
            TrialState* t;
            ~Release() {
                {
                    std::lock_guard<std::mutex> lock(m_sh.mutex);
                    t->busy = false;
                }
                m_sh.changed.notify_all();
            }
        } release{m_sh, t};
        if (m_sh.hop)
            trainOnce(*t, int(w));
        else
            while (!done(*t) && !stopping())
                trainOnce(*t, 0);
    }
}

// The next trial worker w may train, marked busy; nullptr when none is left or the round stops.
TrialState* TrialRound::take(size_t w) {
    TrialState* t = nullptr;
    std::unique_lock<std::mutex> lock(m_sh.mutex);
    m_sh.changed.wait(lock, [&] {
        if (stopping())
            return true;
        bool remaining = false;
        for (auto* c : m_active) {
            if (c->busy) { // another worker's: its fields are not ours to read
                remaining = true;
                continue;
            }
            if (done(*c))
                continue;
            remaining = true;
            if (!m_sh.hop || nextShard(*c) == int(w)) {
                t = c;
                return true;
            }
        }
        return !remaining;
    });
    if (stopping() || !t)
        return nullptr;
    t->busy = true;
    return t;
}

// One sub-epoch of trial t on `shard` (all rows for task and sequential), and the end of its
// epoch when that was its last shard. Runs on a worker that holds the trial (busy).
void TrialRound::trainOnce(TrialState& t, int shard) {
    if (t.visits == 0)
        train::setLearningRate(*t.optimizer,
                               train::scheduledLearningRate(t.trial.config.schedule, t.trial.config.optimizer.lr,
                                                            t.status.epochsDone, t.trial.config.epochs));
    const auto begin = Clock::now();
    trainShard(t, m_sh.x[size_t(shard)], m_sh.y[size_t(shard)], [this] { return stopping(); });
    const double seconds = secondsSince(begin);
    t.epochTrainSeconds += seconds;
    t.status.seconds += seconds;
    if (stopping())
        return;
    t.visits += 1;
    const int64_t steps = t.stepsPerEpoch(m_sh.shardRows);
    if (t.visits == m_segments) {
        const auto evalStart = Clock::now();
        endEpoch(t);
        t.status.seconds += secondsSince(evalStart);
        return;
    }
    RunEvent p = positioned(t, EventKind::Progress, steps);
    p.epoch = t.status.epochsDone + 1;
    p.stepInEpoch = t.step - int64_t(t.status.epochsDone) * steps;
    p.metrics = {{"train_loss", t.lossSum / double(std::max<int64_t>(1, t.rows))},
                 {"train_accuracy", double(t.correct) / double(std::max<int64_t>(1, t.rows))},
                 {"images_per_sec", double(t.rows) / std::max(1e-9, t.epochTrainSeconds)}};
    send(m_sh, t, p);
}

// A trial's epoch ends: validation, the Epoch event, a checkpoint, and at its last planned epoch
// the finish. Runs on the worker that trained the last shard.
void TrialRound::endEpoch(TrialState& t) {
    const int64_t steps = t.stepsPerEpoch(m_sh.shardRows);
    t.status.epochsDone += 1;
    RunEvent e = positioned(t, EventKind::Epoch, steps);
    e.stepInEpoch = steps;
    const double lr = train::scheduledLearningRate(t.trial.config.schedule, t.trial.config.optimizer.lr,
                                                   t.status.epochsDone - 1, t.trial.config.epochs);
    e.metrics = {{"train_loss", t.lossSum / double(std::max<int64_t>(1, t.rows))},
                 {"train_accuracy", double(t.correct) / double(std::max<int64_t>(1, t.rows))},
                 {"lr", lr},
                 {"images_per_sec", double(t.rows) / std::max(1e-9, t.epochTrainSeconds)},
                 {"epoch_seconds", t.epochTrainSeconds}};
    if (m_sh.xVal.defined()) {
        std::vector<model::GraphModule> one{t.module};
        const auto v = train::evaluateMembers(one, m_sh.xVal, m_sh.yVal, m_sh.classNames, "validation");
        t.status.valAccuracy = v.accuracy;
        t.status.valLoss = v.loss;
        e.metrics.push_back({"val_loss", v.loss});
        e.metrics.push_back({"val_accuracy", v.accuracy});
    }
    e.wallSeconds = t.wall();
    send(m_sh, t, e);
    if (t.trial.checkpoints) {
        auto c = std::make_shared<Checkpoint>();
        c->epoch = t.status.epochsDone;
        c->valAccuracy = t.status.valAccuracy;
        c->wallSeconds = t.wall();
        const auto start = Clock::now();
        c->weights = train::serializeWeights(*t.module);
        c->state = serializeState(t);
        c->serializeSeconds = secondsSince(start);
        auto* sink = t.trial.checkpoints;
        m_sh.post([sink, c] { sink->onCheckpoint(*c); });
    }
    t.visits = 0;
    t.lossSum = 0;
    t.correct = 0;
    t.rows = 0;
    t.epochTrainSeconds = 0;
    if (t.status.epochsDone >= t.trial.config.epochs)
        finish(t, steps);
}

// The trial's last planned epoch is done: the test evaluation and Finished.
void TrialRound::finish(TrialState& t, int64_t steps) {
    t.status.finished = true;
    RunEvent finished = positioned(t, EventKind::Finished, steps);
    finished.metrics = {{"epochs", double(t.status.epochsDone)}, {"seconds", t.status.seconds}};
    if (t.status.valAccuracy) {
        finished.metrics.push_back({"val_loss", *t.status.valLoss});
        finished.metrics.push_back({"val_accuracy", *t.status.valAccuracy});
    }
    if (m_sh.xTest.defined()) {
        std::vector<model::GraphModule> one{t.module};
        const auto test = train::evaluateMembers(one, m_sh.xTest, m_sh.yTest, m_sh.classNames, "test");
        RunEvent ev = positioned(t, EventKind::Evaluation, steps);
        ev.metrics = {{"test_loss", test.loss}, {"test_accuracy", test.accuracy}};
        ev.message = "test accuracy " + percentText(test.accuracy);
        ev.evaluation = std::make_shared<Evaluation>(test);
        send(m_sh, t, ev);
        finished.metrics.push_back({"test_loss", test.loss});
        finished.metrics.push_back({"test_accuracy", test.accuracy});
        finished.evaluation = ev.evaluation;
    }
    finished.wallSeconds = t.wall();
    send(m_sh, t, finished);
    t.ended = true;
}

// On the calling thread while the workers train: their events to the observers, and the caller's
// own work (a live leaderboard). A failure to deliver stops the round.
void TrialRound::whileWaiting() {
    if (m_abort)
        return;
    try {
        m_sh.deliver();
        if (m_options.whileWaiting)
            m_options.whileWaiting();
    } catch (...) {
        m_deliveryError = std::current_exception();
        m_abort = true;
    }
    if (m_abort || cancelled())
        m_sh.changed.notify_all();
}

// Every unfinished run of the round ends with the error (or the cancellation), which is rethrown.
void TrialRound::fail(std::exception_ptr failure) {
    failure = train::asEngineError(failure);
    std::string message = "the search stopped", kind = "internal";
    bool wasCancelled = false;
    try {
        std::rethrow_exception(failure);
    } catch (const Error& e) {
        message = e.what();
        kind = toString(e.kind());
        wasCancelled = e.kind() == ErrorKind::Cancelled;
    }
    for (auto* t : m_active) {
        if (t->ended)
            continue;
        RunEvent e = positioned(*t, wasCancelled ? EventKind::Cancelled : EventKind::Failed,
                                t->stepsPerEpoch(m_sh.shardRows));
        e.message = message;
        e.errorKind = kind;
        send(m_sh, *t, e);
        t->ended = true;
    }
    m_sh.deliver();
    std::rethrow_exception(failure);
}

} // namespace

void TrialSet::train(const std::vector<size_t>& which, const std::vector<int>& untilEpoch) {
    if (which.size() != untilEpoch.size())
        throw InternalError("TrialSet::train: one target epoch per trial");
    std::vector<TrialState*> active;
    for (size_t k = 0; k < which.size(); ++k) {
        auto& t = *m_trials.at(which[k]);
        t.until = std::min(untilEpoch[k], t.trial.config.epochs);
        if (t.ended || t.status.epochsDone >= t.until)
            continue;
        active.push_back(&t);
    }
    if (!active.empty())
        TrialRound(*m_shared, m_options, std::move(active)).run();
}

} // namespace mppdl::tune
