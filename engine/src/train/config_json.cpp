// TrainConfig <-> JSON: what a project records so that a run can be repeated or resumed.

#include "mppdl/core/error.h"
#include "mppdl/train/trainer.h"

#include <nlohmann/json.hpp>

namespace mppdl::train {

namespace {

using nlohmann::json;

/// Reads `key` into `out` when present; a value of the wrong type names the key.
template <typename T>
void read(const json& object, const char* key, T& out, const std::string& where) {
    const auto it = object.find(key);
    if (it == object.end() || it->is_null())
        return;
    try {
        out = it->get<T>();
    } catch (const json::exception&) {
        throw ConfigError(where + "\"" + key + "\" has the wrong type (" + it->type_name() + ")");
    }
}

const json& section(const json& object, const char* key, const std::string& where) {
    static const json empty = json::object();
    const auto it = object.find(key);
    if (it == object.end())
        return empty;
    if (!it->is_object())
        throw ConfigError(where + "\"" + key + "\" must be an object");
    return *it;
}

} // namespace

std::string toJson(const TrainConfig& c) {
    const auto& s = c.data.source;
    json source = {{"kind", s.kind},
                   {"label", s.label},
                   {"delimiter", std::string(1, s.delimiter)},
                   {"shape", s.shape},
                   {"limit", s.limit},
                   // Never the password: a resume asks PGPASSWORD or ~/.pgpass for it.
                   {"connection", data::connectionWithoutPassword(s.connection)},
                   {"features", s.features},
                   {"id", s.id},
                   {"bytea", s.bytea},
                   {"distributed_by", s.distributedBy}};
    if (s.header)
        source["header"] = *s.header;
    // Written only when asked for: older configurations stay as they were.
    if (s.onBadRows != "fail")
        source["on_bad_rows"] = s.onBadRows;
    if (s.skipRows > 0)
        source["skip_rows"] = s.skipRows;
    if (!s.ignore.empty())
        source["ignore"] = s.ignore;
    if (!s.categorical.empty())
        source["categorical"] = s.categorical;
    if (s.testFraction > 0)
        source["test_fraction"] = s.testFraction;
    if (!s.layout.empty())
        source["layout"] = s.layout;
    if (!s.tableFormat.empty())
        source["format"] = s.tableFormat;
    json j = {
        {"data",
         {{"location", c.data.location},
          {"source", source},
          {"validation_fraction", c.data.validationFraction},
          {"normalization", data::toString(c.data.normalization)}}},
        {"strategy", c.strategy},
        {"segments", c.segments},
        {"distribution", c.distribution},
        {"sync_every", c.syncEvery},
        {"moving_rate", c.movingRate ? json(*c.movingRate) : json()},
        {"processes", c.processes},
        {"gpus_per_host", c.gpusPerHost},
        {"epochs", c.epochs},
        {"batch_size", c.batchSize},
        {"optimizer",
         {{"name", c.optimizer.name},
          {"lr", c.optimizer.lr},
          {"momentum", c.optimizer.momentum},
          {"nesterov", c.optimizer.nesterov},
          {"weight_decay", c.optimizer.weightDecay},
          {"beta1", c.optimizer.beta1},
          {"beta2", c.optimizer.beta2},
          {"eps", c.optimizer.eps},
          {"alpha", c.optimizer.alpha}}},
        {"schedule",
         {{"name", c.schedule.name},
          {"step_size", c.schedule.stepSize},
          {"gamma", c.schedule.gamma},
          {"min_lr", c.schedule.minLr}}},
        {"seed", c.seed},
        {"device", c.device},
        {"threads", c.threads},
        {"early_stopping_patience", c.earlyStoppingPatience},
    };
    // Written only when set, so that a run's configuration reads as before without them.
    if (!c.data.memoryBudget.empty())
        j["data"]["memory_budget"] = c.data.memoryBudget;
    if (!c.data.cacheDir.empty())
        j["data"]["cache_dir"] = c.data.cacheDir;
    if (c.data.noCache)
        j["data"]["no_cache"] = true;
    return j.dump();
}

TrainConfig trainConfigFromJson(const std::string& text) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        throw ConfigError(std::string("run configuration: not JSON: ") + e.what());
    }
    if (!j.is_object())
        throw ConfigError("run configuration: not a JSON object");
    const std::string where = "run configuration: ";
    TrainConfig c;
    const auto& d = section(j, "data", where);
    read(d, "location", c.data.location, where);
    read(d, "validation_fraction", c.data.validationFraction, where);
    std::string normalization = data::toString(c.data.normalization);
    read(d, "normalization", normalization, where);
    c.data.normalization = data::parseNormalization(normalization);
    if (d.contains("memory_budget"))
        read(d, "memory_budget", c.data.memoryBudget, where);
    if (d.contains("cache_dir"))
        read(d, "cache_dir", c.data.cacheDir, where);
    if (d.contains("no_cache"))
        read(d, "no_cache", c.data.noCache, where);
    const auto& s = section(d, "source", where);
    read(s, "kind", c.data.source.kind, where);
    read(s, "label", c.data.source.label, where);
    std::string delimiter(1, c.data.source.delimiter);
    read(s, "delimiter", delimiter, where);
    if (delimiter.size() != 1)
        throw ConfigError(where + "\"delimiter\" must be one character");
    c.data.source.delimiter = delimiter[0];
    read(s, "shape", c.data.source.shape, where);
    read(s, "limit", c.data.source.limit, where);
    read(s, "connection", c.data.source.connection, where);
    read(s, "features", c.data.source.features, where);
    read(s, "id", c.data.source.id, where);
    read(s, "bytea", c.data.source.bytea, where);
    if (s.contains("on_bad_rows"))
        read(s, "on_bad_rows", c.data.source.onBadRows, where);
    if (s.contains("skip_rows"))
        read(s, "skip_rows", c.data.source.skipRows, where);
    if (s.contains("ignore"))
        read(s, "ignore", c.data.source.ignore, where);
    if (s.contains("categorical"))
        read(s, "categorical", c.data.source.categorical, where);
    if (s.contains("test_fraction"))
        read(s, "test_fraction", c.data.source.testFraction, where);
    if (s.contains("layout"))
        read(s, "layout", c.data.source.layout, where);
    if (s.contains("format"))
        read(s, "format", c.data.source.tableFormat, where);
    if (s.contains("distributed_by")) // written since issue 5's database distribution
        read(s, "distributed_by", c.data.source.distributedBy, where);
    if (s.contains("header") && !s["header"].is_null()) {
        bool header = false;
        read(s, "header", header, where);
        c.data.source.header = header;
    }
    read(j, "strategy", c.strategy, where);
    read(j, "segments", c.segments, where);
    read(j, "distribution", c.distribution, where);
    read(j, "sync_every", c.syncEvery, where);
    if (j.contains("moving_rate") && !j["moving_rate"].is_null()) {
        double rate = 0;
        read(j, "moving_rate", rate, where);
        c.movingRate = rate;
    }
    read(j, "processes", c.processes, where);
    read(j, "gpus_per_host", c.gpusPerHost, where);
    read(j, "epochs", c.epochs, where);
    read(j, "batch_size", c.batchSize, where);
    const auto& o = section(j, "optimizer", where);
    read(o, "name", c.optimizer.name, where);
    read(o, "lr", c.optimizer.lr, where);
    read(o, "momentum", c.optimizer.momentum, where);
    read(o, "nesterov", c.optimizer.nesterov, where);
    read(o, "weight_decay", c.optimizer.weightDecay, where);
    read(o, "beta1", c.optimizer.beta1, where);
    read(o, "beta2", c.optimizer.beta2, where);
    read(o, "eps", c.optimizer.eps, where);
    read(o, "alpha", c.optimizer.alpha, where);
    const auto& sc = section(j, "schedule", where);
    read(sc, "name", c.schedule.name, where);
    read(sc, "step_size", c.schedule.stepSize, where);
    read(sc, "gamma", c.schedule.gamma, where);
    read(sc, "min_lr", c.schedule.minLr, where);
    read(j, "seed", c.seed, where);
    read(j, "device", c.device, where);
    read(j, "threads", c.threads, where);
    read(j, "early_stopping_patience", c.earlyStoppingPatience, where);
    return c;
}

} // namespace mppdl::train
