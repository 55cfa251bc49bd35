#pragma once

// Internal: batched evaluation of a module on resident tensors.

#include "mppdl/core/events.h"

#include "model/graph_module.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace mppdl::train {

/// Rows a forward pass without gradients takes at once when the caller does not say (batchSize 0
/// below). On a GPU, 1024. On the CPU, as many rows as keep the network's largest layer output
/// within kInferenceCacheBytes, from 16 to 1024: a batch whose activations stay in the cache runs
/// several times faster than one that streams them through memory (fmnist_cnn, 100 KB of conv1
/// output a row, 2-core EPYC: 9.1k rows/s at 64 rows, 7.7k at 128, 3.6k at 256, 3.0k at 1024).
int64_t inferenceBatch(const model::Analysis& analysis, const torch::Device& device);
constexpr int64_t kInferenceCacheBytes = int64_t(6) << 20;

/// The sum of the members' class probabilities for every row of normalized features `x` ([rows,
/// classes], on x's device), in batches (0: inferenceBatch()), in eval mode without gradients;
/// each member's training mode is restored afterwards. An ensemble's prediction is this sum over
/// its members, divided by their number (members may be spread over processes: their partial
/// sums are added up).
torch::Tensor sumProbabilities(std::vector<model::GraphModule>& members, const torch::Tensor& x, int64_t batchSize = 0);

/// The logits of one network for every row of `x`, the same way.
torch::Tensor predictLogits(model::GraphModule& module, const torch::Tensor& x, int64_t batchSize = 0);

/// Logits of an ensemble: the log of its members' mean probabilities. Cross-entropy and argmax
/// read them as any logits (log_softmax of log p is log p when p sums to 1).
torch::Tensor ensembleLogits(const torch::Tensor& probabilitySum, int64_t members);

/// Loss, accuracy, per-class accuracy and confusion matrix of `logits` against labels `y`.
Evaluation evaluateLogits(const torch::Tensor& logits, const torch::Tensor& y,
                          const std::vector<std::string>& classNames, const std::string& split);

class Collectives;

/// The evaluation of all the rows the processes of a run evaluated, each its share (`local`, of
/// possibly no rows): losses and confusion counts summed. `local` itself without `group`.
Evaluation sumEvaluations(Collectives* group, const Evaluation& local);

/// The same for a network, or an ensemble of them (one member: that network's own logits), on
/// normalized features `x` and labels `y` (on any device).
Evaluation evaluateMembers(std::vector<model::GraphModule>& members, const torch::Tensor& x, const torch::Tensor& y,
                           const std::vector<std::string>& classNames, const std::string& split);

/// Throws ConfigError when a dataset's sample shape is not the network's input shape.
void checkInputShape(const model::Analysis& analysis, const std::vector<int64_t>& sampleShape, const std::string& what);

} // namespace mppdl::train
