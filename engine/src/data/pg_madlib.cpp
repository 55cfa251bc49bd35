// MADlib's packed tables as a pg: source (pg_madlib.h): the buffers are streamed with a binary
// COPY and unpacked as they come, without unpacking in SQL.

#include "data/pg_madlib.h"

#include "data/formats.h"
#include "data/pg_read.h"
#include "data/pg_tuple.h"

#include "mppdl/core/error.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>
#include <sstream>

namespace mppdl::data {

namespace {

bool hasColumn(const std::vector<std::string>& columns, const std::string& name) {
    return std::find(columns.begin(), columns.end(), name) != columns.end();
}

/// A summary value that MADlib writes as TEXT[] in version 2 and as TEXT before: its one name.
std::string oneName(const nlohmann::json& value, const std::string& key, const std::string& where) {
    if (value.is_string())
        return value.get<std::string>();
    if (value.is_array() && value.size() == 1 && value[0].is_string())
        return value[0].get<std::string>();
    if (value.is_array() && value.size() > 1)
        throw ConfigError(where + ": the packed table has " + std::to_string(value.size()) + " " + key +
                          " (a model of several inputs or outputs); mppdl reads one of each");
    throw ConfigError(where + ": its summary's " + key + " is " + value.dump() + ", not a column name");
}

/// "s.t" -> "s.t_summary", also when the table's name is quoted ("s"."My T" -> "s"."My T_summary").
std::string summaryName(const std::string& name) {
    if (!name.empty() && name.back() == '"')
        return name.substr(0, name.size() - 1) + "_summary\"";
    return name + "_summary";
}

} // namespace

std::optional<MadlibPacked> madlibPackedLayout(PgConnection& db, const std::string& name,
                                               const std::vector<std::string>& columns, const SourceOptions& options,
                                               const std::string& where) {
    const bool demanded = options.tableFormat == "madlib-packed";
    if (!options.tableFormat.empty() && options.tableFormat != "rows" && !demanded)
        throw ConfigError("--format must be rows or madlib-packed, got '" + options.tableFormat + "'");
    if (options.tableFormat == "rows")
        return std::nullopt;
    MadlibPacked packed;
    packed.table = quoteQualifiedName(name, where);
    packed.summary = summaryName(name);
    const std::string summary = quoteQualifiedName(packed.summary, where);
    auto notPacked = [&](const std::string& why) -> std::optional<MadlibPacked> {
        if (demanded)
            throw ConfigError(where + " is not a MADlib packed table (--format madlib-packed): " + why);
        return std::nullopt;
    };
    const auto found = db.query("SELECT to_regclass($1) IS NOT NULL", {summary});
    if (found.text(0, 0) != "t")
        return notPacked("there is no summary table " + packed.summary);
    const auto row = db.query("SELECT to_jsonb(s)::text FROM " + summary + " AS s LIMIT 1");
    if (row.rows() == 0)
        return notPacked("its summary table " + packed.summary + " has no row");
    const auto s = nlohmann::json::parse(row.text(0, 0));
    if (!s.contains("normalizing_const"))
        return notPacked("its summary table " + packed.summary + " has no normalizing_const");
    // MADlib 1.17-1.21: fixed names; MADlib 2: the source's column names, which the summary keeps.
    if (hasColumn(columns, "independent_var") && hasColumn(columns, "dependent_var")) {
        packed.x = "independent_var";
        packed.y = "dependent_var";
    } else {
        if (!s.contains("independent_varname") || !s.contains("dependent_varname"))
            return notPacked(packed.summary + " names no independent_varname and dependent_varname");
        packed.x = oneName(s["independent_varname"], "independent_varname", where);
        packed.y = oneName(s["dependent_varname"], "dependent_varname", where);
    }
    packed.xShape = packed.x + "_shape";
    packed.yShape = packed.y + "_shape";
    for (const auto& column : {packed.x, packed.y, packed.xShape, packed.yShape, std::string("buffer_id")})
        if (!hasColumn(columns, column))
            return notPacked("it has no column " + column + " (a packed table has " + packed.x + ", " + packed.y +
                             ", " + packed.xShape + ", " + packed.yShape + " and buffer_id)");
    packed.classColumn = s.contains(packed.y + "_class_values") ? packed.y + "_class_values" : "class_values";
    if (s.contains(packed.classColumn) && s[packed.classColumn].is_array())
        for (const auto& v : s[packed.classColumn])
            packed.classValues.push_back(v.is_null() ? "NULL" : v.is_string() ? v.get<std::string>() : v.dump());
    if (s.contains("buffer_size") && s["buffer_size"].is_number_integer())
        packed.bufferSize = s["buffer_size"].get<int64_t>();
    const auto& constant = s["normalizing_const"];
    packed.normalizingConst = constant.is_number() ? constant.get<double>() : 1.0;
    if (!(packed.normalizingConst > 0))
        throw ConfigError(where + ": its summary's normalizing_const is " + constant.dump() + "; MADlib divides by it");
    return packed;
}

LoadedSource loadMadlibPacked(PgConnection& db, const MadlibPacked& packed, const SourceOptions& options,
                              const std::string& where) {
    if (!options.features.empty() || !options.ignore.empty() || !options.id.empty())
        throw ConfigError(where + " is a MADlib packed table: its features are " + packed.x + " and its labels " +
                          packed.y + " (--features, --ignore and --id do not apply)");
    ReadPlan read;
    read.columns = "buffer_id::int8, " + quoteIdentifier(packed.x) + ", " + quoteIdentifier(packed.y) + ", " +
                   quoteIdentifier(packed.xShape) + "::int8[], " + quoteIdentifier(packed.yShape) + "::int8[]";
    read.from = packed.table;
    read.orderBy = "buffer_id";
    if (options.segments > 0) // whole buffers to a shard, by their buffer_id
        read.shards = planShards(serverInfo(db), true, options.segments, "buffer_id", where);
    const int shardCount = std::max(1, read.shards.segments);
    std::vector<PackedRows> shards{size_t(shardCount)};
    std::vector<int64_t> shardRows(size_t(shardCount), 0);
    // Room for the rows the planner expects (its buffers times their size), reserved once.
    const auto estimate = db.query("SELECT reltuples::int8 FROM pg_class WHERE oid = to_regclass($1)", {packed.table});
    if (estimate.rows() > 0 && !estimate.isNull(0, 0) && packed.bufferSize > 0)
        for (auto& shard : shards)
            shard.expectedRows = std::max<int64_t>(0, std::stoll(estimate.text(0, 0))) * packed.bufferSize / shardCount;
    for (int s = 0; s < shardCount; ++s) {
        const std::string shardWhere = read.shards.segments > 0 ? where + ", segment " + std::to_string(s) + " (" +
                                                                      read.shards.condition(s) + ")"
                                                                : where;
        db.setWhere(shardWhere);
        const bool wanted = options.shards.empty() ||
                            std::find(options.shards.begin(), options.shards.end(), s) != options.shards.end();
        if (wanted) {
            db.copyOut(read.copyStatement(s),
                       [&](const char* p, size_t n) { decodePackedTuple(p, n, shardWhere, shards[size_t(s)]); });
            shardRows[size_t(s)] = shards[size_t(s)].rows;
        } else { // another process's buffers: only their rows are counted
            shardRows[size_t(s)] = std::stoll(
                db.query("SELECT coalesce(sum(" + quoteIdentifier(packed.xShape) + "[1]), 0)::int8 FROM " +
                         packed.table + (read.shards.segments > 0 ? " WHERE " + read.shards.condition(s) : ""))
                    .text(0, 0));
        }
        if (shardRows[size_t(s)] == 0 && read.shards.segments > 0)
            throw DataError(shardWhere + ": the segment has no buffers; use fewer segments (the table has few)");
    }
    db.setWhere(where);

    const PackedRows* first = nullptr;
    int64_t rows = 0, buffers = 0;
    for (const auto& shard : shards) {
        if (shard.buffers == 0)
            continue;
        buffers += shard.buffers;
        if (first && (shard.sample != first->sample || shard.classes != first->classes))
            throw DataError(where + ": the segments' buffers hold rows of different shapes or classes");
        first = first ? first : &shard;
        rows += shard.rows;
    }
    if (!first && options.shards.empty())
        throw DataError(where + ": the packed table has no buffers");
    const std::vector<int64_t> sample = first ? first->sample : std::vector<int64_t>{0};
    const int64_t classes = first ? first->classes : int64_t(packed.classValues.size());
    const int64_t width = std::accumulate(sample.begin(), sample.end(), int64_t(1), std::multiplies<int64_t>());
    // The limit keeps the first rows in buffer_id order, as a table's limit keeps its first rows.
    const int64_t kept = options.limit > 0 && options.shards.empty() ? std::min(rows, options.limit) : rows;
    std::vector<int64_t> shape{kept};
    shape.insert(shape.end(), sample.begin(), sample.end());
    // One shard's rows are taken over without a copy (and restored in place); several are copied
    // once into the tensor.
    at::Tensor x;
    if (shardCount == 1 && first) {
        auto* owned = new std::vector<float>(std::move(shards[0].floats));
        owned->resize(size_t(kept * width));
        x = torch::from_blob(
            owned->data(), shape, [owned](void*) { delete owned; }, torch::kFloat32);
    } else {
        x = torch::empty(shape, torch::kFloat32);
    }
    auto y = torch::empty({kept}, torch::kInt64);
    auto home = torch::empty({kept}, torch::kInt64);
    // The source's own values again, in the same pass as the copy. MADlib multiplied them by the
    // float32 reciprocal of normalizing_const (array_scalar_mult: in float8, rounded to float4):
    // dividing by that same reciprocal gives them back (for 255, every integer pixel 0-254 exactly
    // and 255 as 254.99998), where multiplying by the constant misses half of them by an ulp.
    const bool restore = packed.normalizingConst != 1.0;
    const float reciprocal = float(1.0 / packed.normalizingConst);
    int64_t at = 0;
    for (int s = 0; s < shardCount && at < kept; ++s) {
        auto& shard = shards[size_t(s)];
        const int64_t take = std::min(shard.rows, kept - at);
        float* into = x.data_ptr<float>() + at * width;
        const float* from = shard.floats.empty() ? into : shard.floats.data(); // taken over: in place
        if (restore)
            std::transform(from, from + take * width, into, [reciprocal](float v) { return v / reciprocal; });
        else if (from != into)
            std::copy_n(from, take * width, into);
        std::copy_n(shard.labels.begin(), take, y.data_ptr<int64_t>() + at);
        home.slice(0, at, at + take).fill_(s);
        at += take;
        std::vector<float>().swap(shard.floats);
    }
    std::vector<std::string> classNames = packed.classValues;
    LoadedSource out;
    if (int64_t(classNames.size()) != classes) {
        out.notes.push_back(where + ": " + packed.summary + "'s " + packed.classColumn + " has " +
                            std::to_string(classNames.size()) + " values for " + std::to_string(classes) +
                            " one-hot classes: the classes are named by their index");
        classNames.clear();
        for (int64_t c = 0; c < classes; ++c)
            classNames.push_back(std::to_string(c));
    }
    out.kind = "pg";
    out.location = where;
    out.train = Dataset(x, y, classNames);
    if (read.shards.segments > 0)
        out.train = out.train.withHomeSegments(home);
    out.layout = sample.size() == 3 ? "hwc" : ""; // MADlib's images are Keras' channels_last
    out.rowsRead = kept;
    out.bytesRead = kept * width * 4;
    if (!options.shards.empty()) {
        out.shardRows = shardRows;
        out.sourceTrainRows = std::accumulate(shardRows.begin(), shardRows.end(), int64_t(0));
        out.sourceTestRows = 0;
    }
    std::ostringstream constant;
    constant << packed.normalizingConst;
    out.notes.push_back(where + ": a MADlib packed table: " + std::to_string(buffers) + " buffers of " +
                        std::to_string(rows) + " rows of " + formatShape(sample) + ", " + std::to_string(classes) +
                        " classes from " + packed.summary + "." + packed.classColumn +
                        (packed.normalizingConst != 1.0
                             ? ", values multiplied back by its normalizing_const " + constant.str()
                             : std::string()));
    return out;
}

} // namespace mppdl::data
