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
            if (ndim != 1 || length < 20)
                throw rowError("the features array has " + std::to_string(ndim) + " dimensions; expected one");
            count = int32_t(be32(data + 12));
            const char* element = data + 20;
            if (20 + count * 8 != length)
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

} // namespace mppdl::data
