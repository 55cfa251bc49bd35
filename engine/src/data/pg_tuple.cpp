// The binary COPY tuple decoder of pg: sources (pg_tuple.h). The wire format is PostgreSQL's
// binary COPY: per tuple a 16-bit field count, then per field a 32-bit length (-1 for NULL) and the
// value's binary send form, all big-endian.

#include "data/pg_tuple.h"

#include "mppdl/core/error.h"

#include <algorithm>
#include <cstring>

namespace mppdl::data {

namespace {

/// The most bytes reserved up front from the planner's row estimate, which may be stale.
constexpr size_t kReserveCap = size_t(1) << 30;

uint16_t be16(const char* p) { return uint16_t((uint8_t(p[0]) << 8) | uint8_t(p[1])); }
uint32_t be32(const char* p) {
    return (uint32_t(uint8_t(p[0])) << 24) | (uint32_t(uint8_t(p[1])) << 16) | (uint32_t(uint8_t(p[2])) << 8) |
           uint32_t(uint8_t(p[3]));
}
uint64_t be64(const char* p) { return (uint64_t(be32(p)) << 32) | be32(p + 4); }

/// PostgreSQL's own limit on an array's dimensions (MAXDIM).
constexpr int32_t kMaxArrayDims = 6;

std::string formatDims(const std::vector<int64_t>& dims) {
    std::string out;
    for (const auto d : dims)
        out += (out.empty() ? "" : "x") + std::to_string(d);
    return out;
}

} // namespace

void decodeTuple(const char* p, size_t n, const TupleFormat& format, const std::string& where, ShardRows& out) {
    auto rowError = [&](const std::string& what) {
        return DataError(where + ", row " + std::to_string(out.rows + 1) +
                         (format.hasId ? " in " + format.idColumn + " order" : "") + ": " + what);
    };
    const int16_t fields = format.hasId ? 3 : 2;
    // One tuple: field count, then (length, bytes) per field.
    if (n < 2 || int16_t(be16(p)) != fields)
        throw rowError("unexpected COPY tuple");
    size_t at = 2;
    auto field = [&](const char*& data, int32_t& length) {
        if (at + 4 > n)
            throw rowError("truncated COPY tuple");
        length = int32_t(be32(p + at));
        at += 4;
        data = p + at;
        if (length > 0) {
            if (at + size_t(length) > n)
                throw rowError("truncated COPY tuple");
            at += size_t(length);
        }
    };
    const char* data;
    int32_t length;
    field(data, length);
    if (length < 0)
        throw rowError("the label is NULL");
    if (format.textLabels)
        out.textLabels.emplace_back(data, size_t(length));
    else if (length != 8)
        throw rowError("an int8 label of " + std::to_string(length) + " bytes");
    else
        out.intLabels.push_back(int64_t(be64(data)));
    field(data, length);
    if (length < 0)
        throw rowError("the features are NULL");
    int64_t count = 0;
    if (format.wire == FeatureWire::Bytes) {
        if (format.floatBytes) {
            if (length % 4 != 0)
                throw rowError("a float32 bytea of " + std::to_string(length) + " bytes (not a multiple of 4)");
            count = length / 4;
            if (out.floats.empty() && format.expected > 0)
                out.floats.reserve(std::min(kReserveCap / sizeof(float), size_t(format.expected) * size_t(count)));
            const size_t old = out.floats.size();
            out.floats.resize(old + size_t(count));
            std::memcpy(out.floats.data() + old, data, size_t(length)); // little-endian float32, as numpy writes
        } else {
            count = length;
            if (out.bytes.empty() && format.expected > 0)
                out.bytes.reserve(std::min(kReserveCap, size_t(format.expected) * size_t(length)));
            out.bytes.insert(out.bytes.end(), data, data + length);
        }
    } else {
        // float4[]: ndim, has-null flag, element type, then (size, lower bound) per dimension.
        const int32_t ndim = length >= 12 ? int32_t(be32(data)) : -1;
        if (ndim != 0) {
            if (ndim < 1 || ndim > kMaxArrayDims || length < 12 + 8 * ndim)
                throw rowError("a features array of " + std::to_string(ndim) + " dimensions in " +
                               std::to_string(length) + " bytes");
            // Every dimension's size (a lower bound follows each): the sample's shape.
            std::vector<int64_t> dims;
            count = 1;
            for (int32_t d = 0; d < ndim; ++d) {
                const int64_t size = int32_t(be32(data + 12 + 8 * d));
                if (size < 1 || size > (int64_t(1) << 31) / count)
                    throw rowError("the features array has a dimension of " + std::to_string(size));
                dims.push_back(size);
                count *= size;
            }
            if (ndim == 1)
                dims.clear(); // a flat row: its width is its shape
            if (out.rows == 0)
                out.dims = dims;
            else if (dims != out.dims)
                throw rowError("the features array is " + (dims.empty() ? "flat" : formatDims(dims)) +
                               " where the rows before are " + (out.dims.empty() ? "flat" : formatDims(out.dims)));
            const char* element = data + 12 + 8 * ndim;
            if (12 + 8 * ndim + count * 8 != length)
                throw rowError("the features array claims " + std::to_string(count) + " elements in " +
                               std::to_string(length) + " bytes");
            if (out.floats.empty() && format.expected > 0)
                out.floats.reserve(std::min(kReserveCap / sizeof(float), size_t(format.expected) * size_t(count)));
            const size_t old = out.floats.size();
            out.floats.resize(old + size_t(count));
            float* values = out.floats.data() + old;
            for (int64_t k = 0; k < count; ++k, element += 8) {
                if (be32(element) != 4) // a float4's length; -1 is a NULL
                    throw rowError("the features array has a NULL or non-float4 element");
                const uint32_t bits = be32(element + 4);
                std::memcpy(values + k, &bits, 4);
            }
        }
    }
    if (format.hasId) {
        field(data, length);
        if (length < 0)
            throw rowError("the id is NULL");
        out.ids.emplace_back(data, size_t(length));
    }
    if (at != n)
        throw rowError(std::to_string(n - at) + " bytes after the tuple's last field");
    if (out.width < 0)
        out.width = count;
    else if (count != out.width)
        throw rowError("has " + std::to_string(count) + " feature values where the rows before have " +
                       std::to_string(out.width));
    ++out.rows;
}

namespace {

/// A one-dimensional int8[] in binary send form (ndim, has-null, element type, size, lower bound,
/// then length-prefixed values) into `values`; false when it is not one.
bool int8Array(const char* data, int32_t length, std::vector<int64_t>& values) {
    values.clear();
    if (length < 12)
        return false;
    const int32_t ndim = int32_t(be32(data));
    if (ndim == 0)
        return length == 12;
    if (ndim != 1 || length < 20)
        return false;
    const int64_t count = int32_t(be32(data + 12));
    if (count < 0 || 20 + count * 12 != length)
        return false;
    for (int64_t k = 0; k < count; ++k) {
        const char* element = data + 20 + 12 * k;
        if (be32(element) != 8)
            return false;
        values.push_back(int64_t(be64(element + 4)));
    }
    return true;
}

} // namespace

void decodePackedTuple(const char* p, size_t n, const std::string& where, PackedRows& out) {
    std::string at = where + ", buffer " + std::to_string(out.buffers + 1);
    auto fail = [&](const std::string& what) { return DataError(at + ": " + what); };
    if (n < 2 || be16(p) != 5)
        throw fail("unexpected COPY tuple");
    size_t offset = 2;
    const char* field[5];
    int32_t length[5];
    for (int f = 0; f < 5; ++f) {
        if (offset + 4 > n)
            throw fail("truncated COPY tuple");
        length[f] = int32_t(be32(p + offset));
        offset += 4;
        field[f] = p + offset;
        if (length[f] > 0) {
            if (offset + size_t(length[f]) > n)
                throw fail("truncated COPY tuple");
            offset += size_t(length[f]);
        }
        static const char* const names[5] = {"buffer_id", "features", "labels", "features' shape", "labels' shape"};
        if (length[f] < 0)
            throw fail(std::string("its ") + names[f] + " is NULL");
    }
    if (offset != n || length[0] != 8)
        throw fail("unexpected COPY tuple");
    const int64_t bufferId = int64_t(be64(field[0]));
    at = where + ", buffer_id " + std::to_string(bufferId);
    std::vector<int64_t> xShape, yShape;
    if (!int8Array(field[3], length[3], xShape) || !int8Array(field[4], length[4], yShape))
        throw fail("a shape that is not a one-dimensional integer array");
    if (xShape.size() < 2 || yShape.size() != 2 || xShape[0] != yShape[0] || xShape[0] < 1)
        throw fail("the features' shape {" + formatDims(xShape) + "} and the labels' shape {" + formatDims(yShape) +
                   "} do not hold the same rows ([rows, ...] and [rows, classes])");
    const int64_t rows = xShape[0], classes = yShape[1];
    int64_t width = 1;
    for (size_t d = 1; d < xShape.size(); ++d) {
        if (xShape[d] < 1 || xShape[d] > (int64_t(1) << 31) / width)
            throw fail("the features' shape {" + formatDims(xShape) + "} has a dimension out of range");
        width *= xShape[d];
    }
    if (classes < 1 || classes > (int64_t(1) << 20) || rows > (int64_t(1) << 40) / width)
        throw fail("the shapes {" + formatDims(xShape) + "} and {" + formatDims(yShape) + "} are out of range");
    if (int64_t(length[1]) != rows * width * 4)
        throw fail("the features hold " + std::to_string(length[1]) + " bytes where {" + formatDims(xShape) +
                   "} float32 are " + std::to_string(rows * width * 4));
    if (int64_t(length[2]) != rows * classes * 2)
        throw fail("the labels hold " + std::to_string(length[2]) + " bytes where {" + formatDims(yShape) +
                   "} int16 are " + std::to_string(rows * classes * 2));
    const std::vector<int64_t> sample(xShape.begin() + 1, xShape.end());
    if (out.buffers == 0) {
        out.sample = sample;
        out.classes = classes;
    } else if (sample != out.sample || classes != out.classes) {
        throw fail("rows of " + formatDims(sample) + " with " + std::to_string(classes) +
                   " classes where the buffers before have " + formatDims(out.sample) + " with " +
                   std::to_string(out.classes));
    }
    for (int64_t r = 0; r < rows; ++r) {
        int64_t label = -1, ones = 0;
        for (int64_t c = 0; c < classes; ++c) {
            int16_t v;
            std::memcpy(&v, field[2] + 2 * (r * classes + c), 2); // host order, as array_to_bytea copies
            if (v == 1) {
                label = c;
                ++ones;
            } else if (v != 0) {
                ones = -1;
                break;
            }
        }
        if (ones != 1)
            throw fail("row " + std::to_string(r + 1) + " of the buffer: the label is not one-hot (one 1, the rest 0)");
        out.labels.push_back(label);
    }
    if (out.floats.empty() && out.expectedRows > 0)
        out.floats.reserve(std::min(kReserveCap / sizeof(float), size_t(out.expectedRows) * size_t(width)));
    const size_t old = out.floats.size();
    out.floats.resize(old + size_t(rows * width));
    std::memcpy(out.floats.data() + old, field[1], size_t(length[1]));
    out.rows += rows;
    ++out.buffers;
}

} // namespace mppdl::data
