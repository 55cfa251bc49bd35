#include "mppdl/data/preview.h"

#include <torch/torch.h>

#include <algorithm>

namespace mppdl::data {

bool isImageShape(const std::vector<int64_t>& s) {
    return s.size() == 3 && (s[0] == 1 || s[0] == 3) && s[1] > 0 && s[2] > 0;
}

std::vector<RowPreview> previewRows(const Dataset& dataset, int count, int maxValues) {
    if (dataset.empty() || count <= 0)
        return {};
    // Rows of each class in order, then taken one class at a time.
    const auto labels = dataset.labels().to(torch::kCPU).contiguous();
    const int64_t* label = labels.data_ptr<int64_t>();
    std::vector<std::vector<int64_t>> byClass(static_cast<size_t>(dataset.numClasses()));
    for (int64_t i = 0; i < dataset.size(); ++i)
        if (byClass[static_cast<size_t>(label[i])].size() < static_cast<size_t>(count))
            byClass[static_cast<size_t>(label[i])].push_back(i);
    std::vector<int64_t> picked;
    for (size_t round = 0; picked.size() < static_cast<size_t>(count); ++round) {
        bool any = false;
        for (const auto& rowsOfClass : byClass)
            if (round < rowsOfClass.size() && picked.size() < static_cast<size_t>(count)) {
                picked.push_back(rowsOfClass[round]);
                any = true;
            }
        if (!any)
            break;
    }
    return previewRowsAt(dataset, picked, maxValues);
}

std::vector<RowPreview> previewRowsAt(const Dataset& dataset, const std::vector<int64_t>& picked, int maxValues) {
    std::vector<RowPreview> rows;
    if (dataset.empty())
        return rows;
    const auto labels = dataset.labels().to(torch::kCPU).contiguous();
    const int64_t* label = labels.data_ptr<int64_t>();
    const auto shape = dataset.sampleShape();
    const bool images = isImageShape(shape);
    const auto& x = dataset.features();
    // Float images are drawn over the dataset's own range (normalized data is not in 0..255).
    double low = 0, high = 255;
    if (images && x.scalar_type() != torch::kUInt8) {
        low = x.min().item<double>();
        high = x.max().item<double>();
    }
    const double scale = high > low ? 255.0 / (high - low) : 0.0;
    for (const int64_t i : picked) {
        if (i < 0 || i >= dataset.size())
            continue;
        RowPreview r;
        r.row = i;
        r.label = label[i];
        const auto sample = x[i].to(torch::kCPU, torch::kFloat64).contiguous();
        const auto flat = sample.reshape({-1});
        const double* v = flat.data_ptr<double>();
        const int64_t n = flat.numel();
        r.values.assign(v, v + std::min<int64_t>(n, maxValues));
        if (images) {
            const int64_t c = shape[0], h = shape[1], w = shape[2];
            r.pixels.resize(static_cast<size_t>(c * h * w));
            for (int64_t y = 0; y < h; ++y)
                for (int64_t xx = 0; xx < w; ++xx)
                    for (int64_t ch = 0; ch < c; ++ch) {
                        const double value = (v[(ch * h + y) * w + xx] - low) * scale;
                        r.pixels[static_cast<size_t>((y * w + xx) * c + ch)] = static_cast<uint8_t>(
                            std::clamp(value, 0.0, 255.0) + 0.5);
                    }
        }
        rows.push_back(std::move(r));
    }
    return rows;
}

std::vector<int64_t> labelsOf(const Dataset& dataset) {
    if (dataset.empty())
        return {};
    const auto labels = dataset.labels().to(torch::kCPU).contiguous();
    return {labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel()};
}

DistributionSummary previewDistribution(const Dataset& rows, int segments, const std::string& policy, uint64_t seed) {
    return summarize(rows, distribute(rows, segments, policy, seed));
}

} // namespace mppdl::data
