// PostgreSQL / Greenplum tables (and queries) as a data source: `pg:TABLE`, `pg:SCHEMA.TABLE` or
// `pg:(SELECT ...)`, read with a binary COPY of a query that casts the features to one float4[] (or
// reads bytea as it is) and the label to int8 or text. libpq directly: binary COPY is what pays for
// arrays of floats (the server's float-to-text conversion is the bottleneck of text COPY), and
// libpqxx 6.4 offers only text COPY and keeps its PGconn private.
//
// Read as N segments' shards (SourceOptions::segments), each shard comes over a connection of its
// own, in parallel, selecting its own rows (pg_read.h), and every row keeps its home segment.

#include "data/formats.h"
#include "data/pg_connection.h"
#include "data/pg_madlib.h"
#include "data/pg_read.h"
#include "data/pg_tuple.h"

#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <numeric>
#include <optional>
#include <set>
#include <thread>

namespace mppdl::data {

namespace {

constexpr const char* kPrefix = "pg:";
/// The most connections a sharded read opens at once: enough to keep a server's cores busy, few
/// enough to leave its max_connections (100 by default) to others.
constexpr int kMaxStreams = 8;
/// Rows a stream reads between looks at the clock for progress reports.
constexpr int64_t kProgressRows = 256;


struct Column {
    std::string name;
    std::string type; ///< format_type(): "real[]", "bytea", "integer", "text", ...
};

/// What follows "pg:": a table name, or a query in parentheses.
struct SourceText {
    bool query = false;
    std::string text; ///< the table name as written, or the query without its parentheses
};

SourceText parseLocation(const std::string& location) {
    std::string rest = location.substr(std::strlen(kPrefix));
    const size_t first = rest.find_first_not_of(" \t\n");
    if (first != std::string::npos && rest[first] == '(') {
        const size_t last = rest.find_last_not_of(" \t\n;");
        if (rest[last] != ')' || last <= first + 1)
            throw ConfigError(location + ": a query source is pg:(SELECT ...), in parentheses");
        return {true, rest.substr(first + 1, last - first - 1)};
    }
    return {false, rest};
}

bool isArray(const Column& c) { return c.type.size() > 2 && c.type.compare(c.type.size() - 2, 2, "[]") == 0; }
bool isNumeric(const std::string& t) {
    static const std::set<std::string> numeric = {"smallint", "integer",          "bigint",
                                                  "real",     "double precision", "numeric"};
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
    FeatureWire wire = FeatureWire::FloatArray;
    std::string description;        ///< for messages: "pixels real[]", "784 numeric columns"
    std::vector<std::string> names; ///< numeric columns: each feature's column (empty for an array)
    std::string array;              ///< an array or bytea column: its name
};

FeaturePlan planFeatures(const std::vector<Column>& columns, const std::vector<std::string>& requested,
                         const std::vector<std::string>& ignored, const std::string& label, const std::string& id,
                         const std::string& where) {
    auto find = [&](const std::string& name) -> const Column& {
        for (const auto& c : columns)
            if (c.name == name)
                return c;
        throw ConfigError(where + " has no column '" + name + "' (columns: " + columnList(columns) + ")");
    };
    for (const auto& name : ignored)
        find(name); // a misspelt --ignore is an error, not a no-op
    auto isIgnored = [&](const std::string& name) {
        return std::find(ignored.begin(), ignored.end(), name) != ignored.end();
    };
    std::vector<Column> chosen;
    if (!requested.empty()) {
        for (const auto& name : requested)
            chosen.push_back(find(name));
    } else {
        // One array or bytea column if there is one; else every numeric column.
        // A column named "id" is a key, not a feature, even when --id does not name it.
        auto candidate = [&](const Column& c) {
            return c.name != label && c.name != id && c.name != "id" && !isIgnored(c.name);
        };
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
            plan.wire = FeatureWire::Bytes;
        } else {
            const std::string element = c.type.substr(0, c.type.size() - 2);
            if (!isNumeric(element))
                throw ConfigError(where + ": column '" + c.name + "' is " + c.type +
                                  "; features must be numbers (real[], double precision[], integer[], ...)");
            plan.expression = quoteIdentifier(c.name) + "::float4[]";
        }
        plan.description = "column " + c.name + " " + c.type;
        plan.array = c.name;
        return plan;
    }
    std::string list;
    for (const auto& c : chosen) {
        if (!isNumeric(c.type))
            throw ConfigError(where + ": column '" + c.name + "' is " + c.type +
                              "; feature columns must be numeric (or one array or bytea column): --ignore " + c.name +
                              " leaves it out (a table's text columns are not one-hot encoded yet; a CSV's are)");
        list += (list.empty() ? "" : ", ") + quoteIdentifier(c.name);
        plan.names.push_back(c.name);
    }
    plan.expression = "ARRAY[" + list + "]::float4[]";
    plan.description = std::to_string(chosen.size()) + " numeric columns";
    return plan;
}

/// The label as the SELECT reads it: its column, or (rows read to be predicted, from a table
/// without one) a constant standing in for it.
struct LabelPlan {
    std::string sql;
    bool text = false;
    bool labeled = true;
};

LabelPlan planLabel(const std::vector<Column>& columns, const std::string& label, bool optional,
                    const std::string& where) {
    const auto column = std::find_if(columns.begin(), columns.end(), [&](const Column& c) { return c.name == label; });
    LabelPlan plan;
    if (column == columns.end()) {
        if (!optional)
            throw ConfigError(where + " has no label column '" + label + "' (columns: " + columnList(columns) +
                              "); name it with --label");
        plan.sql = "0";
        plan.labeled = false;
        return plan;
    }
    plan.text = isTextType(column->type);
    if (!plan.text && !isIntegerType(column->type))
        throw ConfigError(where + ": the label column '" + label + "' is " + column->type +
                          "; labels must be integers or text");
    plan.sql = quoteIdentifier(label);
    return plan;
}

/// Thrown inside a shard's stream when another shard has failed: it stops reading.
struct Stopped {};

/// The buffer of `shards` (their floats, or their bytes) as one [rows, width] tensor. One shard's
/// buffer is taken over without a copy; several are copied once into the tensor.
template <class T>
at::Tensor packedRows(std::vector<ShardRows>& shards, std::vector<T> ShardRows::*buffer, int64_t rows, int64_t width,
                      torch::ScalarType type) {
    if (shards.size() == 1) {
        auto* owned = new std::vector<T>(std::move(shards[0].*buffer));
        return torch::from_blob(
            owned->data(), {rows, width}, [owned](void*) { delete owned; }, type);
    }
    auto x = torch::empty({rows, width}, type);
    T* out = x.template data_ptr<T>();
    for (auto& shard : shards) {
        auto& b = shard.*buffer;
        std::copy(b.begin(), b.end(), out);
        out += b.size();
        std::vector<T>().swap(b); // give the memory back as we go
    }
    return x;
}

/// The columns of a table (from the catalog) or of a query (as the server describes it, without
/// running it), and the FROM item that reads it.
std::vector<Column> sourceColumns(PgConnection& db, const SourceText& source, const std::string& location,
                                  std::string& from) {
    const std::string& where = location;
    std::vector<Column> columns;
    if (source.query) {
        // A query's columns as the server describes them, without running it.
        from = "(" + source.text + ") AS mppdl_source";
        for (auto& [name, type] : db.describeColumns("SELECT * FROM " + from))
            columns.push_back({name, type});
        if (columns.empty())
            throw ConfigError(where + ": the query returns no columns");
    } else {
        from = quoteQualifiedName(source.text, location);
        // The columns and their types, from the catalog (the name goes in as a parameter: never SQL).
        const auto columnsResult = db.query(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            {from});
        for (int r = 0; r < columnsResult.rows(); ++r)
            columns.push_back({columnsResult.text(r, 0), columnsResult.text(r, 1)});
        if (columns.empty())
            throw ConfigError(where + ": no table " + source.text + " (or it has no columns) in " + db.describe());
    }
    return columns;
}

/// Every shard's rows, read by COPY over at most kMaxStreams connections in parallel (the first is
/// `db`, the catalog's); stream k reads shards k, k + streams, ... in turn. The first failure is
/// rethrown after every stream stopped.
std::vector<ShardRows> readShards(PgConnection& db, const ReadPlan& read, const TupleFormat& format,
                                  const SourceOptions& options, const std::string& where,
                                  const std::vector<int>& wanted) {
    const int shardCount = std::max(1, read.shards.segments);
    const int wantedCount = static_cast<int>(wanted.size());
    const int streams = std::min(wantedCount, kMaxStreams);
    std::vector<ShardRows> shards(static_cast<size_t>(shardCount));
    std::vector<std::exception_ptr> failures(static_cast<size_t>(shardCount));
    std::atomic<bool> stop{false};
    // Progress comes from the calling thread's stream (the first), counting every stream's rows.
    std::atomic<int64_t> rowsRead{0};
    const int64_t expectedRows = format.expected * wantedCount;
    auto lastReport = std::chrono::steady_clock::now();
    auto stream = [&](int k) {
        std::unique_ptr<PgConnection> own;
        for (int w = k; w < wantedCount && !stop; w += streams) {
            const int s = wanted[size_t(w)];
            const std::string shardWhere = read.shards.segments > 0 ? where + ", segment " + std::to_string(s) + " (" +
                                                                          read.shards.condition(s) + ")"
                                                                    : where;
            try {
                if (k > 0 && !own)
                    own = std::make_unique<PgConnection>(options.connection, shardWhere);
                PgConnection& connection = k > 0 ? *own : db;
                connection.setWhere(shardWhere);
                connection.copyOut(read.copyStatement(s), [&](const char* p, size_t n) {
                    if (stop.load(std::memory_order_relaxed))
                        throw Stopped{};
                    decodeTuple(p, n, format, shardWhere, shards[size_t(s)]);
                    // Counted in blocks, so that the streams do not contend on the counter.
                    if (options.progress && shards[size_t(s)].rows % kProgressRows == 0) {
                        const int64_t read = rowsRead += kProgressRows;
                        const auto now = std::chrono::steady_clock::now();
                        if (k == 0 &&
                            std::chrono::duration<double>(now - lastReport).count() >= options.progressSeconds) {
                            lastReport = now;
                            options.progress(read, expectedRows);
                        }
                    }
                });
            } catch (const Stopped&) {
                return; // the connection is mid-COPY: done with it
            } catch (...) {
                failures[size_t(s)] = std::current_exception();
                stop = true;
                return;
            }
        }
    };
    std::vector<std::thread> threads;
    for (int k = 1; k < streams; ++k)
        threads.emplace_back(stream, k);
    stream(0);
    for (auto& t : threads)
        t.join();
    for (const auto& failure : failures)
        if (failure)
            std::rethrow_exception(failure);

    return shards;
}

/// The shards' labels in row order: integers as they are (encodeIntegerLabels), text classes as
/// indexes in sorted order, their names travelling with the dataset (and the project).
EncodedLabels collectLabels(const std::vector<ShardRows>& shards, int64_t rows, bool textLabels) {
    EncodedLabels labels;
    if (textLabels) {
        std::map<std::string, int64_t> index;
        for (const auto& shard : shards)
            for (const auto& v : shard.textLabels)
                index.emplace(v, 0);
        int64_t next = 0;
        for (auto& [name, i] : index) {
            i = next++;
            labels.classNames.push_back(name);
        }
        labels.indices = torch::empty({rows}, torch::kInt64);
        auto* out = labels.indices.data_ptr<int64_t>();
        for (const auto& shard : shards)
            for (const auto& v : shard.textLabels)
                *out++ = index[v];
    } else {
        std::vector<int64_t> all;
        all.reserve(size_t(rows));
        for (const auto& shard : shards)
            all.insert(all.end(), shard.intLabels.begin(), shard.intLabels.end());
        labels = encodeIntegerLabels(torch::from_blob(all.data(), {rows}, torch::kInt64).clone());
    }
    return labels;
}

/// For a read of some rows of one stream (SourceOptions::rows, with an id): every row's label in id
/// order (the whole table's classes), and `read` rewritten to send only the selected rows, numbered
/// in that order on the server and joined with the wanted numbers. `sourceRows`: the table's rows.
EncodedLabels numberSelectedRows(PgConnection& db, ReadPlan& read, const std::string& label, bool textLabels,
                                 const SourceOptions& options, const std::string& where, int64_t& sourceRows) {
    const auto labelRows = db.query("SELECT " + label + (textLabels ? "::text" : "::int8") + " FROM " + read.from +
                                    " ORDER BY " + read.orderBy +
                                    (options.limit > 0 ? " LIMIT " + std::to_string(options.limit) : ""));
    ShardRows all;
    for (int r = 0; r < labelRows.rows(); ++r) {
        if (labelRows.isNull(r, 0))
            throw DataError(where + ": row " + std::to_string(r + 1) + " (in " + options.id +
                            " order): the label is NULL");
        if (textLabels)
            all.textLabels.push_back(labelRows.text(r, 0));
        else
            all.intLabels.push_back(std::stoll(labelRows.text(r, 0)));
    }
    sourceRows = labelRows.rows();
    std::string wanted;
    for (const int64_t r : options.rows->train)
        wanted += (wanted.empty() ? "" : ",") + std::to_string(r);
    read.from = "(SELECT *, row_number() OVER (ORDER BY " + read.orderBy + ") - 1 AS mppdl_ordinal FROM " + read.from +
                ") AS mppdl_numbered JOIN unnest('{" + wanted +
                "}'::int8[]) AS mppdl_wanted(ordinal) ON mppdl_numbered.mppdl_ordinal = mppdl_wanted.ordinal";
    read.orderBy = "mppdl_ordinal";
    read.limit = 0; // the numbers are within the limit
    return collectLabels({all}, sourceRows, textLabels);
}

/// Every shard's rows: those read, and a count of the others.
std::vector<int64_t> shardRowCounts(PgConnection& db, const ReadPlan& read, const std::vector<ShardRows>& shards,
                                    const std::vector<int>& wanted, const std::string& where) {
    std::vector<int64_t> counts(shards.size(), 0);
    for (int s = 0; s < int(shards.size()); ++s) {
        if (std::find(wanted.begin(), wanted.end(), s) != wanted.end()) {
            counts[size_t(s)] = shards[size_t(s)].rows;
            continue;
        }
        db.setWhere(where + ", segment " + std::to_string(s) + " (" + read.shards.condition(s) + ")");
        counts[size_t(s)] = std::stoll(db.query(read.countStatement(s), {}).text(0, 0));
    }
    db.setWhere(where);
    return counts;
}

/// A read that selected no rows: the table's row counts and classes, and no features.
LoadedSource noRowsRead(const SourceOptions& options, const EncodedLabels* everyLabel, int64_t sourceRows,
                        const std::vector<int64_t>& shardRows) {
    LoadedSource out;
    std::vector<int64_t> shape{0};
    shape.insert(shape.end(), options.shape.begin(), options.shape.end());
    if (shape.size() == 1)
        shape.push_back(0);
    out.train = Dataset(torch::empty(shape, torch::kFloat32), torch::empty({0}, torch::kInt64),
                        everyLabel ? everyLabel->classNames : std::vector<std::string>{});
    out.sourceTrainRows = everyLabel ? sourceRows : 0;
    out.sourceTestRows = 0;
    if (everyLabel)
        out.allLabels.assign(everyLabel->indices.data_ptr<int64_t>(),
                             everyLabel->indices.data_ptr<int64_t>() + sourceRows);
    out.shardRows = shardRows;
    return out;
}

std::string arrayShape(const std::vector<int64_t>& dims) { return dims.empty() ? "flat" : formatShape(dims); }

/// An array's elements as SQL names them (1-based, one subscript per dimension: "x[2][1][3]"), in
/// row-major order: what a user fixes a row by.
std::vector<std::string> elementNames(const std::string& array, const std::vector<int64_t>& dims, int64_t width) {
    const std::vector<int64_t> sizes = dims.empty() ? std::vector<int64_t>{width} : dims;
    std::vector<std::string> names;
    names.reserve(size_t(std::max<int64_t>(width, 0)));
    std::vector<int64_t> at(sizes.size(), 0);
    for (int64_t k = 0; k < width; ++k) {
        std::string name = array;
        for (const auto i : at)
            name += "[" + std::to_string(i + 1) + "]";
        names.push_back(std::move(name));
        for (size_t d = sizes.size(); d-- > 0;) { // the last subscript turns fastest
            if (++at[d] < sizes[d])
                break;
            at[d] = 0;
        }
    }
    return names;
}

/// The rows read over every shard, after checking that no shard is empty and that all have rows
/// of one width and shape (`width` and `dims`: theirs; dims empty for flat rows).
int64_t checkShards(const std::vector<ShardRows>& shards, const std::vector<int64_t>& shardRows, const ReadPlan& read,
                    const std::string& where, int64_t& width, std::vector<int64_t>& dims) {
    int64_t rows = 0;
    for (int s = 0; s < int(shards.size()); ++s) {
        const auto& shard = shards[size_t(s)];
        if (shardRows[size_t(s)] == 0 && read.shards.segments > 0)
            throw DataError(where + ": segment " + std::to_string(s) + " of " + std::to_string(int(shards.size())) +
                            " has no rows (" + read.shards.condition(s) + ")" +
                            (read.shards.by == ShardPlan::By::GreenplumSegment
                                 ? "; Greenplum keeps the table on " + std::to_string(read.shards.serverSegments) +
                                       " segments: train with at most as many"
                                 : "; use fewer segments or another distribution key"));
        if (shard.rows > 0 && width >= 0 && (shard.width != width || shard.dims != dims))
            throw DataError(where + ": segment " + std::to_string(s) + "'s rows are " + arrayShape(shard.dims) + " (" +
                            std::to_string(shard.width) + " feature values) where those before are " +
                            arrayShape(dims) + " (" + std::to_string(width) + ")");
        if (shard.rows > 0) {
            width = shard.width;
            dims = shard.dims;
        }
        rows += shard.rows;
    }
    return rows;
}

/// A MADlib packed table (pg_madlib.h) read as such; nullopt for an ordinary table or a query.
std::optional<LoadedSource> readIfPacked(PgConnection& db, const SourceText& source, const std::vector<Column>& columns,
                                         const SourceOptions& options, const std::string& where) {
    if (source.query) {
        if (options.tableFormat == "madlib-packed")
            throw ConfigError(where + ": a MADlib packed table is read by its name, pg:TABLE, not by a query");
        return std::nullopt;
    }
    std::vector<std::string> names;
    for (const auto& c : columns)
        names.push_back(c.name);
    if (const auto packed = madlibPackedLayout(db, source.text, names, options, where))
        return loadMadlibPacked(db, *packed, options, where);
    return std::nullopt;
}

} // namespace

bool detectPostgres(const std::string& location) { return location.rfind(kPrefix, 0) == 0; }

LoadedSource loadPostgres(const std::string& location, const SourceOptions& options) {
    if (!detectPostgres(location))
        throw ConfigError(location + ": a PostgreSQL source is named pg:TABLE or pg:(SELECT ...)");
    const SourceText source = parseLocation(location);
    const std::string where = location;
    PgConnection db(options.connection, where);

    std::string from;
    const std::vector<Column> columns = sourceColumns(db, source, location, from);
    if (auto packed = readIfPacked(db, source, columns, options, where))
        return std::move(*packed);
    auto findColumn = [&](const std::string& name) {
        return std::find_if(columns.begin(), columns.end(), [&](const Column& c) { return c.name == name; });
    };

    const std::string label = options.label.empty() ? "label" : options.label;
    const LabelPlan labelPlan = planLabel(columns, label, options.labelsOptional, where);
    const bool labeled = labelPlan.labeled;
    const std::string& labelSql = labelPlan.sql;
    TupleFormat format;
    format.textLabels = labelPlan.text;
    const auto plan = planFeatures(columns, options.features, options.ignore, label, options.id, where);
    format.wire = plan.wire;
    format.floatBytes = options.bytea == "float32";
    if (plan.wire == FeatureWire::Bytes && !format.floatBytes && options.bytea != "uint8")
        throw ConfigError("--bytea must be uint8 or float32, got '" + options.bytea + "'");
    std::string idType;
    if (!options.id.empty()) {
        const auto idColumn = findColumn(options.id);
        if (idColumn == columns.end())
            throw ConfigError(where + " has no id column '" + options.id + "' (columns: " + columnList(columns) + ")");
        idType = idColumn->type;
        format.hasId = true;
        format.idColumn = options.id;
    }
    // The distribution key: named, or the id.
    const std::string key = options.distributedBy.empty() ? options.id : options.distributedBy;
    if (!options.distributedBy.empty() && findColumn(options.distributedBy) == columns.end())
        throw ConfigError(where + " has no distribution key column '" + options.distributedBy +
                          "' (columns: " + columnList(columns) + ")");
    if (options.segments < 0)
        throw ConfigError(where + ": cannot read as " + std::to_string(options.segments) + " segments");

    ReadPlan read;
    read.columns = labelSql + (format.textLabels ? "::text" : "::int8") + ", " + plan.expression +
                   (options.id.empty() ? "" : ", " + quoteIdentifier(options.id) + "::text AS mppdl_id");
    read.from = from;
    if (!options.id.empty()) // the column, in its own type (the text copy above is named apart)
        read.orderBy = quoteIdentifier(options.id);
    read.limit = options.limit;
    if (options.segments > 0) // one stream needs nothing of the server's make-up
        read.shards = planShards(serverInfo(db), !source.query, options.segments, key, where);
    const int shardCount = std::max(1, read.shards.segments);

    // Room for the rows the planner expects (or the limit), so the buffers do not regrow and copy.
    format.expected = options.limit;
    if (format.expected <= 0 && !source.query) {
        const auto estimate = db.query("SELECT reltuples::int8 FROM pg_class WHERE oid = to_regclass($1)", {from});
        if (estimate.rows() > 0 && !estimate.isNull(0, 0))
            format.expected = std::max<int64_t>(0, std::stoll(estimate.text(0, 0)));
    }
    format.expected = (format.expected + shardCount - 1) / shardCount;

    // Some rows of one stream (a process of a multi-process run): every row's label first, in id
    // order (the classes and the label-based policies are the whole table's), then only the
    // selected rows, numbered in that order on the server and joined with the wanted numbers.
    // Without an id the server's row order is not stable between two scans: the table is read whole.
    const bool selected = options.rows && read.shards.segments == 0 && !options.id.empty();
    EncodedLabels everyLabel;
    int64_t sourceRows = 0;
    if (selected)
        everyLabel = numberSelectedRows(db, read, labelSql, format.textLabels, options, where, sourceRows);

    // The shards to read: all, or (a process of a multi-process run) its own; the others are counted.
    std::vector<int> wanted;
    for (int s = 0; s < shardCount; ++s)
        if (options.shards.empty() ||
            std::find(options.shards.begin(), options.shards.end(), s) != options.shards.end())
            wanted.push_back(s);
    if (!options.shards.empty() && read.shards.segments == 0)
        throw InternalError(where + ": shards chosen for a read that is not sharded");
    auto shards = readShards(db, read, format, options, where, wanted);
    const auto shardRows = shardRowCounts(db, read, shards, wanted, where);

    int64_t width = -1;
    std::vector<int64_t> dims; // a multi-dimensional array's: the sample shape, unless --shape says another
    const int64_t rows = checkShards(shards, shardRows, read, where, width, dims);
    if (rows == 0 && options.shards.empty() && !(selected && sourceRows > 0))
        throw DataError(where + (source.query ? ": the query returns no rows" : ": the table has no rows"));
    if (rows == 0) // a selection of no rows: the read says only what the table holds
        return noRowsRead(options, selected ? &everyLabel : nullptr, sourceRows, shardRows);

    EncodedLabels labels = collectLabels(shards, rows, format.textLabels);
    if (selected) { // the classes of the whole table
        labels.indices = everyLabel.indices.index_select(0, torch::tensor(at::ArrayRef<int64_t>(options.rows->train),
                                                                          torch::kInt64));
        labels.classNames = everyLabel.classNames;
    }
    std::vector<std::string> ids;
    for (auto& shard : shards)
        for (auto& id : shard.ids)
            ids.push_back(std::move(id));
    const at::Tensor x = plan.wire == FeatureWire::Bytes && !format.floatBytes
                             ? packedRows(shards, &ShardRows::bytes, rows, width, torch::kUInt8)
                             : packedRows(shards, &ShardRows::floats, rows, width, torch::kFloat32);
    LoadedSource out;
    out.kind = "pg";
    out.location = location;
    out.train = Dataset(reshapeFeatures(x, options.shape.empty() ? dims : options.shape, location), labels.indices,
                        labels.classNames);
    if (!labeled)
        out.train = out.train.withoutLabels();
    out.featureNames = plan.names;
    if (!plan.array.empty())
        out.featureNames = elementNames(plan.array, dims, width);
    if (read.shards.segments > 0) {
        // Rows came shard by shard: each run of rows is its segment's.
        auto home = torch::empty({rows}, torch::kInt64);
        int64_t at = 0;
        for (int s = 0; s < shardCount; ++s) {
            home.slice(0, at, at + shards[size_t(s)].rows).fill_(s);
            at += shards[size_t(s)].rows;
        }
        out.train = out.train.withHomeSegments(home);
    }
    out.ids = std::move(ids);
    out.idType = idType;
    out.rowsRead = rows;
    out.bytesRead = rows * std::max<int64_t>(width, 0) * static_cast<int64_t>(x.element_size());
    if (!options.shards.empty()) {
        out.shardRows = shardRows;
        out.sourceTrainRows = std::accumulate(shardRows.begin(), shardRows.end(), int64_t(0));
        out.sourceTestRows = 0;
    }
    if (selected) {
        if (rows != static_cast<int64_t>(options.rows->train.size()))
            throw DataError(where + ": " + std::to_string(options.rows->train.size()) + " rows were selected but " +
                            std::to_string(rows) + " came back: has the table changed while it was read?");
        out.sourceTrainRows = sourceRows;
        out.sourceTestRows = 0;
        out.allLabels.assign(everyLabel.indices.data_ptr<int64_t>(),
                             everyLabel.indices.data_ptr<int64_t>() + sourceRows);
        if (!labeled)
            std::fill(out.allLabels.begin(), out.allLabels.end(), -1);
    }
    return out;
}

} // namespace mppdl::data
