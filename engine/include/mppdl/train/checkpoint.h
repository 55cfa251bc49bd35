#pragma once

#include <atomic>
#include <optional>
#include <string>

namespace mppdl::train {

class ProcessGroup;

/// What a run saves after an epoch so that it can be used (weights) and continued (state) later.
/// The blobs are opaque outside the trainer; the project store keeps them as they are.
struct Checkpoint {
    int epoch = 0;                     ///< epochs completed
    std::optional<double> valAccuracy; ///< that epoch's, when the run validates
    double wallSeconds = 0;            ///< the run's wall time up to here (continued by a resume)
    double serializeSeconds = 0;       ///< what making the blobs cost the training thread
    /// The network's parameters and buffers, a libtorch archive: enough to evaluate, export or
    /// warm-start from, with the architecture and normalizer the run recorded.
    std::string weights;
    /// Everything else a resume needs for the CPU bit-for-bit promise: optimizer state, the
    /// random generators, best-epoch and early-stopping counters.
    std::string state;
};

/// Receives a checkpoint after every epoch, on the training thread (see RunObserver).
class CheckpointSink {
public:
    virtual ~CheckpointSink() = default;
    virtual void onCheckpoint(const Checkpoint& checkpoint) = 0;
};

/// How a caller steers a run besides its configuration.
struct TrainControl {
    /// Checked between minibatches; when set the run reports Cancelled and throws CancelledError.
    const std::atomic<bool>* cancel = nullptr;
    /// Gets a checkpoint after each epoch; none are made without one.
    CheckpointSink* checkpoints = nullptr;
    /// Continue after this checkpoint's epoch instead of starting afresh. The configuration and
    /// data must be the run's own (the same seed and split): then, on the CPU, the result equals
    /// an uninterrupted run's bit for bit.
    const Checkpoint* resumeFrom = nullptr;
    /// Start from these weights (a Checkpoint::weights blob of another run) instead of a random
    /// initialization: a warm start. Every parameter must exist with the same shape (ConfigError
    /// naming the first that does not).
    const std::string* initialWeights = nullptr;
    /// Whose weights those are, for messages ("run 3, epoch 5").
    std::string initialWeightsFrom = "the warm-start weights";
    /// Train this process's share of the segments with the other processes of `group` (its world
    /// must be the configuration's `processes`). Rank 0 reports, checkpoints and resumes; the
    /// others get its warm-start weights and resume point through the group.
    ProcessGroup* group = nullptr;
};

} // namespace mppdl::train
