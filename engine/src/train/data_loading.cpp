#include "data_loading.h"
#include "normalizer_json.h"

#include "data/packed_cache.h"
#include "streamed_rows.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/memory.h"
#include "mppdl/data/run_rows.h"
#include "mppdl/train/strategies.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

namespace fs = std::filesystem;

namespace mppdl::train {

namespace {

at::Tensor indexTensor(const std::vector<int64_t>& positions) {
    return torch::tensor(at::ArrayRef<int64_t>(positions), torch::kInt64);
}

/// Once prepared, the rows as read are not needed: the run holds their normalized copy only.
void releaseRows(data::LoadedSource& source) {
    source.train = data::Dataset();
    source.test = data::Dataset();
}

std::string noDatabaseShards(const TrainConfig& config, const std::string& kind) {
    return "the '" + config.distribution + "' distribution keeps each row on the segment the database holds it " +
           "on: it needs a pg: source, not " + kind + " " + config.data.location;
}

/// The whole source as read, split and normalized here.
LoadedData prepareWhole(const TrainConfig& config, data::LoadedSource source) {
    // The statistics first, while the rows as read are the only copy in memory.
    LoadedData loaded;
    loaded.schema = source.schema();
    loaded.statistics = data::computeStatistics(source.train);
    loaded.source = source;
    releaseRows(loaded.source);
    // Handed over, so that preparing gives the raw rows back as their float copies are made.
    loaded.prepared = data::prepare(std::move(source), config.data.validationFraction, config.seed,
                                    config.data.normalization);
    return loaded;
}

/// Where this process's rows are in the run, and what the whole source holds, before any features
/// are read (data::planRankRows).
struct Plan {
    data::RunLayout layout;
    data::RankRows rows;
    /// The planning read: every row's label and the counts; for a kind that cannot read selected
    /// rows (a table without --id), the whole source.
    data::LoadedSource source;
    bool selective = false;
    /// One row's shape and type as the source reads it.
    std::vector<int64_t> sampleShape;
    std::string dtype;
};

data::RunLayout layoutOf(const TrainConfig& config, int rank, int world) {
    data::RunLayout layout;
    layout.segments = config.segments;
    layout.policy = config.distribution;
    layout.seed = config.seed;
    layout.validationFraction = config.data.validationFraction;
    layout.rank = rank;
    layout.world = world;
    layout.shareEvaluation = !findStrategy(config.strategy)->keepsMembers;
    return layout;
}

/// The plan of a run whose rows the trainer deals to segments (not the database distribution).
Plan planRows(const TrainConfig& config, const data::SourceOptions& options, int rank, int world) {
    Plan plan;
    plan.layout = layoutOf(config, rank, world);
    const auto* policy = data::findDistributionPolicy(config.distribution);
    // Every row's label and the row counts first (no features decoded), then the own rows.
    plan.source = data::planSource(config.data.location, options);
    const auto& source = plan.source;
    plan.selective = source.sourceTrainRows >= 0;
    data::SourceRows known;
    known.trainRows = plan.selective ? source.sourceTrainRows : source.train.size();
    known.testRows = plan.selective ? source.sourceTestRows : source.test.size();
    known.classes = source.train.numClasses();
    if (policy->usesLabels) {
        if (plan.selective)
            known.labels = source.allLabels;
        else {
            const auto labels = source.train.labels().contiguous();
            known.labels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
        }
    }
    plan.rows = data::planRankRows(known, plan.layout);
    plan.sampleShape = source.train.sampleShape();
    plan.dtype = source.train.dtype();
    return plan;
}

/// In memory or out of core: the prepared rows (float32 features, int64 labels) against the budget.
data::Residence residenceOf(const TrainConfig& config, const Plan& plan) {
    const auto budget = data::memoryBudget(config.data.memoryBudget);
    const auto& r = plan.rows;
    const auto rows = static_cast<int64_t>(r.trainAt.size() + r.validationAt.size() + r.read.test.size());
    data::Residence out;
    out.packedBytes = data::preparedBytes(rows, plan.sampleShape);
    out.budgetBytes = budget.bytes;
    const std::string figures = humanBytes(double(out.packedBytes)) + " of prepared rows" +
                                (out.packedBytes <= budget.bytes ? " fit" : " exceed") + " the memory budget of " +
                                humanBytes(double(budget.bytes)) + " (" + budget.why + ")";
    out.outOfCore = out.packedBytes > budget.bytes && plan.selective;
    out.why = figures;
    if (out.packedBytes > budget.bytes && !plan.selective)
        out.why += ", but a " + plan.source.kind + " source read whole cannot be read in chunks (name its --id)";
    return out;
}

std::shared_ptr<const data::LocalRows> localRowsOf(const Plan& plan) {
    const auto& rows = plan.rows;
    auto local = std::make_shared<data::LocalRows>();
    local->rank = plan.layout.rank;
    local->world = plan.layout.world;
    local->segmentRows = rows.segmentRows;
    local->segmentSizes = rows.segmentSizes;
    local->trainRows = rows.trainRows;
    local->validationRows = rows.validationRows;
    local->testRows = rows.testRows;
    local->sharedEvaluation = plan.layout.shareEvaluation;
    return local;
}

/// Positions of the training rows this process counts in the dataset's statistics: its segments'
/// rows and the validation rows it owns (each row of the source counted by one process).
at::Tensor statisticsRows(const data::RankRows& rows) {
    std::vector<int64_t> owned = rows.trainAt;
    for (const int64_t v : rows.validationOwnedAt)
        owned.push_back(rows.validationAt[static_cast<size_t>(v)]);
    std::sort(owned.begin(), owned.end());
    return indexTensor(owned);
}

data::Schema schemaOf(const Plan& plan) {
    data::Schema schema = plan.source.schema();
    schema.sampleShape = plan.sampleShape;
    schema.dtype = plan.dtype;
    schema.trainRows = plan.rows.trainRows + plan.rows.validationRows;
    schema.testRows = plan.rows.testRows;
    return schema;
}

/// The reduction of the statistics over the processes. Its first call comes once this process has
/// read all of its rows: that is where it waits for the others to have read theirs, under the
/// loading timeout, so that a large shard does not trip the timeout of the collective after it.
data::Reduce reduceOver(Collectives* group) {
    if (!group)
        return data::Reduce();
    auto first = std::make_shared<bool>(true);
    return [group, first](at::Tensor& values, bool max) {
        if (*first) {
            group->awaitLoaded();
            *first = false;
        }
        allreduceTensors(group, {values}, max);
    };
}

/// This process's rows of a multi-process run as read (`source`), prepared in memory.
LoadedData prepareRankRows(const TrainConfig& config, data::LoadedSource source, Plan& plan, Collectives& group) {
    const auto& rows = plan.rows;
    if (source.train.size() != static_cast<int64_t>(rows.read.train.size()))
        throw InternalError(config.data.location + ": read " + std::to_string(source.train.size()) + " rows, planned " +
                            std::to_string(rows.read.train.size()));
    const auto reduce = reduceOver(&group);
    LoadedData loaded;
    // The dataset's record first, while the rows as read are the only copy: the schema and the
    // statistics of every row, each counted by one process.
    loaded.statistics = data::computeStatistics(source.train, statisticsRows(rows), reduce);
    plan.sampleShape = source.train.sampleShape();
    plan.dtype = source.train.dtype();
    loaded.schema = schemaOf(plan);
    loaded.schema.classNames = source.train.classNames();

    auto& prepared = loaded.prepared;
    const auto trainAt = indexTensor(rows.trainAt);
    prepared.normalizer = data::Normalizer::fit(config.data.normalization, source.train, trainAt, reduce);
    prepared.train = prepared.normalizer.apply(source.train, trainAt);
    prepared.validation = prepared.normalizer.apply(source.train, indexTensor(rows.validationAt));
    source.train = data::Dataset(); // the raw rows go before the test set is made
    prepared.test = prepared.normalizer.apply(source.test);
    prepared.rowsRead = source.rowsRead;
    prepared.bytesRead = source.bytesRead;
    prepared.local = localRowsOf(plan);
    loaded.source = std::move(source);
    releaseRows(loaded.source);
    return loaded;
}

/// This process's rows of a multi-process run, read in memory.
LoadedData loadRankRows(const TrainConfig& config, data::SourceOptions options, Plan& plan, Collectives& group) {
    const auto& rows = plan.rows;
    if (plan.selective) {
        options.rows = std::make_shared<data::RowSelection>(rows.read);
        return prepareRankRows(config, data::loadSource(config.data.location, options), plan, group);
    }
    // A kind that reads every row (a pg: table not read by shards): its rows are taken from the
    // whole read, which is what rows_read then says.
    data::LoadedSource source = plan.source;
    releaseRows(plan.source);
    source.sourceTrainRows = source.train.size();
    source.sourceTestRows = source.test.size();
    source.train = source.train.select(indexTensor(rows.read.train));
    if (!source.test.empty())
        source.test = source.test.select(indexTensor(rows.read.test));
    return prepareRankRows(config, std::move(source), plan, group);
}

/// A run of the database distribution over processes: each reads its own shards of the table,
/// which are then its rows as read.
LoadedData loadRankShards(const TrainConfig& config, data::SourceOptions options, Collectives& group) {
    Plan plan;
    plan.layout = layoutOf(config, group.rank(), group.world());
    options.segments = config.segments;
    options.shards = data::segmentsOfRank(config.segments, plan.layout.rank, plan.layout.world);
    auto source = data::loadSource(config.data.location, options);
    if (source.shardRows.empty())
        throw ConfigError(noDatabaseShards(config, source.kind));
    data::SourceRows known;
    known.trainRows = source.sourceTrainRows;
    known.shardRows = source.shardRows;
    known.classes = source.train.numClasses();
    plan.rows = data::planRankRows(known, plan.layout);
    plan.source = source;
    releaseRows(plan.source);
    auto loaded = prepareRankRows(config, std::move(source), plan, group);
    loaded.prepared.residence.why = "a table read as its segments' shards is held in memory";
    return loaded;
}

// ---- Out of core -------------------------------------------------------------------------------

uint64_t digestOf(const std::vector<int64_t>& values, uint64_t h) {
    return data::fnv1a(values.data(), values.size() * sizeof(int64_t), data::fnv1a(&h, sizeof h));
}

/// What the files of a file source are now: every regular file of the directory (or beside the
/// file) with its size and modification time. Any change makes another key.
void stampFiles(std::ostringstream& key, const std::string& location) {
    std::error_code error;
    const fs::path where = fs::absolute(location, error);
    const bool directory = fs::is_directory(where, error);
    std::vector<std::string> lines;
    const auto add = [&](const fs::directory_entry& entry) {
        if (!entry.is_regular_file(error))
            return;
        const auto time = entry.last_write_time(error).time_since_epoch().count();
        lines.push_back(entry.path().string() + " " + std::to_string(entry.file_size(error)) + " " +
                        std::to_string(time));
    };
    if (directory) {
        for (const auto& entry : fs::recursive_directory_iterator(where, error))
            add(entry);
    } else {
        for (const auto& entry : fs::directory_iterator(where.parent_path(), error))
            add(entry);
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& line : lines)
        key << "file " << line << "\n";
}

/// What a cache entry is of, as text: the source, how it is read and the run's layout.
std::string cacheIdentity(const TrainConfig& config, const data::SourceOptions& o, const Plan& plan) {
    std::ostringstream key;
    key << "mppdl packed rows, format 1\nkind " << plan.source.kind << "\n";
    if (data::readsFiles(plan.source.kind))
        key << "location " << fs::absolute(config.data.location).string() << "\n";
    else
        key << "location " << config.data.location << "\nconnection " << data::connectionWithoutPassword(o.connection)
            << "\n";
    char fraction[32];
    std::snprintf(fraction, sizeof fraction, "%.17g", config.data.validationFraction);
    key << "label " << o.label << "\nshape " << data::formatShape(o.shape) << "\nlimit " << o.limit << "\ndelimiter "
        << int(o.delimiter) << "\nheader " << (o.header ? (*o.header ? "yes" : "no") : "detect") << "\nid " << o.id
        << "\nbytea " << o.bytea << "\nfeatures";
    for (const auto& f : o.features)
        key << " " << f;
    // Written only when set: entries of runs before them keep their names.
    if (!o.layout.empty())
        key << "\nlayout " << o.layout;
    if (!o.tableFormat.empty())
        key << "\ntable format " << o.tableFormat;
    // One process's rows do not depend on how its segments split them.
    const bool ranks = plan.layout.world > 1;
    key << "\nnormalization " << data::toString(config.data.normalization) << "\nvalidation " << fraction << "\nseed "
        << config.seed << "\ndistribution " << (ranks ? config.distribution : "-") << "\nsegments "
        << (ranks ? config.segments : 1) << "\nprocess " << plan.layout.rank << " of " << plan.layout.world
        << (plan.layout.shareEvaluation ? " sharing" : " whole") << "\n";
    return key.str();
}

/// What the entry's rows depend on besides: the source files as they are now, the rows planned.
std::string cacheStamp(const TrainConfig& config, const Plan& plan) {
    std::ostringstream key;
    if (data::readsFiles(plan.source.kind))
        stampFiles(key, config.data.location);
    const auto& r = plan.rows;
    uint64_t rows = digestOf(r.read.train, 0);
    rows = digestOf(r.read.test, rows);
    rows = digestOf(r.trainAt, rows);
    rows = digestOf(r.validationAt, rows);
    key << "rows " << r.read.train.size() << "+" << r.read.test.size() << " " << rows << "\n";
    return key.str();
}

struct ChunkedRead {
    std::string location;
    data::SourceOptions options;
    std::vector<std::string> classNames;
    int64_t chunkRows = 0;
    int64_t rowsRead = 0, bytesRead = 0;
    std::function<void(const std::string&)> say;
};

/// The rows `ordinals` of the source's training (or test) split, read at once (all of the source
/// read for them: the chunk of an out-of-core build, a block of a stream, the test rows); checked
/// to be as many as asked for.
data::LoadedSource readSelected(const std::string& location, data::SourceOptions options,
                                const std::vector<int64_t>& ordinals, bool test) {
    auto selection = std::make_shared<data::RowSelection>();
    (test ? selection->test : selection->train) = ordinals;
    options.rows = selection;
    auto read = data::loadSource(location, options);
    const auto got = (test ? read.test : read.train).size();
    if (got != int64_t(ordinals.size()))
        throw InternalError(location + ": read " + std::to_string(got) + " rows of " + std::to_string(ordinals.size()) +
                            " selected");
    return read;
}

/// The rows `ordinals` of the source's training (or test) split, read a chunk at a time into the
/// file `path` as they come (raw, as the source holds them), mapped back as one dataset.
data::Dataset readRawPart(ChunkedRead& read, const std::vector<int64_t>& ordinals, bool test, const std::string& path,
                          const Plan& plan) {
    if (ordinals.empty())
        return data::Dataset();
    data::RowFileWriter writer(path);
    std::vector<at::Tensor> labels;
    std::vector<int64_t> shape = plan.sampleShape;
    at::ScalarType type = at::kByte;
    const auto total = static_cast<int64_t>(ordinals.size());
    for (int64_t begin = 0; begin < total; begin += read.chunkRows) {
        const int64_t end = std::min(total, begin + read.chunkRows);
        const auto chunk = readSelected(read.location, read.options,
                                        std::vector<int64_t>(ordinals.begin() + begin, ordinals.begin() + end), test);
        const auto& part = test ? chunk.test : chunk.train;
        writer.append(part.features());
        labels.push_back(part.labels());
        shape = part.sampleShape();
        type = part.features().scalar_type();
        read.classNames = part.classNames();
        read.rowsRead += chunk.rowsRead;
        read.bytesRead += chunk.bytesRead;
        if (read.say)
            read.say("caching " + read.location + (test ? " (test)" : "") + ": " + std::to_string(end) + " of " +
                     std::to_string(total) + " rows");
    }
    writer.finish();
    std::vector<int64_t> sizes{total};
    sizes.insert(sizes.end(), shape.begin(), shape.end());
    return data::Dataset(data::mapRows(path, type, sizes, false), torch::cat(labels), read.classNames);
}

nlohmann::json statisticsJson(const data::Statistics& s) {
    return {{"class_counts", s.classCounts},
            {"mean", s.channelMean},
            {"std", s.channelStd},
            {"min", s.min},
            {"max", s.max}};
}

data::Statistics statisticsFrom(const nlohmann::json& j) {
    data::Statistics s;
    s.classCounts = j.at("class_counts").get<std::vector<int64_t>>();
    s.channelMean = j.at("mean").get<std::vector<double>>();
    s.channelStd = j.at("std").get<std::vector<double>>();
    s.min = j.at("min").get<double>();
    s.max = j.at("max").get<double>();
    return s;
}

/// A part of the prepared rows on disk: `NAME.f32` (float32 rows) and `NAME.labels` (int64).
data::Dataset mapPart(const std::string& featuresPath, const std::string& labelsPath, const nlohmann::json& part,
                      const std::vector<std::string>& classNames, bool training) {
    const auto rows = part.at("rows").get<int64_t>();
    if (rows == 0)
        return data::Dataset();
    std::vector<int64_t> sizes{rows};
    for (const auto d : part.at("shape").get<std::vector<int64_t>>())
        sizes.push_back(d);
    // Labels are small (8 bytes a row): in memory.
    const auto labels = data::mapRows(labelsPath, at::kLong, {rows}, false).clone();
    return data::Dataset(data::mapRows(featuresPath, at::kFloat, sizes, training), labels, classNames);
}

/// Normalizes `rows` of `raw` (undefined: all) into the build's files of part `name`.
void writePart(data::PackedCache& cache, const std::string& name, const data::Normalizer& normalizer,
               const data::Dataset& raw, const at::Tensor& rows, nlohmann::json& manifest) {
    const int64_t n = raw.empty() ? 0 : rows.defined() ? rows.size(0) : raw.size();
    data::RowFileWriter features(cache.buildPath(name + ".f32")), labels(cache.buildPath(name + ".labels"));
    if (n > 0) {
        auto sizes = raw.features().sizes().vec();
        sizes[0] = std::min<int64_t>(n, 1024);
        auto buffer = torch::empty(sizes, torch::kFloat32);
        int64_t pending = 0;
        normalizer.applyChunks(raw, rows, [&](int64_t begin, int64_t end) {
            if (pending > 0)
                features.append(buffer.slice(0, 0, pending));
            pending = end - begin;
            return buffer.slice(0, 0, pending);
        });
        if (pending > 0)
            features.append(buffer.slice(0, 0, pending));
        labels.append(rows.defined() ? raw.labels().index_select(0, rows) : raw.labels());
    }
    manifest["files"][name + ".f32"] = features.finish();
    manifest["files"][name + ".labels"] = labels.finish();
    manifest["parts"][name] = {{"rows", n}, {"shape", raw.empty() ? std::vector<int64_t>{} : raw.sampleShape()}};
}

/// Reads this process's rows a chunk at a time, prepares them into the cache's build and returns
/// its manifest (statistics, normalizer, parts).
nlohmann::json buildCache(const TrainConfig& config, const data::SourceOptions& options, const Plan& plan,
                          data::PackedCache& cache, const data::Residence& residence, Collectives* group,
                          const std::function<void(const std::string&)>& say) {
    cache.beginBuild();
    ChunkedRead read;
    read.location = config.data.location;
    read.options = options;
    read.classNames = plan.source.train.classNames();
    read.chunkRows = data::chunkRows(residence.budgetBytes, data::preparedBytes(1, plan.sampleShape));
    read.say = say;
    const auto& rows = plan.rows;
    const auto reduce = reduceOver(group);
    nlohmann::json manifest;
    {
        // The rows as read, on disk: the statistics and the normalizer are fitted over them where
        // they lie, as in memory, then they go.
        const auto rawTrain = readRawPart(read, rows.read.train, false, cache.buildPath("raw-train"), plan);
        const auto rawTest = readRawPart(read, rows.read.test, true, cache.buildPath("raw-test"), plan);
        manifest["statistics"] = statisticsJson(data::computeStatistics(rawTrain, statisticsRows(rows), reduce));
        const auto trainAt = indexTensor(rows.trainAt);
        const auto normalizer = data::Normalizer::fit(config.data.normalization, rawTrain, trainAt, reduce);
        manifest["normalizer"] = normalizerJson(normalizer);
        writePart(cache, "train", normalizer, rawTrain, trainAt, manifest);
        writePart(cache, "validation", normalizer, rawTrain, indexTensor(rows.validationAt), manifest);
        writePart(cache, "test", normalizer, rawTest, at::Tensor(), manifest);
        manifest["classes"] = read.classNames;
    }
    std::error_code error;
    fs::remove(cache.buildPath("raw-train"), error);
    fs::remove(cache.buildPath("raw-test"), error);
    manifest["rows_read"] = read.rowsRead;
    manifest["bytes_read"] = read.bytesRead;
    return manifest;
}

/// This process's rows out of core: from a cache entry an earlier run built for the same source
/// and layout, or read a chunk at a time into a new one.
LoadedData loadOutOfCore(const TrainConfig& config, const data::SourceOptions& options, Plan& plan, Collectives* group,
                         data::Residence residence, const std::function<void(const std::string&)>& say) {
    const bool reusable = data::readsFiles(plan.source.kind);
    data::PackedCache cache(config.data.cacheDir.empty() ? data::defaultCacheRoot() : config.data.cacheDir,
                            cacheIdentity(config, options, plan), cacheStamp(config, plan));
    std::string missing;
    auto found = reusable ? cache.find(missing) : std::nullopt;
    if (group) {
        // The statistics and the normalizer of a build are collectives: every process builds when
        // one has to.
        auto absent = torch::tensor({found ? 0.0 : 1.0}, torch::kFloat64);
        allreduceTensors(group, {absent}, /*max=*/true);
        if (absent.item<double>() > 0 && found) {
            found.reset();
            missing = "another process rebuilds its own";
        }
    }
    const bool reused = found.has_value();
    nlohmann::json manifest;
    bool built = false;
    if (reused) {
        manifest = *found;
        if (say)
            say("out of core: the packed rows cached in " + cache.dir());
    } else {
        if (say)
            say("out of core: " + residence.why + "; caching the rows in " + cache.dir() +
                (reusable ? " (" + missing + ")" : ""));
        try {
            manifest = buildCache(config, options, plan, cache, residence, group, say);
        } catch (...) {
            cache.abandon();
            throw;
        }
        if (reusable)
            cache.commit(manifest);
        built = true;
    }
    // A table may change under the same name: its rows are cached for this run only (the files
    // go now; the mappings keep them until the run ends).
    const auto file = [&](const std::string& name) {
        return reusable || !built ? cache.path(name) : cache.buildPath(name);
    };
    LoadedData loaded;
    const auto classes = manifest.at("classes").get<std::vector<std::string>>();
    auto& prepared = loaded.prepared;
    const auto& parts = manifest.at("parts");
    prepared.train = mapPart(file("train.f32"), file("train.labels"), parts.at("train"), classes, true);
    prepared.validation = mapPart(file("validation.f32"), file("validation.labels"), parts.at("validation"), classes,
                                  false);
    prepared.test = mapPart(file("test.f32"), file("test.labels"), parts.at("test"), classes, false);
    if (!reusable)
        cache.abandon();
    prepared.normalizer = normalizerFrom(manifest.at("normalizer"));
    loaded.statistics = statisticsFrom(manifest.at("statistics"));
    loaded.schema = schemaOf(plan);
    loaded.schema.classNames = classes;
    if (!reused) {
        prepared.rowsRead = manifest.value("rows_read", int64_t(0));
        prepared.bytesRead = manifest.value("bytes_read", int64_t(0));
    }
    if (plan.layout.world > 1)
        prepared.local = localRowsOf(plan);
    residence.cacheDir = reusable ? cache.dir() : "";
    residence.reused = reused;
    prepared.residence = residence;
    loaded.source = std::move(plan.source);
    releaseRows(loaded.source);
    return loaded;
}

// ---- Streamed every epoch (--no-cache) ---------------------------------------------------------

/// The labels of these positions of the rows as read, from the planning read's every label.
at::Tensor labelsAt(const Plan& plan, const std::vector<int64_t>& positions) {
    const auto& all = plan.source.allLabels;
    const auto& ordinals = plan.rows.read.train;
    std::vector<int64_t> labels;
    labels.reserve(positions.size());
    for (const int64_t p : positions)
        labels.push_back(all.at(size_t(ordinals[size_t(p)])));
    return indexTensor(labels);
}

/// The test rows, read at once (a table has none; a view of another kind might).
data::Dataset readTestRows(const TrainConfig& config, const data::SourceOptions& options, const Plan& plan) {
    if (plan.rows.read.test.empty())
        return data::Dataset();
    return readSelected(config.data.location, options, plan.rows.read.test, true).test;
}

/// --no-cache: this process's training rows are read from the server again every epoch, a block
/// at a time (StreamedRows). The statistics and the normalizer are fitted over a first read of
/// them, as in memory and to every digit; the validation (and test) rows, read once, stay in memory.
LoadedData loadStreamed(const TrainConfig& config, const data::SourceOptions& options, Plan& plan, Collectives* group,
                        data::Residence residence, const std::function<void(const std::string&)>& say) {
    if (!plan.selective)
        throw ConfigError("--no-cache reads " + config.data.location +
                          " a block of rows at a time, numbered in the order of a unique column: name it with --id");
    const auto& rows = plan.rows;
    const std::string location = config.data.location;
    auto read = [location, options](const std::vector<int64_t>& ordinals, int64_t& bytes) {
        auto block = readSelected(location, options, ordinals, false);
        bytes += block.bytesRead;
        return block.train;
    };
    const int64_t rowBytes = data::preparedBytes(1, plan.sampleShape);
    const int64_t blockRows = StreamedRows::blockRowsFor(rowBytes);
    constexpr int kHeldBlocks = 3; // the one training, one a lagging segment still reads, the next
    const int64_t sourceRows = plan.source.sourceTrainRows;
    // The rows as read (training and validation) for the fitting, holding what the budget allows
    // through its passes (the statistics' two, the scale's, the validation rows'): one read of
    // them where they fit. Then the training rows alone for the epochs.
    const int fittingBlocks = int(
        std::clamp<int64_t>(residence.budgetBytes / std::max<int64_t>(1, blockRows * rowBytes), kHeldBlocks,
                            std::numeric_limits<int>::max()));
    StreamedRows fitting(read, rows.read.train, sourceRows, rows.trainAt, blockRows, fittingBlocks, config.seed);
    std::vector<int64_t> trainOrdinals, trainAt;
    for (const int64_t p : rows.trainAt) {
        trainAt.push_back(int64_t(trainOrdinals.size()));
        trainOrdinals.push_back(rows.read.train[size_t(p)]);
    }
    auto stream = std::make_shared<StreamedRows>(read, std::move(trainOrdinals), sourceRows, std::move(trainAt),
                                                 blockRows, kHeldBlocks, config.seed);
    const auto& planned = plan.source.train;
    const auto type = planned.features().defined() ? planned.features().scalar_type() : at::kFloat;
    const auto classes = planned.numClasses();
    const auto reduce = reduceOver(group);

    LoadedData loaded;
    auto& prepared = loaded.prepared;
    if (say)
        say("streaming " + location +
            " from the server every epoch (--no-cache): " + std::to_string(stream->blocksRead()) + " blocks of up to " +
            std::to_string(blockRows) + " rows; fitting the statistics and the normalization");
    const auto statistics = statisticsRows(rows).contiguous();
    const std::vector<int64_t> statisticsAt(statistics.data_ptr<int64_t>(),
                                            statistics.data_ptr<int64_t>() + statistics.numel());
    loaded.statistics = data::computeStatistics(
        fitting.rawRows(statisticsAt, labelsAt(plan, statisticsAt), plan.sampleShape, type, classes), reduce);
    prepared.normalizer = data::Normalizer::fit(
        config.data.normalization,
        fitting.rawRows(rows.trainAt, labelsAt(plan, rows.trainAt), plan.sampleShape, type, classes), reduce);
    if (!rows.validationAt.empty())
        prepared.validation = prepared.normalizer.apply(fitting.rawGather(rows.validationAt));
    const auto test = readTestRows(config, options, plan);
    if (!test.empty())
        prepared.test = prepared.normalizer.apply(test);
    stream->normalizeWith(prepared.normalizer);

    // The training rows' labels, and one zero row broadcast to their count in place of their
    // features (no memory): what sizes the run; the rows themselves come from the stream.
    std::vector<int64_t> sizes{int64_t(rows.trainAt.size())};
    sizes.insert(sizes.end(), plan.sampleShape.begin(), plan.sampleShape.end());
    auto one = sizes;
    one[0] = 1;
    prepared.train = data::Dataset(torch::zeros(one, torch::kFloat32).expand(sizes), labelsAt(plan, rows.trainAt),
                                   planned.classNames());
    prepared.stream = stream;
    prepared.local = localRowsOf(plan);
    prepared.rowsRead = fitting.rowsRead() + test.size();
    prepared.bytesRead = fitting.bytesRead();
    loaded.schema = schemaOf(plan);
    loaded.schema.classNames = planned.classNames();
    residence.outOfCore = false;
    residence.streamed = true;
    const auto held = double(kHeldBlocks * blockRows * rowBytes);
    residence.why = "--no-cache: the training rows are read from the server every epoch, " +
                    std::to_string(stream->blocksRead()) + (stream->blocksRead() == 1 ? " block" : " blocks") +
                    " of up to " + std::to_string(blockRows) + " rows in a seeded order, at most " +
                    std::to_string(kHeldBlocks) + " held (" + humanBytes(held) + "); " + residence.why;
    prepared.residence = residence;
    loaded.source = std::move(plan.source);
    releaseRows(loaded.source);
    return loaded;
}

} // namespace

LoadedData loadRunData(const TrainConfig& config, const data::SourceOptions& options, Collectives* group,
                       bool readShards, const std::function<void(const std::string&)>& say) {
    const bool ranks = group && group->world() > 1;
    const auto* policy = data::findDistributionPolicy(config.distribution);
    if (policy->fromSource) {
        // A table read as its segments' shards: in memory (each process its own shards).
        if (ranks)
            return loadRankShards(config, options, *group);
        auto source = data::loadSource(config.data.location, options);
        if (readShards && !source.train.homeSegments().defined())
            throw ConfigError(noDatabaseShards(config, source.kind));
        return prepareWhole(config, std::move(source));
    }
    Plan plan = planRows(config, options, ranks ? group->rank() : 0, ranks ? group->world() : 1);
    const auto residence = residenceOf(config, plan);
    LoadedData loaded;
    if (config.data.noCache)
        return loadStreamed(config, options, plan, ranks ? group : nullptr, residence, say);
    if (residence.outOfCore)
        return loadOutOfCore(config, options, plan, ranks ? group : nullptr, residence, say);
    if (ranks)
        loaded = loadRankRows(config, options, plan, *group);
    else
        // One process: the whole source as read (the planning read itself for a kind that reads
        // every row).
        loaded = prepareWhole(config, plan.selective ? data::loadSource(config.data.location, options)
                                                     : std::move(plan.source));
    loaded.prepared.residence = residence;
    return loaded;
}

} // namespace mppdl::train
