#pragma once

// Rows that are not held as one dataset, for what reads them a chunk at a time: the statistics
// and the normalizer of a table streamed from its server every epoch (--no-cache).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

namespace mppdl::data {

/// Rows that are not held as one dataset (a table streamed from its server every epoch): their
/// count, shape, type and labels, and their features read on demand.
struct RowSet {
    int64_t rows = 0;
    std::vector<int64_t> sampleShape;
    at::ScalarType type = at::kFloat;
    int64_t classes = 0;
    at::Tensor labels; ///< int64, one per row
    /// The features of rows [begin, end), rows first. Asked for in ascending ranges that do not
    /// overlap, the rows once per pass (computeStatistics() makes two passes).
    std::function<at::Tensor(int64_t begin, int64_t end)> features;
};

} // namespace mppdl::data
