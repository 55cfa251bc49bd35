#pragma once

// Internal: what a TrainedModel holds.

#include "mppdl/train/trained_model.h"

#include "model/graph_module.h"

#include <torch/torch.h>

namespace mppdl::train {

struct TrainedModel::Impl {
    model::Architecture architecture;
    data::Normalizer normalizer;
    std::vector<std::string> classNames;
    model::GraphModule module{nullptr};
    torch::Device device{torch::kCPU};
};

} // namespace mppdl::train
