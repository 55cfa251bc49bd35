#pragma once

// Training many configurations at once over N segments (DESIGN.md, "model selection"):
// - model hopper parallelism (Cerebro; MADlib's fit_multiple_model): the rows are dealt into N
//   shards that stay put, and the models move: a configuration trains a sub-epoch on one
//   segment's shard, then hops to the next, so that every configuration sees every shard each
//   epoch and nothing is averaged. A segment trains at most one configuration at a time.
// - task parallelism: each configuration trains whole, on all rows, on one of N workers.
// - sequential: one configuration after another with every thread (the baseline).

#include "mppdl/data/preprocess.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/control.h"
#include "mppdl/core/events.h"
#include "mppdl/train/trainer.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mppdl::tune {

/// "mop", "task", "sequential": the CLI's help and the GUI read this list.
const std::vector<Choice>& schedulerChoices();

/// One configuration of a search, trained as a run of its own.
struct Trial {
    /// What it trains with: optimizer, batch size, seed, device, threads (ignored: the scheduler
    /// shares them out). `config.epochs` is the most it will ever train (its run's plan).
    train::TrainConfig config;
    model::Architecture architecture;
    /// Its run's events and checkpoints (a project's RunRecorder): always called on the thread
    /// that called trainTrials, never from a worker.
    RunObserver* observer = nullptr;
    CheckpointSink* checkpoints = nullptr;
    /// Continue after this checkpoint (its run's last resumable one) instead of starting afresh.
    std::optional<Checkpoint> resumeFrom;
    /// Its run ended before (a resumed search's finished or stopped run): it does not train.
    bool ended = false;
};

/// Where a trial stands; trainTrials keeps it between calls so that Hyperband's promoted
/// configurations continue where their rung left them.
struct TrialState;

/// What one trial reached.
struct TrialStatus {
    int epochsDone = 0;
    std::optional<double> valAccuracy; ///< after its last epoch (when there is validation data)
    std::optional<double> valLoss;
    double seconds = 0;    ///< training and evaluation time, summed over its sub-epochs
    bool finished = false; ///< trained all of config.epochs (its run ended)
};

struct ScheduleOptions {
    std::string scheduler = "mop";
    int segments = 4;
    std::string distribution = "random"; ///< how rows are dealt to the shards (mop)
    uint64_t seed = 0;                   ///< the distribution's seed
    int threads = 0;                     ///< all workers together; 0: defaultThreadCount()
    const std::atomic<bool>* cancel = nullptr;
    /// Called on the calling thread about every 10 ms while workers train (a live leaderboard).
    std::function<void()> whileWaiting;
};

/// A search's trials and their models, trained round by round.
class TrialSet {
public:
    /// The trials share `data` (kept by reference: it must outlive the set). ConfigError when a
    /// trial's configuration is invalid (naming the trial) or its network does not fit the data.
    TrialSet(std::vector<Trial> trials, const data::PreparedData& data, ScheduleOptions options);
    ~TrialSet();
    TrialSet(const TrialSet&) = delete;
    TrialSet& operator=(const TrialSet&) = delete;

    size_t size() const;
    const TrialStatus& status(size_t trial) const;

    /// Trains the trials in `which` until each has `untilEpoch[i]` epochs (at most its
    /// config.epochs), with the set's scheduler. After each of a trial's epochs its observer gets
    /// an Epoch event (train and validation metrics) and its sink a checkpoint; when a trial
    /// reaches config.epochs its run finishes (test evaluation when the data has a test split).
    /// On cancel every unfinished trial reports Cancelled and CancelledError is thrown; a failing
    /// trial reports Failed and the first failure is rethrown after the others stop.
    void train(const std::vector<size_t>& which, const std::vector<int>& untilEpoch);

    /// Ends the runs of trials that stop before their planned epochs (Hyperband's losers): a
    /// Finished event with what they reached.
    void stop(size_t trial, const std::string& why);

    /// The trial's model as it is now (for evaluation or export).
    train::TrainedModel model(size_t trial) const;

    struct Shared; ///< engine-internal: the shards and the workers' hand-over to the calling thread

private:
    std::vector<std::unique_ptr<TrialState>> m_trials;
    const data::PreparedData& m_data;
    ScheduleOptions m_options;
    std::unique_ptr<Shared> m_shared;
};

} // namespace mppdl::tune
