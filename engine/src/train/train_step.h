#pragma once

// Internal: one minibatch of training and what a failure on a training thread becomes, shared by the
// trainer's run loop and the tuner's trials, so that both detect a NaN loss and an exhausted device
// the same way.

#include "mppdl/core/error.h"

#include "model/graph_module.h"

#include <torch/torch.h>

#include <chrono>
#include <exception>

namespace mppdl::train {

using Clock = std::chrono::steady_clock;

/// Wall seconds since `t`: what the run loop and the tuner time their phases with.
inline double secondsSince(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// A minibatch's figures, still on its device: reading them is a sync on a GPU.
struct StepFigures {
    torch::Tensor loss; ///< the mean cross-entropy of the minibatch
    torch::Tensor hits; ///< how many of its rows the network predicted right
};

/// An epoch's running sums on a device: the loss times rows, and the correct predictions.
struct EpochSums {
    explicit EpochSums(const torch::Device& device);
    torch::Tensor lossSum, correct;
};

/// One minibatch of rows `order[begin, end)` of x, y: forward, cross-entropy, backward and, unless
/// `stepOptimizer` is false (all-reduce steps after its join), the optimizer's step. Adds the loss
/// times rows and the hits to `sums`.
StepFigures trainMinibatch(model::GraphModule& module, torch::optim::Optimizer& optimizer, const torch::Tensor& x,
                           const torch::Tensor& y, const torch::Tensor& order, int64_t begin, int64_t end,
                           bool stepOptimizer, EpochSums& sums);

/// loss.item() is free on the CPU and a sync on a GPU: runs on the CPU check every step, runs on a
/// GPU once per epoch (or per sub-epoch of a search).
inline bool checksEveryStep(const torch::Device& device) { return device.is_cpu(); }

/// The DataError of a loss that became NaN or infinite in 1-based `epoch`: at `step` when `exact`,
/// else at or before it; on `segment` when >= 0.
DataError nonFiniteLoss(int epoch, int64_t step, bool exact, int segment = -1);

/// The minibatch's loss as a float, checked: nonFiniteLoss(epoch, step, true, segment) when it is NaN
/// or infinite.
float checkedLoss(const StepFigures& figures, int epoch, int64_t step, int segment = -1);

/// What a failure on a training thread is reported as: an mppdl::Error as it is; running out of
/// memory (libtorch's allocators, std::bad_alloc) as a DeviceError with advice; any other libtorch or
/// standard exception as an InternalError. Returns a pointer to an mppdl::Error.
std::exception_ptr asEngineError(std::exception_ptr failure);

} // namespace mppdl::train
