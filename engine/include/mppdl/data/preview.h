#pragma once

// A look at a dataset's rows and at how N segments would hold them, as plain values: what views
// without libtorch (the workbench's dataset views) show. No libtorch in this header.

#include "mppdl/data/dataset.h"
#include "mppdl/data/distribution.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::data {

/// One row of a dataset as plain values.
struct RowPreview {
    int64_t row = 0;   ///< 0-based position in the dataset
    int64_t label = 0; ///< class index
    /// For image samples (C x H x W with C 1 or 3): the pixels as 8-bit, row-major H x W x C,
    /// uint8 samples as they are and float samples scaled from the dataset's range; empty otherwise.
    std::vector<uint8_t> pixels;
    /// The first features, flattened in sample order, as numbers (every kind of sample).
    std::vector<double> values;
};

/// Whether the samples are images a view can draw: C x H x W with C 1 or 3.
bool isImageShape(const std::vector<int64_t>& sampleShape);

/// Up to `count` rows spread over the classes: the first row of each class, then the second of
/// each, and so on, so that a grid of them shows every class. `maxValues` features per row.
std::vector<RowPreview> previewRows(const Dataset& dataset, int count, int maxValues = 32);

/// The rows at the given 0-based positions, in that order (positions outside the dataset skipped).
std::vector<RowPreview> previewRowsAt(const Dataset& dataset, const std::vector<int64_t>& rows, int maxValues = 32);

/// Every row's class index, in row order.
std::vector<int64_t> labelsOf(const Dataset& dataset);

/// How `segments` segments would hold the rows under `policy` (summarize(distribute(...))), for a
/// view that cannot hold the shards' tensors. The same errors as distribute().
DistributionSummary previewDistribution(const Dataset& rows, int segments, const std::string& policy,
                                        uint64_t seed = 0);

} // namespace mppdl::data
