#include "mppdl/data/preprocess.h"

#include "mppdl/core/error.h"
#include "seeded.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace mppdl::data {

std::vector<int64_t> seededPermutation(int64_t n, uint64_t seed) {
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::mt19937_64 random(seed);
    for (int64_t i = n - 1; i > 0; --i) {
        // Rejection sampling keeps every index equally likely.
        const uint64_t bound = static_cast<uint64_t>(i) + 1;
        const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
        uint64_t r = random();
        while (r >= limit)
            r = random();
        std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(r % bound)]);
    }
    return order;
}

namespace {

double scaleOf(const Dataset& train, const Reduce& reduce) {
    const auto& x = train.features();
    if (x.scalar_type() == torch::kUInt8)
        return 255.0;
    double largest = x.numel() == 0 ? 0.0 : x.abs().max().item<double>();
    if (reduce) {
        auto value = torch::tensor({largest}, torch::kFloat64);
        reduce(value, true);
        largest = value[0].item<double>();
    }
    return largest > 0 && std::isfinite(largest) ? largest : 1.0;
}


at::Tensor indexTensor(const std::vector<int64_t>& indices) {
    return torch::tensor(at::ArrayRef<int64_t>(indices), torch::kInt64);
}

} // namespace

ValidationSplit splitValidation(int64_t n, double fraction, uint64_t seed) {
    ValidationSplit split;
    if (fraction <= 0) {
        split.train.resize(static_cast<size_t>(n));
        std::iota(split.train.begin(), split.train.end(), 0);
        return split;
    }
    auto held = static_cast<int64_t>(std::llround(fraction * static_cast<double>(n)));
    held = std::max<int64_t>(held, 1);
    if (held >= n)
        throw ConfigError("a validation fraction of " + std::to_string(fraction) + " leaves no training rows of " +
                          std::to_string(n));
    const auto order = seededPermutation(n, seed);
    split.validation.assign(order.begin(), order.begin() + held);
    split.train.assign(order.begin() + held, order.end());
    std::sort(split.validation.begin(), split.validation.end());
    std::sort(split.train.begin(), split.train.end());
    return split;
}

Normalizer Normalizer::fit(Mode mode, const Dataset& train) { return fit(mode, train, Reduce()); }

Normalizer Normalizer::fit(Mode mode, const Dataset& train, const Reduce& reduce) {
    Normalizer n;
    n.mode = mode;
    if (mode == Mode::None)
        return n;
    // A process of a run may hold no training rows; the run as a whole has some.
    if (train.empty() && !reduce)
        throw DataError("cannot fit the normalization: the training set is empty");
    n.scale = scaleOf(train, reduce);
    if (mode == Mode::Standardize) {
        const auto stats = computeStatistics(train, reduce);
        for (size_t c = 0; c < stats.channelMean.size(); ++c) {
            n.mean.push_back(stats.channelMean[c] / n.scale);
            const double sd = stats.channelStd[c] / n.scale;
            // A constant channel carries no information; dividing by 1 keeps it finite.
            n.std.push_back(sd > 1e-12 ? sd : 1.0);
        }
    }
    return n;
}

Dataset Normalizer::apply(const Dataset& dataset) const {
    if (dataset.empty())
        return dataset;
    // In place on the float32 copy when converting made one, so that normalizing never holds a
    // second float copy of the rows; data already float32 is not this Dataset's to change.
    auto x = dataset.features().to(torch::kFloat32);
    const bool own = !x.is_same(dataset.features());
    if (mode == Mode::None)
        return dataset.withFeatures(x);
    x = own ? x.div_(scale) : x / scale;
    if (mode == Mode::Standardize) {
        const int64_t channels = x.size(1);
        if (static_cast<size_t>(channels) != mean.size() || mean.size() != this->std.size())
            throw DataError("the normalization was fitted on " + std::to_string(mean.size()) +
                            " channels but the data has " + std::to_string(channels));
        std::vector<int64_t> view(static_cast<size_t>(x.dim()), 1);
        view[1] = channels;
        const auto m = torch::tensor(mean, torch::kFloat64).to(torch::kFloat32).view(view);
        const auto s = torch::tensor(this->std, torch::kFloat64).to(torch::kFloat32).view(view);
        x = x.sub_(m).div_(s); // x is a copy by now
    }
    return dataset.withFeatures(x.contiguous());
}

const std::vector<NormalizationKind>& normalizations() {
    static const std::vector<NormalizationKind> table = {
        {Normalizer::Mode::Scale01, {"scale", "divide by 255 (8-bit data) or by the largest |x| of the training rows"}},
        {Normalizer::Mode::Standardize,
         {"standardize", "subtract each channel's mean and divide by its standard deviation (training rows)"}},
        {Normalizer::Mode::None, {"none", "the features as they are"}},
    };
    return table;
}

const std::vector<Choice>& normalizationChoices() {
    static const std::vector<Choice> choices = choicesOf(normalizations());
    return choices;
}

Normalizer::Mode parseNormalization(const std::string& name) {
    if (const auto* kind = findKind(normalizations(), name))
        return kind->mode;
    throw ConfigError("unknown normalization '" + name + "' (known: " + joinChoiceNames(normalizationChoices()) + ")");
}

const char* toString(Normalizer::Mode mode) {
    for (const auto& k : normalizations())
        if (mode == k.mode)
            return k.choice.name;
    return "none";
}

PreparedData prepare(const LoadedSource& source, double validationFraction, uint64_t seed, Normalizer::Mode mode) {
    if (!(validationFraction >= 0.0 && validationFraction < 1.0))
        throw ConfigError("the validation fraction must be in [0, 1), got " + std::to_string(validationFraction));
    const int64_t n = source.train.size();
    if (n == 0)
        throw DataError(source.location + ": no training rows");

    PreparedData out;
    Dataset train = source.train;
    if (validationFraction > 0) {
        const auto split = splitValidation(n, validationFraction, seed);
        out.validation = source.train.select(indexTensor(split.validation));
        train = source.train.select(indexTensor(split.train));
    }
    out.normalizer = Normalizer::fit(mode, train);
    out.train = out.normalizer.apply(train);
    train = Dataset(); // the raw copy of the training rows goes before the other sets are made
    out.validation = out.normalizer.apply(out.validation);
    out.test = out.normalizer.apply(source.test);
    out.rowsRead = source.rowsRead;
    out.bytesRead = source.bytesRead;
    return out;
}

} // namespace mppdl::data
