#include "evaluate.h"

#include "mppdl/core/error.h"
#include "mppdl/data/dataset.h"

namespace mppdl::train {

Evaluation evaluateModule(model::GraphModule& module, const torch::Tensor& x, const torch::Tensor& y,
                          const std::vector<std::string>& classNames, const std::string& split,
                          int64_t batchSize) {
    const bool wasTraining = module->is_training();
    module->eval();
    torch::NoGradGuard noGrad;

    const int64_t k = int64_t(classNames.size());
    const int64_t n = x.size(0);
    auto lossSum = torch::zeros({}, torch::TensorOptions().dtype(torch::kDouble).device(x.device()));
    auto confusion = torch::zeros({k * k}, torch::TensorOptions().dtype(torch::kLong).device(x.device()));
    for (int64_t begin = 0; begin < n; begin += batchSize) {
        const int64_t end = std::min(n, begin + batchSize);
        auto xb = x.slice(0, begin, end);
        auto yb = y.slice(0, begin, end);
        auto logits = module->forwardLogits(xb);
        lossSum += torch::nn::functional::cross_entropy(
                       logits, yb, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                       .to(torch::kDouble);
        // Confusion counts via one bincount over (true * k + predicted): no per-sample loop.
        confusion += torch::bincount(yb * k + logits.argmax(1), {}, k * k);
    }
    module->train(wasTraining);

    Evaluation e;
    e.split = split;
    e.samples = n;
    e.classNames = classNames;
    e.loss = n > 0 ? lossSum.item<double>() / double(n) : 0.0;
    auto cm = confusion.cpu();
    e.confusion.assign(cm.data_ptr<int64_t>(), cm.data_ptr<int64_t>() + k * k);
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

void checkInputShape(const model::Analysis& analysis, const std::vector<int64_t>& sampleShape,
                     const std::string& what) {
    if (analysis.inputShape != sampleShape)
        throw ConfigError(what + " has samples of shape " + data::formatShape(sampleShape) +
                          " but the network's input is " + data::formatShape(analysis.inputShape) +
                          " (declare the shape with --shape, or change the Input layer)");
}

} // namespace mppdl::train
