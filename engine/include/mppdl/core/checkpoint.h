#pragma once

#include <optional>
#include <string>

namespace mppdl {

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

} // namespace mppdl
