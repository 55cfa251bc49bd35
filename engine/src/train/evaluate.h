#pragma once

// Internal: batched evaluation of a module on resident tensors.

#include "mppdl/train/events.h"

#include "model/graph_module.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace mppdl::train {

/// Loss, accuracy, per-class accuracy and confusion matrix of `module` on normalized features `x`
/// and labels `y` (on any device). Runs in eval mode without gradients and restores the module's
/// training mode afterwards.
Evaluation evaluateModule(model::GraphModule& module, const torch::Tensor& x, const torch::Tensor& y,
                          const std::vector<std::string>& classNames, const std::string& split,
                          int64_t batchSize = 256);

/// Throws ConfigError when a dataset's sample shape is not the network's input shape.
void checkInputShape(const model::Analysis& analysis, const std::vector<int64_t>& sampleShape,
                     const std::string& what);

} // namespace mppdl::train
