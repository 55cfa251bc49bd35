#pragma once

// Internal: the training loop of train(), as named phases (setUp, runRound, join, endEpoch, finish)
// over the replicas of this process. DESIGN.md, "Training strategies", gives each join's math.

#include "resume_state.h"
#include "row_prefetcher.h"
#include "segments.h"
#include "train_step.h"

#include "mppdl/data/distribution.h"
#include "mppdl/train/strategies.h"
#include "mppdl/train/trainer.h"

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mppdl::train {

/// Stamps events with the run's wall time and hands them to the observer.
class Emitter {
public:
    /// `offset`: wall time the run had already spent before this process (a resume).
    explicit Emitter(RunObserver& observer, double offset = 0);

    void emit(RunEvent event);
    void message(const std::string& text);
    /// The Failed (or Cancelled) event of `error`.
    void failed(const Error& error);
    double elapsed() const;

private:
    RunObserver& m_observer;
    Clock::time_point m_start;
    double m_offset;
};

/// Runs `body`, reporting any failure once as a Failed/Cancelled event and rethrowing it as an
/// mppdl::Error (asEngineError): libtorch's own exceptions are translated here, at the engine's edge.
template <typename Body>
auto reportFailures(Emitter& emitter, Body&& body) -> decltype(body());

/// One run of train() in this process: construct, then run() once.
class RunLoop {
public:
    RunLoop(const TrainConfig& config, const model::Architecture& architecture, const data::PreparedData& data,
            const TrainControl& control, Emitter& emitter);
    ~RunLoop();

    /// setUp, then each epoch's rounds of local steps and joins and its end, then finish.
    TrainResult run();

private:
    struct Epoch;

    // Set-up: devices, the network and its replicas, the plan of steps, the resume point.
    void setUp();
    void checkRun() const;
    void placeDevices();
    void buildNetwork();
    void shareStartPoint();
    void buildReplicas();
    void planSteps();
    void resume();
    void announce();

    // An epoch: rounds of local steps, each followed by the strategy's join.
    void runEpoch(int epoch);
    void runRound(Epoch& ep);
    void runSegment(Epoch& ep, size_t i, bool inlineReport);
    /// A minibatch of a streamed run (--no-cache): the rows order[begin, end) from the stream.
    StepFigures trainStreamed(Replica& r, const torch::Tensor& order, int64_t begin, int64_t end, bool stepHere,
                              EpochSums& sums);
    void progress(Epoch& ep, bool sameThread);
    /// Exchanges the round's counts and joins; false when some process cancels.
    bool join(Epoch& ep);
    void throwIfCancelled(const Epoch& ep) const;
    void endEpoch(Epoch& ep);
    void reportEpoch(Epoch& ep, const std::optional<Evaluation>& validation,
                     const std::vector<double>& memberValAccuracy);
    void checkpoint(const std::optional<double>& valAccuracy);

    // The finish: the test evaluation and the trained model.
    TrainResult finish();
    void evaluateTest(std::vector<model::GraphModule>& members);

    /// Runs job(i) for every local replica: on the pool (this thread reporting the epoch's
    /// progress meanwhile), or here when there is none.
    void forEachReplica(Epoch& ep, const std::function<void(size_t)>& job);
    std::vector<model::GraphModule> localMembers();
    Evaluation evaluateRun(const torch::Tensor& x, const torch::Tensor& y, const std::string& split,
                           std::vector<double>* memberAccuracy = nullptr);
    /// `members` on this process's rows x, y (maybe none); with shared evaluation, every process's.
    Evaluation evaluateShare(std::vector<model::GraphModule>& members, const torch::Tensor& x, const torch::Tensor& y,
                             const std::string& split);
    /// What every process read and its peak resident size (collective).
    std::vector<RankFigures> rankFigures();
    /// Each segment's class histogram when the segments' rows are spread over the processes.
    data::DistributionSummary summarizeLocalShards(const std::vector<torch::Tensor>& shards);
    /// An event at a place of the run (0-based epoch, 1-based step in it).
    RunEvent positioned(EventKind kind, int epoch, int64_t stepInEpoch) const;
    bool cancelled() const;

    const TrainConfig& m_config;
    const model::Architecture& m_architecture;
    const data::PreparedData& m_data;
    const TrainControl& m_control;
    Emitter& m_emitter;
    const StrategyKind& m_strategy;

    Collectives* m_group = nullptr;
    /// Set when this process read only its own rows (the rest are the other processes').
    const data::LocalRows* m_local = nullptr;
    bool m_hasValidation = false, m_hasTest = false;
    bool m_sharedEvaluation = false; ///< each process evaluates its share of the rows
    int m_rank = 0, m_world = 1;
    std::vector<torch::Device> m_segmentDevice; ///< each segment's
    torch::Device m_device{torch::kCPU};        ///< where the merged model lives
    std::vector<torch::Device> m_devices;       ///< the distinct ones, for their generators

    model::GraphModule m_module{nullptr}; ///< the merged model (EASGD's center; unused by an ensemble)
    std::string m_initialWeights, m_resumeWeights, m_resumeState;
    int m_resumeEpoch = -1;
    torch::Tensor m_xVal, m_yVal;

    std::vector<int64_t> m_shardRows;
    data::DistributionSummary m_shardClasses;
    std::vector<Replica> m_replicas;
    std::unique_ptr<SegmentPool> m_pool;
    std::unique_ptr<RowPrefetcher> m_prefetcher; ///< out of core: reads the next minibatches' rows
    /// Streamed: what its stream had read when the run began (rows, bytes).
    int64_t m_streamReadAtLoad = 0, m_streamBytesAtLoad = 0;
    int m_threads = 1;

    int64_t m_rows = 0, m_batch = 0, m_stepsPerEpoch = 0, m_totalSteps = 0;
    int64_t m_syncEvery = 0, m_roundSteps = 0, m_rounds = 1;
    double m_movingRate = 0;
    bool m_checkEveryStep = true;

    LoopState m_loop;
    int m_startEpoch = 0;
    int64_t m_startStep = 0;
    Clock::time_point m_runStart;
    TrainResult m_result;
    std::map<int, std::string> m_lastStates; ///< every segment's, as the last epoch gathered them
};

template <typename Body>
auto reportFailures(Emitter& emitter, Body&& body) -> decltype(body()) {
    try {
        return body();
    } catch (...) {
        const auto failure = asEngineError(std::current_exception());
        try {
            std::rethrow_exception(failure);
        } catch (const Error& e) {
            emitter.failed(e);
        }
        std::rethrow_exception(failure);
    }
}

} // namespace mppdl::train
