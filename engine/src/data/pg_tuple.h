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
    /// A float4[] of more than one dimension: its sizes (the same on every row), the sample's shape.
    std::vector<int64_t> dims;
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

/// One shard of a MADlib packed table (training_preprocessor_dl's output) as it streams in: the
/// buffers unpacked into rows.
struct PackedRows {
    std::vector<float> floats;   ///< every row's features, as the buffers hold them
    std::vector<int64_t> labels; ///< the index of each row's one-hot 1
    std::vector<int64_t> sample; ///< the shape of one row (the buffers' shape after its count)
    int64_t classes = -1;        ///< the one-hot width
    int64_t rows = 0, buffers = 0;
    int64_t expectedRows = 0; ///< rows the shard is expected to hold (0: unknown), to reserve once
};

/// Decodes one tuple of `buffer_id::int8, x bytea, y bytea, x_shape::int8[], y_shape::int8[]`: x
/// holds x_shape's product of float32 (the host's byte order, as MADlib's array_to_bytea copies
/// them), y y_shape's product of int16 one-hot labels, [rows, classes]. DataError naming `where`,
/// the buffer_id and the row for a buffer whose sizes disagree, whose shape differs from the
/// buffers before, or whose label row is not one-hot.
void decodePackedTuple(const char* p, size_t n, const std::string& where, PackedRows& out);

} // namespace mppdl::data
