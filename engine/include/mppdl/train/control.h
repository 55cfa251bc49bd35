#pragma once

#include "mppdl/core/checkpoint.h"

#include <atomic>
#include <string>

namespace mppdl::train {

class ProcessGroup;

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
