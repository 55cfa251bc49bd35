#pragma once

// Internal: the decoder of a pg: source's binary COPY tuples, apart from the connection that
// streams them, so that damaged tuples can be fuzzed without a server.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::data {

/// What the COPY sends for the features: one float4[] or one bytea.
enum class FeatureWire { FloatArray, Bytes };

/// One shard's rows as they stream in, decoded straight into packed buffers.
struct ShardRows {
    std::vector<float> floats;  ///< float4[] and float32 bytea features
    std::vector<uint8_t> bytes; ///< uint8 bytea features
    std::vector<int64_t> intLabels;
    std::vector<std::string> textLabels;
    std::vector<std::string> ids;
    int64_t rows = 0;
    int64_t width = -1;
};

/// What every shard's decoder needs to know.
struct TupleFormat {
    bool textLabels = false; ///< the label is text; otherwise int8
    FeatureWire wire = FeatureWire::FloatArray;
    bool floatBytes = false; ///< a bytea of little-endian float32 (else of uint8)
    bool hasId = false;
    std::string idColumn;
    int64_t expected = 0; ///< rows the shard is expected to hold (0: unknown), to reserve once
};

/// Decodes one binary COPY tuple of `n` bytes at `p` (label, features[, id]) into `out`, never
/// reading outside them; a DataError naming `where` and the row for anything else.
void decodeTuple(const char* p, size_t n, const TupleFormat& format, const std::string& where, ShardRows& out);

} // namespace mppdl::data
