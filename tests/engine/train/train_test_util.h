#pragma once

// Shared by the trainer's tests: bundled architectures and small real Fashion-MNIST subsets.

#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/control.h"
#include "mppdl/train/trained_model.h"

#include "train/trained_model_impl.h"

#include <torch/torch.h>

#include <string>

inline mppdl::model::Architecture bundledArchitecture(const std::string& name) {
    return mppdl::model::loadArchitecture(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/" + name + ".json");
}

/// The first `rows` training images of Fashion-MNIST, split with `validationFraction` and `seed`,
/// scaled to [0, 1], with the first `testRows` of the test split.
inline mppdl::data::PreparedData fashionSubset(int64_t rows, double validationFraction, uint64_t seed,
                                               int64_t testRows) {
    mppdl::data::SourceOptions options;
    options.limit = rows;
    const auto source = mppdl::data::loadSource(MPPDL_FASHION_MNIST_DIR, options);
    auto p = mppdl::data::prepare(source, validationFraction, seed, mppdl::data::Normalizer::Mode::Scale01);
    p.test = p.test.slice(0, testRows);
    return p;
}

/// A model's parameters, then its buffers (an ensemble's: every member's, in member order).
inline std::vector<torch::Tensor> allTensors(const mppdl::train::TrainedModel& m) {
    const auto root = mppdl::train::weightsModule(m.impl().members);
    std::vector<torch::Tensor> out = root->parameters();
    for (const auto& buffer : root->buffers())
        out.push_back(buffer);
    return out;
}

/// Whether two models hold identical parameters and buffers, bit for bit.
inline bool sameTensors(const mppdl::train::TrainedModel& a, const mppdl::train::TrainedModel& b) {
    const auto ta = allTensors(a), tb = allTensors(b);
    if (ta.size() != tb.size())
        return false;
    for (size_t i = 0; i < ta.size(); ++i)
        if (!torch::equal(ta[i], tb[i]))
            return false;
    return true;
}

/// Keeps every checkpoint a run hands over.
class KeepCheckpoints : public mppdl::CheckpointSink {
public:
    void onCheckpoint(const mppdl::Checkpoint& c) override { all.push_back(c); }
    std::vector<mppdl::Checkpoint> all;
};

/// The largest relative L2 difference |a - b| / |b|, tensor by tensor, between two models.
inline double relativeDifference(const mppdl::train::TrainedModel& a, const mppdl::train::TrainedModel& b) {
    const auto ta = allTensors(a), tb = allTensors(b);
    if (ta.size() != tb.size())
        return INFINITY;
    double worst = 0;
    for (size_t i = 0; i < ta.size(); ++i) {
        const auto x = ta[i].to(torch::kDouble), y = tb[i].to(torch::kDouble);
        worst = std::max(worst, (x - y).norm().item<double>() / std::max(1e-30, y.norm().item<double>()));
    }
    return worst;
}

/// GPU tests are named *_CUDA and skipped (not passed) without a GPU, as in PyTorch's own suite.
/// One statement (do/while), so that an `else` after it binds to the caller's `if`.
#define SKIP_WITHOUT_CUDA()                                                                                            \
    do {                                                                                                               \
        if (!torch::cuda::is_available())                                                                              \
            GTEST_SKIP() << "no CUDA device";                                                                          \
    } while (false)
