#pragma once

// Internal: what a TrainedModel holds.

#include "mppdl/train/trained_model.h"

#include "model/graph_module.h"

#include <torch/torch.h>

namespace mppdl::train {

/// An ensemble's members under one module, so that their weights save and load as one archive
/// ("member0.conv1.weight", "member1.conv1.weight", ...).
struct EnsembleImpl : torch::nn::Module {
    explicit EnsembleImpl(const std::vector<model::GraphModule>& members) {
        for (size_t i = 0; i < members.size(); ++i)
            register_module("member" + std::to_string(i), members[i]);
    }
};

/// The module whose parameters and buffers are a model's weights: the network itself, or for an
/// ensemble of several the EnsembleImpl over them.
inline std::shared_ptr<torch::nn::Module> weightsModule(const std::vector<model::GraphModule>& members) {
    if (members.size() == 1)
        return members.front().ptr();
    return std::make_shared<EnsembleImpl>(members);
}

struct TrainedModel::Impl {
    model::Architecture architecture;
    data::Normalizer normalizer;
    std::vector<std::string> classNames;
    /// One network, or an ensemble's members (its prediction: their mean probabilities).
    std::vector<model::GraphModule> members;
    torch::Device device{torch::kCPU};

    /// Builds `count` networks of the architecture (weights to be loaded).
    void build(int64_t count) {
        members.clear();
        for (int64_t i = 0; i < count; ++i)
            members.push_back(model::GraphModule(architecture));
    }
    void toDeviceForInference() {
        for (auto& m : members) {
            m->to(device);
            m->eval();
        }
    }
};

} // namespace mppdl::train
