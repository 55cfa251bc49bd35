#include "run_loop.h"

#include "evaluate.h"
#include "optimizer_factory.h"
#include "trained_model_impl.h"
#include "weights.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/preview.h"
#include "mppdl/data/run_rows.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/process_group.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <sys/resource.h>

namespace mppdl::train {

Emitter::Emitter(RunObserver& observer, double offset)
    : m_observer(observer), m_start(Clock::now()), m_offset(offset) {}

void Emitter::emit(RunEvent event) {
    event.wallSeconds = elapsed();
    m_observer.onEvents({std::move(event)});
}

void Emitter::message(const std::string& text) {
    RunEvent e;
    e.kind = EventKind::Message;
    e.message = text;
    emit(std::move(e));
}

void Emitter::failed(const Error& error) {
    RunEvent e;
    e.kind = error.kind() == ErrorKind::Cancelled ? EventKind::Cancelled : EventKind::Failed;
    e.message = error.what();
    e.errorKind = toString(error.kind());
    emit(std::move(e));
}

double Emitter::elapsed() const { return m_offset + secondsSince(m_start); }

namespace {

/// A segment's minibatch: the configured size, or all its rows when it has fewer (at least 1).
int64_t minibatchOf(int64_t batchSize, int64_t rows) {
    return std::min<int64_t>(batchSize, std::max<int64_t>(1, rows));
}

} // namespace

/// One epoch of the local replicas: where each is in its shard, and the epoch's running figures.
struct RunLoop::Epoch {
    struct Segment {
        explicit Segment(const torch::Device& device) : sums(device) {}
        torch::Tensor order;
        EpochSums sums;
        int64_t cursor = 0, roundRows = 0, roundSteps = 0;
        int64_t fetched = 0;           ///< out of core: rows of `order` handed to the prefetcher
        std::atomic<int64_t> steps{0}; // read by the reporting thread while a worker trains
        double seconds = 0, divergence = 0;
        std::atomic<double> lossSeen{0};
        std::atomic<int64_t> correctSeen{0}, rowsSeen{0};
    };

    int epoch = 0; ///< 0-based
    double lr = 0;
    Clock::time_point start = Clock::now(), lastProgress = Clock::now();
    int64_t startStep = 0;
    std::vector<std::unique_ptr<Segment>> seg; ///< one per local replica
    double joinSeconds = 0;
    int joins = 0;
};

RunLoop::RunLoop(const TrainConfig& config, const model::Architecture& architecture, const data::PreparedData& data,
                 const TrainControl& control, Emitter& emitter)
    : m_config(config), m_architecture(architecture), m_data(data), m_control(control), m_emitter(emitter),
      m_strategy(*findStrategy(config.strategy)) {
    m_group = control.group ? control.group->collectives() : nullptr;
    m_rank = m_group ? m_group->rank() : 0;
    m_world = m_group ? m_group->world() : 1;
    m_local = data.local.get();
    m_hasValidation = m_local ? m_local->validationRows > 0 : !data.validation.empty();
    m_hasTest = m_local ? m_local->testRows > 0 : !data.test.empty();
    m_sharedEvaluation = m_local && m_local->sharedEvaluation;
}

RunLoop::~RunLoop() = default;

TrainResult RunLoop::run() {
    setUp();
    announce();
    for (int epoch = m_startEpoch; epoch < m_config.epochs && !m_loop.stoppedEarly; ++epoch)
        runEpoch(epoch);
    return finish();
}

// ---- set-up ------------------------------------------------------------------------------------

void RunLoop::setUp() {
    checkRun();
    applyThreadCount(m_config.threads);
    placeDevices();
    buildNetwork();
    shareStartPoint();
    // Everything stays resident on the devices as packed tensors: a minibatch is one
    // index_select, with no per-sample work in the loop.
    if (m_hasValidation) {
        m_xVal = m_data.validation.features().to(m_device);
        m_yVal = m_data.validation.labels().to(m_device);
    }
    buildReplicas();
    if (m_data.residence.outOfCore)
        m_prefetcher = std::make_unique<RowPrefetcher>();
    if (m_data.stream) {
        m_streamReadAtLoad = m_data.stream->rowsRead();
        m_streamBytesAtLoad = m_data.stream->bytesRead();
    }
    planSteps();
    resume();
    m_startEpoch = m_loop.epochsDone;
    m_startStep = m_loop.globalStep;
    m_threads = at::get_num_threads();
    // A pool of min(local segments, T) workers, each running its share of the segments one
    // after the other with T / workers threads: more threads than cores only thrash the caches.
    const int poolSize = std::min<int>(int(m_replicas.size()), std::max(1, m_threads));
    if (poolSize > 1)
        m_pool = std::make_unique<SegmentPool>(poolSize, std::max(1, m_threads / poolSize));
    m_checkEveryStep = checksEveryStep(m_device);
    m_result.epochsRun = m_loop.epochsDone;
    m_result.bestEpoch = m_loop.bestEpoch;
    m_result.stoppedEarly = m_loop.stoppedEarly;
}

void RunLoop::checkRun() const {
    const auto problems = validate(m_config);
    if (!problems.empty())
        throw ConfigError(problems.front());
    if (m_world != m_config.processes)
        throw ConfigError("the run is configured for " + std::to_string(m_config.processes) + " processes but " +
                          std::to_string(m_world) + " joined");
    if (m_local ? m_local->trainRows == 0 : m_data.train.empty())
        throw DataError("the training data has no rows");
    if (m_local && (m_local->world != m_world || m_local->rank != m_rank))
        throw InternalError("the data was read for process " + std::to_string(m_local->rank) + " of " +
                            std::to_string(m_local->world));
}

void RunLoop::placeDevices() {
    for (const auto& name : segmentDevices(m_config.device, m_config.gpusPerHost, m_config.segments))
        m_segmentDevice.emplace_back(name);
    m_device = m_segmentDevice.front();
    for (const auto& d : m_segmentDevice)
        if (std::find(m_devices.begin(), m_devices.end(), d) == m_devices.end())
            m_devices.push_back(d);
}

void RunLoop::buildNetwork() {
    // Seed before building the network so its initial weights are part of what the seed fixes.
    torch::manual_seed(m_config.seed);
    m_module = model::GraphModule(m_architecture);
    const auto& analysis = m_module->analysis();
    checkInputShape(analysis, m_data.train.sampleShape(), "the training data");
    if (analysis.numClasses() != m_data.train.numClasses())
        throw ConfigError("the network's output has " + std::to_string(analysis.numClasses()) +
                          " values but the data has " + std::to_string(m_data.train.numClasses()) +
                          " classes (change the last Dense layer's units)");
    m_module->to(m_device);
}

void RunLoop::shareStartPoint() {
    // Every process starts from rank 0's initial or warm-start weights and resume point.
    const Checkpoint* resume = m_control.resumeFrom;
    m_initialWeights = broadcastBytes(m_group,
                                      m_control.initialWeights && !resume ? *m_control.initialWeights : std::string());
    m_resumeWeights = broadcastBytes(m_group, resume ? resume->weights : std::string());
    m_resumeState = broadcastBytes(m_group, resume ? resume->state : std::string());
    m_resumeEpoch = int(std::stoll(broadcastBytes(m_group, std::to_string(resume ? resume->epoch : -1))));
    if (!m_initialWeights.empty())
        loadWeights(*m_module, m_initialWeights, m_control.initialWeightsFrom);
}

void RunLoop::buildReplicas() {
    // The replicas of this process: unsegmented, the network itself on all rows; otherwise a
    // clone per segment s with s % processes == rank, on its shard, while m_module holds the
    // merged model.
    const bool segmented = m_strategy.segmented;
    std::vector<torch::Tensor> shards;
    if (m_local) { // this process read its own segments' rows, placed as distribute() places them
        for (const auto& rows : m_local->segmentRows)
            shards.push_back(torch::tensor(at::ArrayRef<int64_t>(rows), torch::kLong));
        m_shardRows = m_local->segmentSizes;
    } else {
        if (segmented)
            shards = data::distribute(m_data.train, m_config.segments, m_config.distribution, m_config.seed);
        else
            shards = {torch::arange(m_data.train.size(), torch::kLong)};
        for (const auto& s : shards)
            m_shardRows.push_back(s.size(0));
    }
    // Each shard's class histogram, reported with its first epoch: how IID the segments are.
    if (segmented)
        m_shardClasses = m_local ? summarizeLocalShards(shards) : data::summarize(m_data.train, shards);
    for (int s = m_rank; s < m_config.segments; s += m_world) {
        Replica r;
        r.segment = s;
        r.device = m_segmentDevice[size_t(s)];
        r.module = segmented ? model::GraphModule(
                                   std::dynamic_pointer_cast<model::GraphModuleImpl>(m_module->clone(r.device)))
                             : m_module;
        // On the CPU the replicas read the training rows where they are, through their shard's
        // indices: no copy of the data per segment. A device gets a copy of its shard's rows.
        // Streamed (--no-cache): only the shard's positions; its minibatches come from the stream.
        if (m_data.stream || (r.device.is_cpu() && m_data.train.features().device().is_cpu())) {
            r.x = m_data.train.features();
            r.y = m_data.train.labels();
            r.rowsOf = shards[size_t(s)];
        } else {
            r.x = m_data.train.features().index_select(0, shards[size_t(s)]).to(r.device);
            r.y = m_data.train.labels().index_select(0, shards[size_t(s)]).to(r.device);
        }
        r.batch = minibatchOf(m_config.batchSize, r.rows());
        r.optimizer = makeOptimizer(m_config.optimizer, r.module->parameters());
        // Segment 0's streams are the single strategy's, so that one segment repeats it exactly.
        const uint64_t seed = m_config.seed + uint64_t(s) * 1000003ULL;
        r.permutation = at::make_generator<at::CPUGeneratorImpl>(seed);
        // Dropout draws from the network's own stream, seeded apart from the permutations'.
        // On a GPU the masks come from the device's default generator.
        if (r.device.is_cpu()) {
            r.dropout = at::make_generator<at::CPUGeneratorImpl>(seed ^ 0x9E3779B97F4A7C15ULL);
            r.module->setGenerator(r.dropout);
        }
        m_replicas.push_back(std::move(r));
    }
    if (m_replicas.empty())
        throw ConfigError("process " + std::to_string(m_rank) + " of " + std::to_string(m_world) + " has no segment");
}

void RunLoop::planSteps() {
    m_rows = m_local ? m_local->trainRows : m_data.train.size();
    m_batch = std::min<int64_t>(m_config.batchSize, m_rows);
    int64_t longestShard = 0;
    for (auto rows : m_shardRows) {
        const int64_t b = minibatchOf(m_config.batchSize, rows);
        const int64_t steps = (rows + b - 1) / b;
        m_stepsPerEpoch += steps;
        longestShard = std::max(longestShard, steps);
    }
    m_totalSteps = m_stepsPerEpoch * m_config.epochs;
    // Minibatches between joins, and joins per epoch (the same count on every process).
    m_syncEvery = m_config.syncEvery > 0 ? m_config.syncEvery : m_strategy.defaultSyncEvery;
    m_roundSteps = m_syncEvery > 0 ? m_syncEvery : std::numeric_limits<int64_t>::max();
    m_rounds = m_syncEvery > 0 ? (longestShard + m_syncEvery - 1) / m_syncEvery : 1;
    m_movingRate = m_config.movingRate ? *m_config.movingRate : 0.9 / double(m_config.segments);
}

void RunLoop::resume() {
    if (m_resumeEpoch < 0)
        return;
    const std::string what = "the checkpoint of epoch " + std::to_string(m_resumeEpoch);
    if (m_resumeState.empty())
        throw ConfigError(what + " keeps only weights: it cannot be resumed from");
    // A checkpoint is taken right after a join: the replicas hold the merged weights, except
    // where they are their own (then they are in the state; an ensemble's members all are).
    if (!m_strategy.keepsMembers) {
        loadWeights(*m_module, m_resumeWeights, what);
        if (m_strategy.segmented)
            for (auto& r : m_replicas)
                loadWeights(*r.module, m_resumeWeights, what);
    }
    m_loop = restoreState(m_resumeState, what, m_replicas, m_strategy.ownWeights(), m_devices);
    if (m_loop.epochsDone != m_resumeEpoch)
        throw StorageError(what + " holds the state of epoch " + std::to_string(m_loop.epochsDone));
    if (m_loop.globalStep != int64_t(m_loop.epochsDone) * m_stepsPerEpoch)
        throw ConfigError(what + " was made with " +
                          std::to_string(m_loop.globalStep / std::max(1, m_loop.epochsDone)) +
                          " steps per epoch, this data and batch size give " + std::to_string(m_stepsPerEpoch) +
                          " (a resume needs the run's own data and configuration)");
}

void RunLoop::announce() {
    const auto& c = m_config;
    RunEvent e;
    e.kind = EventKind::Started;
    e.epochs = c.epochs;
    e.stepsPerEpoch = m_stepsPerEpoch;
    // Whether a throughput is of images or of rows (tabular data): what a display calls it.
    e.metrics.push_back({"image_samples", data::isImageShape(m_data.train.sampleShape()) ? 1.0 : 0.0});
    std::ostringstream m;
    m << "training '" << m_architecture.name << "' (" << groupThousands(m_module->analysis().totalParams)
      << " parameters) on " << (c.gpusPerHost > 0 ? std::to_string(c.gpusPerHost) + " GPUs per host" : c.device)
      << " with " << c.optimizer.name << " lr " << c.optimizer.lr;
    if (c.optimizer.momentum > 0)
        m << (c.optimizer.nesterov ? " nesterov momentum " : " momentum ") << c.optimizer.momentum;
    if (c.optimizer.weightDecay > 0)
        m << " weight decay " << c.optimizer.weightDecay;
    if (c.schedule.name != "none")
        m << " (" << c.schedule.name << " schedule)";
    m << ", batch " << m_batch << ", " << c.epochs << (c.epochs == 1 ? " epoch" : " epochs") << ", seed " << c.seed;
    if (m_strategy.segmented) {
        m << ", " << c.strategy << " over " << c.segments << " segments (" << c.distribution << " distribution";
        if (m_strategy.periodicJoin())
            m << ", " << (m_strategy.join == Join::Average ? "merge " : "elastic step ")
              << (m_syncEvery > 0 ? "every " + std::to_string(m_syncEvery) + " minibatches"
                                  : std::string("after each pass"));
        if (m_strategy.usesMovingRate)
            m << ", moving rate " << fixedText(m_movingRate, 4);
        m << ")";
    }
    if (m_world > 1)
        m << " in " << m_world << " processes";
    if (m_device.is_cpu())
        m << ", " << m_threads << (m_threads == 1 ? " thread" : " threads") << (m_world > 1 ? " each" : "");
    if (!m_initialWeights.empty())
        m << ", warm start from " << m_control.initialWeightsFrom;
    if (m_resumeEpoch >= 0)
        m << "; resuming after epoch " << m_startEpoch;
    e.epoch = m_startEpoch;
    e.step = m_startStep;
    e.message = m.str();
    m_emitter.emit(std::move(e));
    m_runStart = Clock::now();
}

// ---- an epoch ----------------------------------------------------------------------------------

void RunLoop::runEpoch(int epoch) {
    Epoch ep;
    ep.epoch = epoch;
    ep.lr = scheduledLearningRate(m_config.schedule, m_config.optimizer.lr, epoch, m_config.epochs);
    for (auto& r : m_replicas) {
        setLearningRate(*r.optimizer, ep.lr);
        r.module->train();
    }
    ep.start = Clock::now();
    ep.startStep = m_loop.globalStep;
    for (auto& r : m_replicas) {
        auto sg = std::make_unique<Epoch::Segment>(r.device);
        if (m_data.stream) {
            sg->order = m_data.stream->epochOrder(epoch, r.segment, r.rowsOf);
        } else {
            sg->order = torch::randperm(r.rows(), r.permutation, torch::kLong);
            if (r.rowsOf.defined()) // the same minibatches as from a copy of the shard: its rows in that order
                sg->order = r.rowsOf.index_select(0, sg->order);
            sg->order = sg->order.to(r.device);
        }
        ep.seg.push_back(std::move(sg));
    }
    ep.lastProgress = Clock::now();
    // Each round: every segment's next m_roundSteps minibatches, then the strategy's join. Every
    // process runs the same number of rounds, so their collectives pair up.
    for (int64_t round = 0; round < m_rounds; ++round) {
        runRound(ep);
        if (!join(ep))
            break;
    }
    throwIfCancelled(ep);
    endEpoch(ep);
}

void RunLoop::runRound(Epoch& ep) {
    for (auto& sg : ep.seg)
        sg->roundRows = sg->roundSteps = 0;
    const bool inlineReport = !m_pool;
    forEachReplica(ep, [&](size_t i) { runSegment(ep, i, inlineReport); });
}

// Up to m_roundSteps minibatches of local replica i, in order. All-reduce leaves the optimizer's
// step to its join. `inlineReport`: this is the thread that reports progress.
void RunLoop::runSegment(Epoch& ep, size_t i, bool inlineReport) {
    Replica& r = m_replicas[i];
    Epoch::Segment& sg = *ep.seg[i];
    const bool stepHere = m_strategy.join != Join::Gradients;
    const int segment = m_strategy.segmented ? r.segment : -1;
    const auto start = Clock::now();
    // Out of core: the rows of the next few minibatches are read while this one trains.
    const auto readAhead = [&] {
        if (!m_prefetcher || !r.x.device().is_cpu())
            return;
        const int64_t until = std::min(r.rows(), sg.cursor + RowPrefetcher::kDepth * r.batch);
        if (until > sg.fetched)
            m_prefetcher->ahead(r.x, sg.order, std::max(sg.fetched, sg.cursor), until);
        sg.fetched = std::max(sg.fetched, until);
    };
    for (int64_t k = 0; k < m_roundSteps && sg.cursor < r.rows(); ++k) {
        readAhead();
        if (cancelled() || (m_pool && m_pool->failed.load(std::memory_order_relaxed)))
            break;
        const int64_t begin = sg.cursor;
        const int64_t end = std::min(r.rows(), begin + r.batch);
        const auto figures = m_data.stream ? trainStreamed(r, sg.order, begin, end, stepHere, sg.sums)
                                           : trainMinibatch(r.module, *r.optimizer, r.x, r.y, sg.order, begin, end,
                                                            stepHere, sg.sums);
        sg.cursor = end;
        sg.roundRows += end - begin;
        ++sg.roundSteps;
        ++sg.steps;
        if (m_checkEveryStep) {
            const float value = checkedLoss(figures, ep.epoch + 1, sg.steps, segment);
            if (!inlineReport) { // running figures for the thread that reports while workers train
                sg.lossSeen.store(sg.lossSeen.load() + double(value) * double(end - begin));
                sg.correctSeen.fetch_add(figures.hits.item<int64_t>());
            }
        }
        sg.rowsSeen.fetch_add(end - begin);
        if (inlineReport && sg.cursor < r.rows())
            progress(ep, true);
    }
    sg.seconds += secondsSince(start);
}

// A minibatch of a streamed run: its rows gathered from the blocks the stream holds (reading any it
// does not), then trained as a minibatch of rows in memory.
StepFigures RunLoop::trainStreamed(Replica& r, const torch::Tensor& order, int64_t begin, int64_t end, bool stepHere,
                                   EpochSums& sums) {
    const auto batch = m_data.stream->gather(order.slice(0, begin, end));
    const auto rows = torch::arange(end - begin, torch::TensorOptions(torch::kLong).device(r.device));
    return trainMinibatch(r.module, *r.optimizer, batch.features().to(r.device), batch.labels().to(r.device), rows, 0,
                          end - begin, stepHere, sums);
}

// Progress from this process's segments. `sameThread`: called from the thread that trains (it
// may read the running sums), else from the reporting thread (atomics).
void RunLoop::progress(Epoch& ep, bool sameThread) {
    if (secondsSince(ep.lastProgress) < m_config.progressIntervalSeconds)
        return;
    ep.lastProgress = Clock::now();
    double lossSum = 0, correct = 0, seen = 0;
    int64_t steps = 0;
    for (auto& sg : ep.seg) {
        seen += double(sg->rowsSeen.load());
        steps += sg->steps.load();
        lossSum += sameThread ? sg->sums.lossSum.item<double>() : sg->lossSeen.load();
        correct += sameThread ? double(sg->sums.correct.item<int64_t>()) : double(sg->correctSeen.load());
    }
    if (seen <= 0)
        return;
    // Other processes' segments are assumed as far along as this one's.
    const int64_t stepInEpoch = steps * m_world;
    const int64_t now = ep.startStep + stepInEpoch;
    RunEvent e = positioned(EventKind::Progress, ep.epoch, stepInEpoch);
    e.step = now;
    if (sameThread || m_checkEveryStep) {
        if (!std::isfinite(lossSum / seen))
            throw nonFiniteLoss(ep.epoch + 1, steps, false);
        e.metrics.push_back({"train_loss", lossSum / seen});
        e.metrics.push_back({"train_accuracy", correct / seen});
    }
    e.metrics.push_back({"images_per_sec", seen / secondsSince(ep.start)});
    e.metrics.push_back({"eta_seconds", secondsSince(m_runStart) / double(std::max<int64_t>(1, now - m_startStep)) *
                                            double(std::max<int64_t>(0, m_totalSteps - now))});
    e.metrics.push_back({"lr", ep.lr});
    m_emitter.emit(std::move(e));
}

bool RunLoop::join(Epoch& ep) {
    const auto joinStart = Clock::now();
    const int segments = m_config.segments;
    // The round's rows and steps of every segment, and whether any process cancels.
    auto counts = torch::zeros({2 * segments + 1}, torch::kDouble);
    auto count = counts.accessor<double, 1>();
    for (size_t i = 0; i < m_replicas.size(); ++i) {
        count[m_replicas[i].segment] = double(ep.seg[i]->roundRows);
        count[segments + m_replicas[i].segment] = double(ep.seg[i]->roundSteps);
    }
    count[2 * segments] = m_control.cancel && m_control.cancel->load() ? 1.0 : 0.0;
    allreduceTensors(m_group, {counts});
    if (count[2 * segments] > 0)
        return false;
    double rows = 0;
    for (int s = 0; s < segments; ++s) {
        rows += count[s];
        m_loop.globalStep += int64_t(count[segments + s]);
    }
    std::vector<double> weights, divergence;
    for (auto& r : m_replicas)
        weights.push_back(rows > 0 ? count[r.segment] / rows : 0.0);
    switch (m_strategy.join) {
    case Join::None: return true; // nothing joined, no time spent joining
    case Join::Average: averageReplicas(m_module, m_replicas, weights, divergence, m_group); break;
    case Join::Elastic: elasticAverage(m_module, m_replicas, m_movingRate, divergence, m_group); break;
    case Join::Gradients:
        if (rows > 0) {
            averageGradients(m_replicas, weights, m_group);
            ep.joinSeconds += secondsSince(joinStart); // the steps are training, not joining
            // Every replica steps, with or without a minibatch of its own: they stay equal.
            forEachReplica(ep, [&](size_t i) { m_replicas[i].optimizer->step(); });
        }
        ++ep.joins;
        return true;
    }
    for (size_t i = 0; i < ep.seg.size(); ++i)
        ep.seg[i]->divergence = divergence[i];
    ep.joinSeconds += secondsSince(joinStart);
    ++ep.joins;
    return true;
}

void RunLoop::throwIfCancelled(const Epoch& ep) const {
    if (!cancelled())
        return;
    int64_t steps = 0;
    for (auto& sg : ep.seg)
        steps += sg->steps;
    throw CancelledError("cancelled in epoch " + std::to_string(ep.epoch + 1) + ", step " + std::to_string(steps + 1));
}

void RunLoop::endEpoch(Epoch& ep) {
    if (m_strategy.join == Join::Gradients) {
        // The parameters are equal everywhere; BatchNorm's running statistics, which each replica
        // keeps from its own minibatches, are averaged once per epoch.
        std::vector<double> weights, divergence;
        for (auto& r : m_replicas)
            weights.push_back(double(r.rows()) / double(m_rows));
        averageReplicas(m_module, m_replicas, weights, divergence, m_group, /*buffersOnly=*/true);
        for (size_t i = 0; i < ep.seg.size(); ++i)
            ep.seg[i]->divergence = divergence[i];
    }
    // The validation of the joined model (an ensemble's members scored alone on the way).
    std::optional<Evaluation> validation;
    std::vector<double> memberValAccuracy;
    if (m_hasValidation)
        validation = evaluateRun(m_xVal, m_yVal, "validation", &memberValAccuracy);
    reportEpoch(ep, validation, memberValAccuracy);
    bool improved = false;
    if (validation) {
        if (validation->accuracy > m_loop.bestValAccuracy) {
            m_loop.bestValAccuracy = validation->accuracy;
            m_loop.bestEpoch = m_result.bestEpoch = ep.epoch + 1;
        }
        improved = validation->loss < m_loop.bestValLoss;
        if (improved)
            m_loop.bestValLoss = validation->loss;
        m_result.validation = std::move(validation);
    }
    const std::optional<double> valAccuracy = m_result.validation ? std::optional<double>(m_result.validation->accuracy)
                                                                  : std::nullopt;
    m_result.epochsRun = m_loop.epochsDone = ep.epoch + 1;

    m_loop.epochsWithoutImprovement = improved ? 0 : m_loop.epochsWithoutImprovement + 1;
    if (m_config.earlyStoppingPatience > 0 && m_loop.epochsWithoutImprovement >= m_config.earlyStoppingPatience &&
        ep.epoch + 1 < m_config.epochs) {
        m_result.stoppedEarly = m_loop.stoppedEarly = true;
        m_emitter.message("early stopping: the validation loss has not improved for " +
                          std::to_string(m_loop.epochsWithoutImprovement) + " epochs");
    }
    // Every process takes part in gathering the state; rank 0 hands it over.
    if (m_control.checkpoints || m_world > 1)
        checkpoint(valAccuracy);
}

// The epoch's events: each segment's own view first, then the merged epoch event that closes it.
void RunLoop::reportEpoch(Epoch& ep, const std::optional<Evaluation>& validation,
                          const std::vector<double>& memberValAccuracy) {
    const int segments = m_config.segments;
    const bool members = m_strategy.keepsMembers && m_hasValidation;
    // Each segment's own figures, from every process: [segment][figure].
    enum Figure { LossSum, Correct, Seconds, Divergence, ValAccuracy, Figures };
    auto figures = torch::zeros({segments, Figures}, torch::kDouble);
    auto figure = figures.accessor<double, 2>();
    for (size_t i = 0; i < m_replicas.size(); ++i) {
        const int s = m_replicas[i].segment;
        figure[s][LossSum] = ep.seg[i]->sums.lossSum.item<double>();
        figure[s][Correct] = double(ep.seg[i]->sums.correct.item<int64_t>());
        figure[s][Seconds] = ep.seg[i]->seconds;
        figure[s][Divergence] = ep.seg[i]->divergence;
        if (members) // what each member scores alone
            figure[s][ValAccuracy] = memberValAccuracy[i];
    }
    allreduceTensors(m_group, {figures});
    const auto fig = figures.accessor<double, 2>();
    double lossTotal = 0, correctTotal = 0;
    for (int s = 0; s < segments; ++s) {
        lossTotal += fig[s][LossSum];
        correctTotal += fig[s][Correct];
    }
    const double trainLoss = lossTotal / double(m_rows);
    if (!std::isfinite(trainLoss))
        throw nonFiniteLoss(ep.epoch + 1, m_stepsPerEpoch, false);
    const double trainSeconds = secondsSince(ep.start);
    if (m_strategy.segmented)
        for (int s = 0; s < segments; ++s) {
            RunEvent se = positioned(EventKind::Epoch, ep.epoch, m_stepsPerEpoch);
            se.segment = s;
            const double rows = double(m_shardRows[size_t(s)]);
            se.metrics = {{"train_loss", fig[s][LossSum] / rows},
                          {"train_accuracy", fig[s][Correct] / rows},
                          {"images_per_sec", rows / std::max(1e-9, fig[s][Seconds])},
                          {"rows", rows},
                          {"segment_seconds", fig[s][Seconds]}};
            if (m_strategy.join != Join::None)
                se.metrics.push_back({"divergence", fig[s][Divergence]});
            if (members)
                se.metrics.push_back({"val_accuracy", fig[s][ValAccuracy]});
            if (ep.epoch == m_startEpoch)
                for (size_t c = 0; c < m_shardClasses.segments[size_t(s)].classCounts.size(); ++c)
                    se.metrics.push_back({"rows_of_class_" + std::to_string(c),
                                          double(m_shardClasses.segments[size_t(s)].classCounts[c])});
            m_emitter.emit(std::move(se));
        }
    RunEvent e = positioned(EventKind::Epoch, ep.epoch, m_stepsPerEpoch);
    e.metrics = {{"train_loss", trainLoss},
                 {"train_accuracy", correctTotal / double(m_rows)},
                 {"lr", ep.lr},
                 {"images_per_sec", double(m_rows) / trainSeconds}};
    if (m_strategy.segmented && m_strategy.join != Join::None) {
        e.metrics.push_back({"merges", double(ep.joins)});
        e.metrics.push_back({"merge_seconds", ep.joinSeconds});
    }
    if (validation) {
        e.metrics.push_back({"val_loss", validation->loss});
        e.metrics.push_back({"val_accuracy", validation->accuracy});
    }
    e.metrics.push_back({"epoch_seconds", secondsSince(ep.start)});
    e.metrics.push_back({"eta_seconds", secondsSince(m_runStart) / double(ep.epoch + 1 - m_startEpoch) *
                                            double(m_config.epochs - ep.epoch - 1)});
    m_emitter.emit(std::move(e));
}

void RunLoop::checkpoint(const std::optional<double>& valAccuracy) {
    const auto checkpointStart = Clock::now();
    const auto& states = m_lastStates = gatherSegments(m_replicas, m_strategy.ownWeights(), m_group);
    if (!m_control.checkpoints)
        return;
    Checkpoint checkpoint;
    checkpoint.epoch = m_loop.epochsDone;
    checkpoint.valAccuracy = valAccuracy;
    const auto members = m_strategy.keepsMembers
                             ? allMembers(m_replicas, states, m_config.segments, m_architecture, m_device)
                             : localMembers();
    checkpoint.weights = serializeWeights(*weightsModule(members));
    checkpoint.state = serializeState(states, m_devices, m_loop);
    checkpoint.wallSeconds = m_emitter.elapsed();
    checkpoint.serializeSeconds = secondsSince(checkpointStart);
    m_control.checkpoints->onCheckpoint(checkpoint);
}

// ---- the finish --------------------------------------------------------------------------------

TrainResult RunLoop::finish() {
    // A resume of a run whose epochs were all done (it stopped during the test evaluation).
    if (m_hasValidation && !m_result.validation)
        m_result.validation = evaluateRun(m_xVal, m_yVal, "validation");

    // The final model: the merged one, or every member of an ensemble.
    std::vector<model::GraphModule> members = localMembers();
    if (m_strategy.keepsMembers && m_world > 1) // the last epoch gathered them, unless no epoch ran here
        members = allMembers(m_replicas,
                             m_lastStates.empty() ? gatherSegments(m_replicas, true, m_group) : m_lastStates,
                             m_config.segments, m_architecture, m_device);
    if (m_hasTest)
        evaluateTest(members);

    m_result.seconds = m_emitter.elapsed();
    RunEvent done;
    done.kind = EventKind::Finished;
    done.epoch = m_result.epochsRun;
    done.epochs = m_config.epochs;
    done.step = m_loop.globalStep;
    done.metrics = {{"epochs", double(m_result.epochsRun)},
                    {"seconds", m_result.seconds},
                    {"best_epoch", double(m_result.bestEpoch)}};
    if (m_result.validation) {
        done.metrics.push_back({"val_loss", m_result.validation->loss});
        done.metrics.push_back({"val_accuracy", m_result.validation->accuracy});
    }
    if (m_result.test) {
        done.metrics.push_back({"test_loss", m_result.test->loss});
        done.metrics.push_back({"test_accuracy", m_result.test->accuracy});
        done.evaluation = std::make_shared<Evaluation>(*m_result.test);
    }
    done.ranks = rankFigures();
    m_emitter.emit(std::move(done));

    auto impl = std::make_unique<TrainedModel::Impl>();
    impl->architecture = m_architecture;
    impl->normalizer = m_data.normalizer;
    impl->classNames = m_data.train.classNames();
    impl->members = members;
    impl->device = m_device;
    for (auto& m : impl->members)
        m->eval();
    m_result.model = TrainedModel(std::move(impl));
    return std::move(m_result);
}

void RunLoop::evaluateTest(std::vector<model::GraphModule>& members) {
    const auto& classNames = m_data.train.classNames();
    const auto xTest = m_data.test.features().to(m_device);
    const auto yTest = m_data.test.labels().to(m_device);
    auto evaluation = [&](int segment, const Evaluation& test) {
        RunEvent e;
        e.kind = EventKind::Evaluation;
        e.segment = segment;
        e.epoch = m_result.epochsRun;
        e.epochs = m_config.epochs;
        e.step = m_loop.globalStep; // after the last step: series ordered by step end with it
        e.metrics = {{"test_loss", test.loss}, {"test_accuracy", test.accuracy}};
        return e;
    };
    if (m_strategy.keepsMembers) // each member alone, to weigh the ensemble against its best member
        for (int s = 0; s < m_config.segments; ++s) {
            std::vector<model::GraphModule> one{members[size_t(s)]};
            m_emitter.emit(evaluation(s, evaluateMembers(one, xTest, yTest, classNames, "test")));
        }
    auto test = evaluateShare(members, xTest, yTest, "test");
    RunEvent e = evaluation(-1, test);
    e.message = "test accuracy " + percentText(test.accuracy);
    e.evaluation = std::make_shared<Evaluation>(test);
    m_emitter.emit(std::move(e));
    m_result.test = std::move(test);
}

// ---- helpers -----------------------------------------------------------------------------------

void RunLoop::forEachReplica(Epoch& ep, const std::function<void(size_t)>& job) {
    if (m_pool)
        m_pool->run(m_replicas.size(), job, [&] { progress(ep, false); });
    else
        for (size_t i = 0; i < m_replicas.size(); ++i)
            job(i);
}

std::vector<model::GraphModule> RunLoop::localMembers() {
    std::vector<model::GraphModule> out;
    if (!m_strategy.keepsMembers)
        out.push_back(m_module);
    else
        for (auto& r : m_replicas)
            out.push_back(r.module);
    return out;
}

// Evaluates what the run has made so far: for an ensemble, every process's members.
// `memberAccuracy[i]`, when given, gets local member i's own accuracy, from the same forward passes.
Evaluation RunLoop::evaluateRun(const torch::Tensor& x, const torch::Tensor& y, const std::string& split,
                                std::vector<double>* memberAccuracy) {
    auto members = localMembers();
    const auto& classNames = m_data.train.classNames();
    if (!m_strategy.keepsMembers)
        return evaluateShare(members, x, y, split);
    torch::Tensor sum;
    for (auto& member : members) {
        std::vector<model::GraphModule> one{member};
        auto probabilities = sumProbabilities(one, x);
        if (memberAccuracy)
            memberAccuracy->push_back(double(probabilities.argmax(1).eq(y).sum().item<int64_t>()) /
                                      double(std::max<int64_t>(1, y.size(0))));
        sum = sum.defined() ? sum.add_(probabilities) : probabilities;
    }
    allreduceTensors(m_group, {sum});
    return evaluateLogits(ensembleLogits(sum, m_config.segments), y, classNames, split);
}

Evaluation RunLoop::evaluateShare(std::vector<model::GraphModule>& members, const torch::Tensor& x,
                                  const torch::Tensor& y, const std::string& split) {
    const auto& classNames = m_data.train.classNames();
    const Evaluation local = x.size(0) > 0 ? evaluateMembers(members, x, y, classNames, split)
                                           : evaluateLogits(torch::zeros({0, int64_t(classNames.size())}),
                                                            torch::zeros({0}, torch::kLong), classNames, split);
    return m_sharedEvaluation ? sumEvaluations(m_group, local) : local;
}

data::DistributionSummary RunLoop::summarizeLocalShards(const std::vector<torch::Tensor>& shards) {
    const int64_t classes = m_data.train.numClasses();
    const int segments = m_config.segments;
    auto counts = torch::zeros({segments, classes}, torch::kDouble);
    for (int s = m_rank; s < segments; s += m_world)
        if (shards[size_t(s)].numel() > 0)
            counts[s] = torch::bincount(m_data.train.labels().index_select(0, shards[size_t(s)]), {}, classes)
                            .to(torch::kDouble);
    allreduceTensors(m_group, {counts});
    data::DistributionSummary summary;
    int64_t total = 0, fullest = 0;
    for (int s = 0; s < segments; ++s) {
        data::SegmentSummary seg;
        seg.rows = m_shardRows[size_t(s)];
        for (int64_t c = 0; c < classes; ++c)
            seg.classCounts.push_back(int64_t(counts[s][c].item<double>()));
        total += seg.rows;
        fullest = std::max(fullest, seg.rows);
        summary.segments.push_back(std::move(seg));
    }
    if (total > 0)
        summary.skew = double(fullest) * double(segments) / double(total);
    return summary;
}

std::vector<RankFigures> RunLoop::rankFigures() {
    enum Figure { RowsRead, BytesRead, PeakRss, Figures };
    auto figures = torch::zeros({m_world, Figures}, torch::kDouble);
    // A stream reads every epoch: what it has read by now, the validation and test rows besides.
    figures[m_rank][RowsRead] = double(m_data.rowsRead +
                                       (m_data.stream ? m_data.stream->rowsRead() - m_streamReadAtLoad : 0));
    figures[m_rank][BytesRead] = double(m_data.bytesRead +
                                        (m_data.stream ? m_data.stream->bytesRead() - m_streamBytesAtLoad : 0));
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    figures[m_rank][PeakRss] = double(usage.ru_maxrss) * 1024.0; // Linux counts kilobytes
    allreduceTensors(m_group, {figures});
    std::vector<RankFigures> out;
    for (int r = 0; r < m_world; ++r) {
        RankFigures f;
        f.rank = r;
        f.segments = data::segmentsOfRank(m_config.segments, r, m_world);
        f.rowsRead = int64_t(figures[r][RowsRead].item<double>());
        f.bytesRead = int64_t(figures[r][BytesRead].item<double>());
        f.peakRssBytes = int64_t(figures[r][PeakRss].item<double>());
        out.push_back(std::move(f));
    }
    return out;
}

RunEvent RunLoop::positioned(EventKind kind, int epoch, int64_t stepInEpoch) const {
    RunEvent e;
    e.kind = kind;
    e.epoch = epoch + 1;
    e.epochs = m_config.epochs;
    e.step = m_loop.globalStep;
    e.stepInEpoch = stepInEpoch;
    e.stepsPerEpoch = m_stepsPerEpoch;
    return e;
}

bool RunLoop::cancelled() const { return m_control.cancel && m_control.cancel->load(std::memory_order_relaxed); }

} // namespace mppdl::train
