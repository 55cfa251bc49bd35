#pragma once

// Internal: a module's weights as bytes (a libtorch archive), for checkpoints and warm starts.

#include <torch/torch.h>

#include <string>

namespace mppdl::train {

/// Parameters and buffers of `module`, on the CPU, as a libtorch archive.
std::string serializeWeights(const torch::nn::Module& module);

/// Copies weights from `blob` into `module` (on whatever device it is). Every parameter and buffer
/// of the module must be in the blob with the same shape: otherwise ConfigError naming the first
/// that is not, with both shapes; `what` says whose weights these are ("run 3, epoch 5").
/// StorageError when the blob is not a weights archive.
void loadWeights(torch::nn::Module& module, const std::string& blob, const std::string& what);

/// Random generator states and an optimizer's state, to and from archive entries.
std::string serializeArchive(torch::serialize::OutputArchive& archive);
void loadArchive(torch::serialize::InputArchive& archive, const std::string& blob, const std::string& what,
                 const torch::Device& device = torch::kCPU);
/// A random generator's state as the archive entry `name`, and back (under the generator's lock).
void writeGenerator(torch::serialize::OutputArchive& archive, const std::string& name, at::Generator gen);
void readGenerator(torch::serialize::InputArchive& archive, const std::string& name, at::Generator gen);

} // namespace mppdl::train
