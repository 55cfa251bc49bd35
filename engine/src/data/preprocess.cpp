#include "mppdl/data/preprocess.h"
#include "mppdl/data/row_set.h"

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

/// Rows gathered and converted at once: by fit() and apply() over some rows of a dataset.
constexpr int64_t kChunkRows = 1024;

double scaleOf(const RowSet& train, const Reduce& reduce) {
    if (train.type == torch::kUInt8)
        return 255.0;
    // A chunk at a time (a maximum is the same in any order): no |x| copy of every row.
    double largest = 0.0;
    for (int64_t begin = 0; begin < train.rows; begin += kChunkRows)
        largest = std::max(largest,
                           train.features(begin, std::min(train.rows, begin + kChunkRows)).abs().max().item<double>());
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
    return fit(mode, train, at::Tensor(), reduce);
}

Normalizer Normalizer::fit(Mode mode, const Dataset& train, const at::Tensor& rows, const Reduce& reduce) {
    return fit(mode, rowSetOf(train, rows), reduce);
}

Normalizer Normalizer::fit(Mode mode, const RowSet& train, const Reduce& reduce) {
    Normalizer n;
    n.mode = mode;
    if (mode == Mode::None)
        return n;
    // A process of a run may hold no training rows; the run as a whole has some.
    if (train.rows == 0 && !reduce)
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

namespace {

/// The normalization of float32 features `x`, in place.
void normalizeInPlace(const Normalizer& n, at::Tensor& x) {
    if (n.mode == Normalizer::Mode::None)
        return;
    x.div_(n.scale);
    if (n.mode == Normalizer::Mode::Standardize) {
        const int64_t channels = x.size(1);
        if (static_cast<size_t>(channels) != n.mean.size() || n.mean.size() != n.std.size())
            throw DataError("the normalization was fitted on " + std::to_string(n.mean.size()) +
                            " channels but the data has " + std::to_string(channels));
        std::vector<int64_t> view(static_cast<size_t>(x.dim()), 1);
        view[1] = channels;
        const auto m = torch::tensor(n.mean, torch::kFloat64).to(torch::kFloat32).view(view);
        const auto s = torch::tensor(n.std, torch::kFloat64).to(torch::kFloat32).view(view);
        x.sub_(m).div_(s);
    }
}

} // namespace

Dataset Normalizer::apply(const Dataset& dataset) const {
    if (dataset.empty())
        return dataset;
    // In place on the float32 copy when converting made one, so that normalizing never holds a
    // second float copy of the rows; data already float32 is not this Dataset's to change.
    auto x = dataset.features().to(torch::kFloat32);
    if (x.is_same(dataset.features()) && mode != Mode::None)
        x = x.clone();
    normalizeInPlace(*this, x);
    return dataset.withFeatures(x.contiguous());
}

void Normalizer::applyChunks(const Dataset& dataset, const at::Tensor& rows, const ChunkTarget& target) const {
    const auto& features = dataset.features();
    const int64_t n = rows.defined() ? rows.size(0) : dataset.size();
    // One gather buffer for every chunk, converted by copy_ into the target and normalized there:
    // no temporaries, which the allocator would keep resident after the big tensors went back.
    auto raw = torch::empty({0}, features.scalar_type());
    for (int64_t begin = 0; begin < n; begin += kChunkRows) {
        const int64_t end = std::min(n, begin + kChunkRows);
        at::Tensor chunk = features.slice(0, begin, end);
        if (rows.defined()) {
            raw.resize_({0}); // keeps its storage; index_select_out then sizes it to the chunk
            torch::index_select_out(raw, features, 0, rows.slice(0, begin, end));
            chunk = raw;
        }
        auto part = target(begin, end);
        part.copy_(chunk);
        normalizeInPlace(*this, part);
    }
}

Dataset Normalizer::apply(const Dataset& dataset, const at::Tensor& rows) const {
    if (dataset.empty() || rows.numel() == 0)
        return apply(dataset.select(rows));
    auto sizes = dataset.features().sizes().vec();
    sizes[0] = rows.size(0);
    auto x = torch::empty(sizes, torch::kFloat32);
    applyChunks(dataset, rows, [&x](int64_t begin, int64_t end) { return x.slice(0, begin, end); });
    Dataset out(x, dataset.labels().index_select(0, rows), dataset.classNames());
    if (dataset.homeSegments().defined())
        out = out.withHomeSegments(dataset.homeSegments().index_select(0, rows));
    return out;
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

PreparedData prepare(LoadedSource source, double validationFraction, uint64_t seed, Normalizer::Mode mode) {
    if (!(validationFraction >= 0.0 && validationFraction < 1.0))
        throw ConfigError("the validation fraction must be in [0, 1), got " + std::to_string(validationFraction));
    const int64_t n = source.train.size();
    if (n == 0)
        throw DataError(source.location + ": no training rows");

    PreparedData out;
    out.rowsRead = source.rowsRead;
    out.bytesRead = source.bytesRead;
    if (validationFraction > 0) {
        const auto split = splitValidation(n, validationFraction, seed);
        const auto trainRows = indexTensor(split.train);
        out.normalizer = Normalizer::fit(mode, source.train.select(trainRows));
        out.train = out.normalizer.apply(source.train, trainRows);
        out.validation = out.normalizer.apply(source.train, indexTensor(split.validation));
    } else {
        out.normalizer = Normalizer::fit(mode, source.train);
        out.train = out.normalizer.apply(source.train);
    }
    source.train = Dataset(); // the raw rows go (when the caller gave them up) before the test set is made
    out.test = out.normalizer.apply(source.test);
    return out;
}

} // namespace mppdl::data
