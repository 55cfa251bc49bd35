#pragma once

// A recorded run's model: which run, which epoch's weights, and the model they make. What the
// command line's eval, predict, export and warm starts and the workbench's views read.

#include "mppdl/store/project.h"
#include "mppdl/train/control.h"
#include "mppdl/train/trained_model.h"

#include <string>

namespace mppdl::session {

/// The run named by id or name; ConfigError when there is none (with the latest ids there are).
store::RunRecord findRun(const store::Project& project, const std::string& idOrName);

/// A run's weights at one epoch: `ref` is RUN, RUN:EPOCH, RUN:best or RUN:last (the default).
struct RunWeights {
    store::RunRecord run;
    Checkpoint checkpoint;
    std::string label; ///< "run 3 (mlp-3), epoch 5"
};
/// ConfigError naming the epochs kept when the run has none of those weights.
RunWeights runWeights(const store::Project& project, const std::string& ref);

/// The run's model at that epoch, ready to evaluate and predict, on `device`.
train::TrainedModel runModel(const store::Project& project, const std::string& ref, const std::string& device);
/// The model of weights already read (what an export labels with their run and epoch).
train::TrainedModel runModel(const store::Project& project, const RunWeights& weights, const std::string& device);

} // namespace mppdl::session
