#pragma once

// Internal: turns an OptimizerConfig into a libtorch optimizer.

#include "mppdl/train/optimizers.h"

#include <torch/torch.h>

#include <memory>
#include <vector>

namespace mppdl::train {

std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const OptimizerConfig& config,
                                                       std::vector<torch::Tensor> parameters);

/// Sets the learning rate of every parameter group.
void setLearningRate(torch::optim::Optimizer& optimizer, double lr);

} // namespace mppdl::train
