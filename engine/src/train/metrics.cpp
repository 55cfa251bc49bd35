#include "collectives.h"
#include "evaluate.h"

#include "mppdl/core/error.h"
#include "mppdl/data/dataset.h"

#include <algorithm>

namespace mppdl::train {

namespace {

/// Runs `body(begin, end)` over `rows` in batches with every member in eval mode and no gradients,
/// restoring the members' training modes afterwards (also when it throws).
template <typename Body>
void inEvalBatches(std::vector<model::GraphModule>& members, int64_t rows, int64_t batchSize, Body&& body) {
    std::vector<bool> wasTraining;
    for (auto& m : members) {
        wasTraining.push_back(m->is_training());
        m->eval();
    }
    struct Restore {
        std::vector<model::GraphModule>& members;
        const std::vector<bool>& modes;
        ~Restore() {
            for (size_t i = 0; i < members.size(); ++i)
                members[i]->train(modes[i]);
        }
    } restore{members, wasTraining};
    torch::NoGradGuard noGrad;
    if (batchSize <= 0) {
        const auto& front = members.front();
        const auto parameters = front->parameters();
        batchSize = inferenceBatch(front->analysis(),
                                   parameters.empty() ? torch::Device(torch::kCPU) : parameters.front().device());
    }
    for (int64_t begin = 0; begin < rows; begin += batchSize)
        body(begin, std::min(rows, begin + batchSize));
}

} // namespace

int64_t inferenceBatch(const model::Analysis& analysis, const torch::Device& device) {
    if (!device.is_cpu())
        return 1024;
    int64_t largest = 1;
    for (const auto& layer : analysis.layers) {
        int64_t elements = 1;
        for (const auto d : layer.outputShape)
            elements *= d;
        largest = std::max(largest, elements);
    }
    return std::clamp<int64_t>(kInferenceCacheBytes / (largest * int64_t(sizeof(float))), 16, 1024);
}

torch::Tensor sumProbabilities(std::vector<model::GraphModule>& members, const torch::Tensor& x, int64_t batchSize) {
    const int64_t k = members.front()->analysis().numClasses();
    auto sum = torch::zeros({x.size(0), k}, x.options().dtype(torch::kFloat));
    inEvalBatches(members, x.size(0), batchSize, [&](int64_t begin, int64_t end) {
        auto out = sum.slice(0, begin, end);
        for (auto& m : members) {
            // Members may live on other devices than the data (segments spread over GPUs).
            const auto device = m->parameters().empty() ? x.device() : m->parameters().front().device();
            out.add_(torch::softmax(m->forwardLogits(x.slice(0, begin, end).to(device)), 1).to(out.device()));
        }
    });
    return sum;
}

torch::Tensor predictLogits(model::GraphModule& module, const torch::Tensor& x, int64_t batchSize) {
    std::vector<model::GraphModule> one{module};
    std::vector<torch::Tensor> parts;
    inEvalBatches(one, x.size(0), batchSize,
                  [&](int64_t begin, int64_t end) { parts.push_back(module->forwardLogits(x.slice(0, begin, end))); });
    if (parts.empty())
        return torch::zeros({0, module->analysis().numClasses()}, x.options().dtype(torch::kFloat));
    return torch::cat(parts);
}

torch::Tensor ensembleLogits(const torch::Tensor& probabilitySum, int64_t members) {
    // The floor keeps a class every member rules out at a finite (large) loss instead of infinity.
    return (probabilitySum / double(members)).clamp_min(1e-30).log();
}

namespace {

/// Accuracy and per-class figures from the confusion counts and the summed loss of n rows.
Evaluation fromConfusion(double lossSum, int64_t n, std::vector<int64_t> confusion,
                         const std::vector<std::string>& classNames, const std::string& split) {
    const int64_t k = int64_t(classNames.size());
    Evaluation e;
    e.split = split;
    e.samples = n;
    e.classNames = classNames;
    e.loss = n > 0 ? lossSum / double(n) : 0.0;
    e.confusion = std::move(confusion);
    int64_t correct = 0;
    e.perClassAccuracy.resize(size_t(k));
    e.perClassCount.resize(size_t(k));
    for (int64_t t = 0; t < k; ++t) {
        int64_t row = 0;
        for (int64_t p = 0; p < k; ++p)
            row += e.confusion[size_t(t * k + p)];
        const int64_t hit = e.confusion[size_t(t * k + t)];
        correct += hit;
        e.perClassCount[size_t(t)] = row;
        e.perClassAccuracy[size_t(t)] = row > 0 ? double(hit) / double(row) : 0.0;
    }
    e.accuracy = n > 0 ? double(correct) / double(n) : 0.0;
    return e;
}

} // namespace

Evaluation evaluateLogits(const torch::Tensor& logits, const torch::Tensor& y,
                          const std::vector<std::string>& classNames, const std::string& split) {
    torch::NoGradGuard noGrad;
    const int64_t k = int64_t(classNames.size());
    const int64_t n = y.size(0);
    // Per-row losses summed in double: a float sum over many rows loses digits.
    const double lossSum = n > 0 ? torch::nn::functional::cross_entropy(
                                       logits, y,
                                       torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
                                       .to(torch::kDouble)
                                       .sum()
                                       .item<double>()
                                 : 0.0;
    // Confusion counts via one bincount over (true * k + predicted): no per-sample loop.
    std::vector<int64_t> confusion(size_t(k * k), 0);
    if (n > 0) {
        auto cm = torch::bincount(y * k + logits.argmax(1), {}, k * k).cpu();
        confusion.assign(cm.data_ptr<int64_t>(), cm.data_ptr<int64_t>() + k * k);
    }
    return fromConfusion(lossSum, n, std::move(confusion), classNames, split);
}

Evaluation sumEvaluations(Collectives* group, const Evaluation& local) {
    if (!group)
        return local;
    const auto cells = int64_t(local.confusion.size());
    auto figures = torch::zeros({2 + cells}, torch::kDouble);
    auto f = figures.accessor<double, 1>();
    f[0] = local.loss * double(local.samples);
    f[1] = double(local.samples);
    for (int64_t i = 0; i < cells; ++i)
        f[2 + i] = double(local.confusion[size_t(i)]);
    allreduceTensors(group, {figures});
    std::vector<int64_t> confusion(static_cast<size_t>(cells));
    for (int64_t i = 0; i < cells; ++i)
        confusion[size_t(i)] = int64_t(f[2 + i]);
    return fromConfusion(f[0], int64_t(f[1]), std::move(confusion), local.classNames, local.split);
}

Evaluation evaluateMembers(std::vector<model::GraphModule>& members, const torch::Tensor& x, const torch::Tensor& y,
                           const std::vector<std::string>& classNames, const std::string& split) {
    const auto logits = members.size() == 1 ? predictLogits(members.front(), x)
                                            : ensembleLogits(sumProbabilities(members, x), int64_t(members.size()));
    return evaluateLogits(logits, y, classNames, split);
}

void checkInputShape(const model::Analysis& analysis, const std::vector<int64_t>& sampleShape,
                     const std::string& what) {
    if (analysis.inputShape != sampleShape)
        throw ConfigError(what + " has samples of shape " + data::formatShape(sampleShape) +
                          " but the network's input is " + data::formatShape(analysis.inputShape) +
                          " (declare the shape with --shape, or change the Input layer)");
}

} // namespace mppdl::train
