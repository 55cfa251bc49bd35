#pragma once

// Internal: what a checkpoint keeps besides the weights so that a run can continue after it (the
// CPU's bit-for-bit promise of TrainControl::resumeFrom): every segment's optimizer and generators,
// the devices' generators and the epoch loop's counters.

#include "segments.h"

#include "mppdl/model/architecture.h"

#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace mppdl::train {

/// What the epoch loop carries from one epoch to the next besides weights and optimizer state.
struct LoopState {
    int epochsDone = 0;
    int64_t globalStep = 0;
    int bestEpoch = 0;
    double bestValAccuracy = -1;
    double bestValLoss = INFINITY;
    int epochsWithoutImprovement = 0;
    bool stoppedEarly = false;

    /// As JSON text, and back (a missing key throws).
    std::string toJson() const;
    static LoopState fromJson(const std::string& json);
};

/// Every segment's state blob, at every process: the local replicas' made here, the others' gathered.
/// `withWeights`: each segment's weights are its own (StrategyKind::ownWeights()).
std::map<int, std::string> gatherSegments(std::vector<Replica>& replicas, bool withWeights, Collectives* group);

/// The resume half of a checkpoint: every segment's state, the devices' generators and the loop
/// counters.
std::string serializeState(const std::map<int, std::string>& segments, const std::vector<torch::Device>& devices,
                           const LoopState& loop);

/// Restores the local replicas and the devices' generators from serializeState()'s blob and returns
/// the loop counters. ConfigError for a state of another format or with fewer segments;
/// StorageError for a damaged one. `what` names the checkpoint in messages.
LoopState restoreState(const std::string& blob, const std::string& what, std::vector<Replica>& replicas,
                       bool withWeights, const std::vector<torch::Device>& devices);

/// Every member of an ensemble at every process: the local replicas, and the others' rebuilt from
/// their gathered state (a run in one process has them all).
std::vector<model::GraphModule> allMembers(std::vector<Replica>& replicas, const std::map<int, std::string>& states,
                                           int segments, const model::Architecture& architecture,
                                           const torch::Device& device);

} // namespace mppdl::train
