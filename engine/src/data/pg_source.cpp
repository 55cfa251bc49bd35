// PostgreSQL / Greenplum tables as a data source: `pg:TABLE` (or `pg:SCHEMA.TABLE`), read with a
// binary COPY of a query that casts the features to one float4[] (or reads bytea as it is) and the
// label to int8 or text. libpq directly: binary COPY is what pays for arrays of floats (the
// server's float-to-text conversion is the bottleneck of text COPY), and libpqxx 6.4 offers only
// text COPY and keeps its PGconn private.

#include "data/formats.h"
#include "data/pg_connection.h"

#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>

namespace mppdl::data {

namespace {

constexpr const char* kPrefix = "pg:";
/// The most bytes reserved up front from the planner's row estimate, which may be stale.
constexpr size_t kReserveCap = size_t(1) << 30;

uint16_t be16(const char* p) { return uint16_t((uint8_t(p[0]) << 8) | uint8_t(p[1])); }
uint32_t be32(const char* p) {
    return (uint32_t(uint8_t(p[0])) << 24) | (uint32_t(uint8_t(p[1])) << 16) | (uint32_t(uint8_t(p[2])) << 8) |
           uint32_t(uint8_t(p[3]));
}
uint64_t be64(const char* p) { return (uint64_t(be32(p)) << 32) | be32(p + 4); }

struct Column {
    std::string name;
    std::string type; ///< format_type(): "real[]", "bytea", "integer", "text", ...
};

bool isArray(const Column& c) { return c.type.size() > 2 && c.type.compare(c.type.size() - 2, 2, "[]") == 0; }
bool isNumeric(const std::string& t) {
    static const std::set<std::string> numeric = {"smallint", "integer", "bigint", "real", "double precision",
                                                  "numeric"};
    return numeric.count(t) > 0 || t.rfind("numeric(", 0) == 0;
}
bool isIntegerType(const std::string& t) { return t == "smallint" || t == "integer" || t == "bigint"; }
bool isTextType(const std::string& t) {
    return t == "text" || t.rfind("character varying", 0) == 0 || t.rfind("character(", 0) == 0 || t == "name";
}

std::string columnList(const std::vector<Column>& columns) {
    std::string out;
    for (const auto& c : columns)
        out += (out.empty() ? "" : ", ") + c.name + " " + c.type;
    return out;
}

/// The features as the SELECT reads them, and what the COPY sends back for them.
struct FeaturePlan {
    std::string expression;
    enum Wire { FloatArray, Bytes } wire = FloatArray;
    std::string description; ///< for messages: "pixels real[]", "784 numeric columns"
};

FeaturePlan planFeatures(const std::vector<Column>& columns, const std::vector<std::string>& requested,
                         const std::string& label, const std::string& id, const std::string& where) {
    auto find = [&](const std::string& name) -> const Column& {
        for (const auto& c : columns)
            if (c.name == name)
                return c;
        throw ConfigError(where + " has no column '" + name + "' (columns: " + columnList(columns) + ")");
    };
    std::vector<Column> chosen;
    if (!requested.empty()) {
        for (const auto& name : requested)
            chosen.push_back(find(name));
    } else {
        // One array or bytea column if there is one; else every numeric column.
        // A column named "id" is a key, not a feature, even when --id does not name it.
        auto candidate = [&](const Column& c) { return c.name != label && c.name != id && c.name != "id"; };
        for (const auto& c : columns)
            if (candidate(c) && (isArray(c) || c.type == "bytea"))
                chosen.push_back(c);
        if (chosen.size() > 1)
            throw ConfigError(where + " has several array or bytea columns; name the features with --features");
        if (chosen.empty())
            for (const auto& c : columns)
                if (candidate(c) && isNumeric(c.type))
                    chosen.push_back(c);
        if (chosen.empty())
            throw ConfigError(where + " has no feature columns (numeric, array or bytea) besides the label '" + label +
                              "' (columns: " + columnList(columns) + ")");
    }
    FeaturePlan plan;
    if (chosen.size() == 1 && (isArray(chosen[0]) || chosen[0].type == "bytea")) {
        const auto& c = chosen[0];
        if (c.type == "bytea") {
            plan.expression = quoteIdentifier(c.name);
            plan.wire = FeaturePlan::Bytes;
        } else {
            const std::string element = c.type.substr(0, c.type.size() - 2);
            if (!isNumeric(element))
                throw ConfigError(where + ": column '" + c.name + "' is " + c.type +
                                  "; features must be numbers (real[], double precision[], integer[], ...)");
            plan.expression = quoteIdentifier(c.name) + "::float4[]";
        }
        plan.description = "column " + c.name + " " + c.type;
        return plan;
    }
    std::string list;
    for (const auto& c : chosen) {
        if (!isNumeric(c.type))
            throw ConfigError(where + ": column '" + c.name + "' is " + c.type +
                              "; feature columns must be numeric (or one array or bytea column)");
        list += (list.empty() ? "" : ", ") + quoteIdentifier(c.name);
    }
    plan.expression = "ARRAY[" + list + "]::float4[]";
    plan.description = std::to_string(chosen.size()) + " numeric columns";
    return plan;
}

} // namespace

bool detectPostgres(const std::string& location) { return location.rfind(kPrefix, 0) == 0; }

LoadedSource loadPostgres(const std::string& location, const SourceOptions& options) {
    if (!detectPostgres(location))
        throw ConfigError(location + ": a PostgreSQL source is named pg:TABLE");
    const std::string relation = location.substr(std::strlen(kPrefix));
    const std::string table = quoteQualifiedName(relation, location);
    const std::string where = location;
    PgConnection db(options.connection, where);

    // The columns and their types, from the catalog (the name goes in as a parameter: never SQL).
    const auto columnsResult = db.query(
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        {table});
    std::vector<Column> columns;
    for (int r = 0; r < columnsResult.rows(); ++r)
        columns.push_back({columnsResult.text(r, 0), columnsResult.text(r, 1)});
    if (columns.empty())
        throw ConfigError(where + ": no table " + relation + " (or it has no columns) in " + db.describe());

    const std::string label = options.label.empty() ? "label" : options.label;
    const auto labelColumn = std::find_if(columns.begin(), columns.end(), [&](const Column& c) { return c.name == label; });
    if (labelColumn == columns.end())
        throw ConfigError(where + " has no label column '" + label + "' (columns: " + columnList(columns) +
                          "); name it with --label");
    const bool textLabels = isTextType(labelColumn->type);
    if (!textLabels && !isIntegerType(labelColumn->type))
        throw ConfigError(where + ": the label column '" + label + "' is " + labelColumn->type +
                          "; labels must be integers or text");
    const auto plan = planFeatures(columns, options.features, label, options.id, where);
    std::string idType;
    if (!options.id.empty()) {
        const auto idColumn =
            std::find_if(columns.begin(), columns.end(), [&](const Column& c) { return c.name == options.id; });
        if (idColumn == columns.end())
            throw ConfigError(where + " has no id column '" + options.id + "' (columns: " + columnList(columns) + ")");
        idType = idColumn->type;
    }

    std::string select = "SELECT " + quoteIdentifier(label) + (textLabels ? "::text" : "::int8") + ", " +
                         plan.expression + (options.id.empty() ? "" : ", " + quoteIdentifier(options.id) + "::text AS mppdl_id") +
                         " FROM " + table;
    if (!options.id.empty()) // the column, in its own type (the text copy above is named apart)
        select += " ORDER BY " + quoteIdentifier(options.id);
    if (options.limit > 0)
        select += " LIMIT " + std::to_string(options.limit);

    const bool floatBytes = options.bytea == "float32";
    if (plan.wire == FeaturePlan::Bytes && !floatBytes && options.bytea != "uint8")
        throw ConfigError("--bytea must be uint8 or float32, got '" + options.bytea + "'");
    // Room for the rows the planner expects (or the limit), so the buffers do not regrow and copy.
    int64_t expected = options.limit;
    if (expected <= 0) {
        const auto estimate = db.query("SELECT reltuples::int8 FROM pg_class WHERE oid = to_regclass($1)", {table});
        if (estimate.rows() > 0 && !estimate.isNull(0, 0))
            expected = std::max<int64_t>(0, std::stoll(estimate.text(0, 0)));
    }
    auto floats = std::make_unique<std::vector<float>>();
    auto bytes = std::make_unique<std::vector<uint8_t>>();
    std::vector<int64_t> intLabels;
    std::vector<std::string> textLabelValues;
    std::vector<std::string> ids;
    const int16_t fields = options.id.empty() ? 2 : 3;
    int64_t width = -1, rows = 0;
    auto rowError = [&](const std::string& what) {
        return DataError(where + ", row " + std::to_string(rows + 1) + (options.id.empty() ? "" : " in " + options.id + " order") +
                         ": " + what);
    };
    db.copyOut("COPY (" + select + ") TO STDOUT (FORMAT binary)", [&](const char* p, size_t n) {
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
        if (textLabels)
            textLabelValues.emplace_back(data, size_t(length));
        else
            intLabels.push_back(int64_t(be64(data)));
        field(data, length);
        if (length < 0)
            throw rowError("the features are NULL");
        int64_t count = 0;
        if (plan.wire == FeaturePlan::Bytes) {
            if (floatBytes) {
                if (length % 4 != 0)
                    throw rowError("a float32 bytea of " + std::to_string(length) + " bytes (not a multiple of 4)");
                count = length / 4;
                const size_t old = floats->size();
                floats->resize(old + size_t(count));
                std::memcpy(floats->data() + old, data, size_t(length)); // little-endian float32, as numpy writes
            } else {
                count = length;
                if (bytes->empty() && expected > 0)
                    bytes->reserve(std::min(kReserveCap, size_t(expected) * size_t(length)));
                bytes->insert(bytes->end(), data, data + length);
            }
        } else {
            // float4[]: ndim, has-null flag, element type, then (size, lower bound) per dimension.
            const int32_t ndim = length >= 12 ? int32_t(be32(data)) : -1;
            if (ndim == 0) {
                count = 0;
            } else {
                if (ndim != 1 || length < 20)
                    throw rowError("the features array has " + std::to_string(ndim) + " dimensions; expected one");
                count = int32_t(be32(data + 12));
                const char* element = data + 20;
                if (20 + count * 8 != length)
                    throw rowError("the features array has a NULL element");
                if (floats->empty() && expected > 0)
                    floats->reserve(std::min(kReserveCap / sizeof(float), size_t(expected) * size_t(count)));
                const size_t old = floats->size();
                floats->resize(old + size_t(count));
                float* out = floats->data() + old;
                for (int64_t k = 0; k < count; ++k, element += 8) {
                    const uint32_t bits = be32(element + 4);
                    std::memcpy(out + k, &bits, 4);
                }
            }
        }
        if (fields == 3) {
            field(data, length);
            if (length < 0)
                throw rowError("the id is NULL");
            ids.emplace_back(data, size_t(length));
        }
        if (width < 0)
            width = count;
        else if (count != width)
            throw rowError("has " + std::to_string(count) + " feature values where the rows before have " +
                           std::to_string(width));
        ++rows;
    });
    if (rows == 0)
        throw DataError(where + ": the table has no rows");

    EncodedLabels labels;
    if (textLabels) {
        // Text classes become indexes in sorted order; the names travel with the dataset (and the project).
        std::map<std::string, int64_t> index;
        for (const auto& v : textLabelValues)
            index.emplace(v, 0);
        int64_t next = 0;
        for (auto& [name, i] : index) {
            i = next++;
            labels.classNames.push_back(name);
        }
        labels.indices = torch::empty({rows}, torch::kInt64);
        auto* out = labels.indices.data_ptr<int64_t>();
        for (int64_t r = 0; r < rows; ++r)
            out[r] = index[textLabelValues[size_t(r)]];
    } else {
        labels = encodeIntegerLabels(torch::from_blob(intLabels.data(), {rows}, torch::kInt64).clone());
    }
    // The tensor takes the buffer over: no second copy of the features.
    at::Tensor x;
    if (plan.wire == FeaturePlan::Bytes && !floatBytes) {
        auto* buffer = bytes.release();
        x = torch::from_blob(buffer->data(), {rows, width}, [buffer](void*) { delete buffer; }, torch::kUInt8);
    } else {
        auto* buffer = floats.release();
        x = torch::from_blob(buffer->data(), {rows, width}, [buffer](void*) { delete buffer; }, torch::kFloat32);
    }
    LoadedSource out;
    out.kind = "pg";
    out.location = location;
    out.train = Dataset(reshapeFeatures(x, options.shape, location), labels.indices, labels.classNames);
    out.ids = std::move(ids);
    out.idType = idType;
    return out;
}

} // namespace mppdl::data
