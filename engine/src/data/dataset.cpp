#include "mppdl/data/dataset.h"
#include "mppdl/data/row_set.h"

#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <sstream>

namespace mppdl::data {

struct Dataset::Impl {
    at::Tensor features;
    at::Tensor labels;
    std::vector<std::string> classNames;
    at::Tensor homeSegments; ///< undefined, or int64 [rows]
    bool labeled = true;     ///< false: every label is -1
};

namespace {

// Rows are read in chunks so that statistics of a large uint8 set never hold a float64 copy of it.
constexpr int64_t kStatisticsChunkElements = 1 << 22;

} // namespace

Dataset::Dataset() {
    // All empty datasets share one Impl, so a default-constructed Dataset costs no allocation.
    static const auto empty = std::make_shared<const Impl>();
    m_impl = empty;
}

Dataset::Dataset(const at::Tensor& features, const at::Tensor& labels, std::vector<std::string> classNames) {
    if (!features.defined() || !labels.defined())
        throw InternalError("Dataset: features and labels must be defined tensors");
    if (features.dim() < 2)
        throw InternalError("Dataset: features must be [N, ...sampleShape], got " + std::to_string(features.dim()) +
                            " dimension(s)");
    if (labels.dim() != 1 || labels.scalar_type() != torch::kInt64)
        throw InternalError("Dataset: labels must be a 1-D int64 tensor");
    if (features.size(0) != labels.size(0))
        throw InternalError("Dataset: " + std::to_string(features.size(0)) + " feature rows but " +
                            std::to_string(labels.size(0)) + " labels");
    bool labeled = true;
    if (labels.numel() > 0) {
        const int64_t low = labels.min().item<int64_t>();
        const int64_t high = labels.max().item<int64_t>();
        labeled = !(low == -1 && high == -1);
        if (low < 0 && labeled)
            throw InternalError("Dataset: negative label " + std::to_string(low));
        // Callers that know no names get "0".."max", the convention of the file formats.
        if (classNames.empty())
            for (int64_t c = 0; c <= high; ++c)
                classNames.push_back(std::to_string(c));
        if (labeled && high >= static_cast<int64_t>(classNames.size()))
            throw InternalError("Dataset: label " + std::to_string(high) + " but only " +
                                std::to_string(classNames.size()) + " class names");
    }
    auto impl = std::make_shared<Impl>();
    impl->features = features;
    impl->labels = labels;
    impl->classNames = std::move(classNames);
    impl->labeled = labeled;
    m_impl = std::move(impl);
}

bool Dataset::empty() const { return size() == 0; }

int64_t Dataset::size() const { return m_impl->labels.defined() ? m_impl->labels.size(0) : 0; }

std::vector<int64_t> Dataset::sampleShape() const {
    if (!m_impl->features.defined())
        return {};
    const auto sizes = m_impl->features.sizes();
    return {sizes.begin() + 1, sizes.end()};
}

std::string Dataset::dtype() const {
    if (!m_impl->features.defined())
        return {};
    switch (m_impl->features.scalar_type()) {
    case torch::kUInt8: return "uint8";
    case torch::kFloat32: return "float32";
    default: return c10::toString(m_impl->features.scalar_type());
    }
}

const std::vector<std::string>& Dataset::classNames() const { return m_impl->classNames; }

int64_t Dataset::numClasses() const { return static_cast<int64_t>(m_impl->classNames.size()); }

const at::Tensor& Dataset::features() const { return m_impl->features; }

const at::Tensor& Dataset::labels() const { return m_impl->labels; }

bool Dataset::labeled() const { return m_impl->labeled; }

Dataset Dataset::withoutLabels() const {
    if (!m_impl->features.defined())
        return *this;
    Dataset out(m_impl->features, torch::full({size()}, -1, torch::kInt64), m_impl->classNames);
    return m_impl->homeSegments.defined() ? out.withHomeSegments(m_impl->homeSegments) : out;
}

Dataset Dataset::slice(int64_t begin, int64_t end) const {
    const int64_t n = size();
    begin = std::clamp<int64_t>(begin, 0, n);
    end = std::clamp<int64_t>(end, begin, n);
    if (!m_impl->features.defined())
        return *this;
    // clone(): a subset must not alias the rows of the set it came from.
    Dataset out(m_impl->features.slice(0, begin, end).clone(), m_impl->labels.slice(0, begin, end).clone(),
                m_impl->classNames);
    return m_impl->homeSegments.defined() ? out.withHomeSegments(m_impl->homeSegments.slice(0, begin, end).clone())
                                          : out;
}

Dataset Dataset::select(const at::Tensor& indices) const {
    if (!m_impl->features.defined())
        return *this;
    const auto idx = indices.to(torch::kInt64).reshape({-1});
    Dataset out(m_impl->features.index_select(0, idx), m_impl->labels.index_select(0, idx), m_impl->classNames);
    return m_impl->homeSegments.defined() ? out.withHomeSegments(m_impl->homeSegments.index_select(0, idx)) : out;
}

Dataset Dataset::withFeatures(const at::Tensor& features) const {
    Dataset out(features, m_impl->labels.defined() ? m_impl->labels : torch::empty({0}, torch::kInt64),
                m_impl->classNames);
    return m_impl->homeSegments.defined() ? out.withHomeSegments(m_impl->homeSegments) : out;
}

const at::Tensor& Dataset::homeSegments() const { return m_impl->homeSegments; }

Dataset Dataset::withHomeSegments(const at::Tensor& segments) const {
    if (!segments.defined() || segments.dim() != 1 || segments.scalar_type() != torch::kInt64 ||
        segments.size(0) != size())
        throw InternalError("Dataset: home segments must be int64 with one entry per row (" + std::to_string(size()) +
                            ")");
    auto impl = std::make_shared<Impl>(*m_impl);
    impl->homeSegments = segments;
    Dataset out;
    out.m_impl = std::move(impl);
    return out;
}

Statistics computeStatistics(const Dataset& dataset) { return computeStatistics(dataset, Reduce()); }

Statistics computeStatistics(const Dataset& dataset, const Reduce& reduce) {
    return computeStatistics(dataset, at::Tensor(), reduce);
}

Statistics computeStatistics(const Dataset& dataset, const at::Tensor& rows, const Reduce& reduce) {
    return computeStatistics(rowSetOf(dataset, rows), reduce);
}

RowSet rowSetOf(const Dataset& dataset, const at::Tensor& rows) {
    RowSet set;
    const auto& x = dataset.features();
    const bool some = rows.defined();
    set.rows = some ? rows.size(0) : x.defined() ? x.size(0) : 0;
    set.sampleShape = dataset.sampleShape();
    set.type = x.defined() ? x.scalar_type() : at::kFloat;
    set.classes = dataset.numClasses();
    if (set.rows > 0)
        set.labels = some ? dataset.labels().index_select(0, rows) : dataset.labels();
    // The selected rows gathered a chunk at a time: the same chunks as of a copy of them.
    set.features = [x, rows, some](int64_t begin, int64_t end) {
        return some ? x.index_select(0, rows.slice(0, begin, end)) : x.slice(0, begin, end);
    };
    return set;
}

Statistics computeStatistics(const RowSet& set, const Reduce& reduce) {
    Statistics stats;
    const int64_t classes = set.classes;
    auto counts = torch::zeros({classes}, torch::kFloat64);
    // Unlabeled rows (labels -1) count in no class.
    if (set.rows > 0 && set.labels.min().item<int64_t>() >= 0)
        counts = torch::bincount(set.labels, {}, classes).to(torch::kFloat64);
    if (reduce)
        reduce(counts, false);
    stats.classCounts.assign(static_cast<size_t>(classes), 0);
    for (int64_t c = 0; c < classes; ++c)
        stats.classCounts[static_cast<size_t>(c)] = static_cast<int64_t>(counts[c].item<double>());

    const auto& shape = set.sampleShape;
    const int64_t n = set.rows;
    const int64_t channels = shape.empty() ? 1 : shape[0];
    int64_t perRow = 1;
    for (const auto d : shape)
        perRow *= d;
    // Processes of one run agree on the shape; one without rows takes part with zeros.
    if (channels == 0 || perRow == 0 || (!reduce && n == 0))
        return stats;
    const int64_t chunkRows = std::max<int64_t>(1, kStatisticsChunkElements / perRow);

    const std::vector<int64_t> reduceDims{0, 2};
    auto chunkOf = [&](int64_t begin) {
        const int64_t end = std::min(n, begin + chunkRows);
        return set.features(begin, end).to(torch::kFloat64).reshape({end - begin, channels, -1});
    };

    // Two passes (mean, then squared deviations) keep the variance exact for data far from zero.
    // [sums per channel..., rows], and [max, -min]: summed and maximized over the processes.
    auto sum = torch::zeros({channels + 1}, torch::kFloat64);
    double low = std::numeric_limits<double>::infinity();
    double high = -low;
    for (int64_t b = 0; b < n; b += chunkRows) {
        const auto c = chunkOf(b);
        sum.slice(0, 0, channels) += c.sum(reduceDims);
        low = std::min(low, c.min().item<double>());
        high = std::max(high, c.max().item<double>());
    }
    sum[channels] = static_cast<double>(n);
    auto extremes = torch::tensor({high, -low}, torch::kFloat64);
    if (reduce) {
        reduce(sum, false);
        reduce(extremes, true);
    }
    const double counted = sum[channels].item<double>();
    if (counted == 0)
        return stats;
    const double perChannel = counted * static_cast<double>(perRow / channels);
    const auto mean = sum.slice(0, 0, channels) / perChannel;
    auto squares = torch::zeros({channels}, torch::kFloat64);
    for (int64_t b = 0; b < n; b += chunkRows)
        squares += (chunkOf(b) - mean.view({1, channels, 1})).square().sum(reduceDims);
    if (reduce)
        reduce(squares, false);
    const auto stdev = (squares / perChannel).sqrt();

    for (int64_t c = 0; c < channels; ++c) {
        stats.channelMean.push_back(mean[c].item<double>());
        stats.channelStd.push_back(stdev[c].item<double>());
    }
    stats.max = extremes[0].item<double>();
    stats.min = -extremes[1].item<double>();
    return stats;
}

std::string formatShape(const std::vector<int64_t>& shape) {
    std::ostringstream out;
    for (size_t i = 0; i < shape.size(); ++i)
        out << (i ? "x" : "") << shape[i];
    return out.str();
}

} // namespace mppdl::data
