#pragma once

// Internal: the loaders behind sourceKinds() and the helpers they share. One loader per file.

#include "mppdl/data/source.h"

#include <torch/torch.h>

#include <string>
#include <vector>

namespace mppdl::data {

bool detectIdx(const std::string& location);
LoadedSource loadIdx(const std::string& location, const SourceOptions& options);

bool detectCsv(const std::string& location);
LoadedSource loadCsv(const std::string& location, const SourceOptions& options);

bool detectNpy(const std::string& location);
LoadedSource loadNpy(const std::string& location, const SourceOptions& options);

bool detectImageFolder(const std::string& location);
LoadedSource loadImageFolder(const std::string& location, const SourceOptions& options);

bool detectPostgres(const std::string& location);
LoadedSource loadPostgres(const std::string& location, const SourceOptions& options);

/// Class indices and names for integer label values.
struct EncodedLabels {
    at::Tensor indices; ///< int64 [N] in [0, classNames.size())
    std::vector<std::string> classNames;
};

/// Non-negative integers below kMaxDenseLabel keep their value, with classes "0".."max"; any other
/// set of integers maps to its sorted distinct values, each named by its value.
EncodedLabels encodeIntegerLabels(const at::Tensor& values);
constexpr int64_t kMaxDenseLabel = 1 << 16;

/// The most values one sample may have (2^32: 16 GiB of float32), whatever its shape says.
constexpr int64_t kMaxSampleElements = int64_t(1) << 32;
/// The values a sample of `shape` has: ConfigError naming `location` for a dimension that is not
/// positive, or a product that overflows or passes kMaxSampleElements.
int64_t shapeElements(const std::vector<int64_t>& shape, const std::string& location);

/// `features` [N, ...] reshaped to [N, ...shape]; ConfigError naming both element counts when they
/// differ. An empty `shape` leaves the tensor as it is.
at::Tensor reshapeFeatures(const at::Tensor& features, const std::vector<int64_t>& shape, const std::string& location);

/// The lower-cased file name without a trailing ".gz".
std::string baseNameWithoutGz(const std::string& path);

bool endsWith(const std::string& text, const std::string& suffix);
std::string toLower(std::string text);

/// `a * b`, or throws DataError "`what`: size too large" on overflow.
uint64_t checkedMultiply(uint64_t a, uint64_t b, const std::string& what);

} // namespace mppdl::data
