#include "mppdl/session/recorded_run.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/store/recorder.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/trained_model.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace mppdl::session {

int64_t registerDataset(store::Project& project, const train::TrainConfig& config, const data::LoadedSource& source) {
    return registerDataset(project, config, source.kind, source.schema(), data::computeStatistics(source.train));
}

int64_t registerDataset(store::Project& project, const train::TrainConfig& config, const std::string& kind,
                        const data::Schema& schema, const data::Statistics& stats) {
    store::DatasetRecord d;
    auto location = std::filesystem::path(config.data.location);
    if (location.filename().empty())
        location = location.parent_path();
    d.name = location.filename().string().empty() ? kind : location.filename().string();
    d.kind = kind;
    // A table is named as given (the connection, without its password, is in the options); a file
    // by its absolute path.
    const bool table = !data::readsFiles(kind);
    if (table)
        d.name = config.data.location.substr(config.data.location.find(':') + 1);
    d.location = table ? config.data.location
                       : std::filesystem::absolute(config.data.location).lexically_normal().string();
    d.options = nlohmann::json::parse(train::toJson(config))["data"]["source"].dump();
    d.schema = nlohmann::json{{"sample_shape", schema.sampleShape},
                              {"dtype", schema.dtype},
                              {"train_rows", schema.trainRows},
                              {"test_rows", schema.testRows}}
                   .dump();
    d.classNames = schema.classNames;
    d.statistics = nlohmann::json{
        {"class_counts", stats.classCounts},
        {"channel_mean", stats.channelMean},
        {"channel_std", stats.channelStd},
        {"min", stats.min},
        {"max",
         stats.max}}.dump();
    return project.registerDataset(d);
}

train::DataConfig datasetSource(const store::DatasetRecord& dataset) {
    nlohmann::json options;
    try {
        options = nlohmann::json::parse(dataset.options);
    } catch (const nlohmann::json::exception& e) {
        throw ConfigError("dataset " + dataset.name + ": its recorded options are not JSON: " + e.what());
    }
    const nlohmann::json config{{"data", {{"location", dataset.location}, {"source", options}}}};
    return train::trainConfigFromJson(config.dump()).data;
}

int64_t createRun(store::Project& project, const train::TrainConfig& config,
                  const store::ArchitectureVersion& architecture, const train::LoadedData& loaded,
                  const RunStart& start) {
    store::NewRun run;
    run.name = start.name;
    run.datasetId = registerDataset(project, config, loaded.source.kind, loaded.schema, loaded.statistics);
    run.architectureVersionId = architecture.id;
    run.epochs = config.epochs;
    run.strategy = config.strategy;
    run.segments = config.segments;
    auto recorded = nlohmann::json::parse(train::toJson(config));
    recorded["architecture"] = {{"name", architecture.name}, {"version", architecture.version}};
    if (start.warmStartRun) {
        run.warmStartRun = start.warmStartRun;
        run.warmStartEpoch = start.warmStartEpoch;
        recorded["warm_start"] = {{"run", *start.warmStartRun}, {"epoch", start.warmStartEpoch.value_or(0)}};
    }
    if (!start.search.empty())
        recorded["search"] = nlohmann::json::parse(start.search);
    // Where the prepared rows were kept, and why: what `mppdl show` says of the data's memory.
    const auto& residence = loaded.prepared.residence;
    recorded["rows_kept"] = {{"mode", residence.mode()},
                             {"why", residence.why},
                             {"packed_bytes", residence.packedBytes},
                             {"budget_bytes", residence.budgetBytes},
                             {"cache", residence.cacheDir}};
    // Rows left out for a NaN or infinite feature (--on-bad-rows skip): the record says how many.
    if (loaded.source.badRows > 0)
        recorded["data"]["bad_rows_skipped"] = loaded.source.badRows;
    if (!start.strategy.empty())
        run.strategy = start.strategy;
    if (start.segments > 0)
        run.segments = start.segments;
    run.config = recorded.dump();
    run.versions = "mppdl " + std::string(versionString()) + ", " + train::libraryVersions();
    const int64_t runId = project.createRun(run);
    project.setModelInfo(runId, train::modelInfoJson(loaded.prepared.normalizer, loaded.prepared.train.classNames(),
                                                     train::modelMembers(config)));
    return runId;
}

train::TrainResult trainRecorded(store::Project& project, int64_t runId, const train::TrainConfig& config,
                                 const model::Architecture& architecture, const data::PreparedData& data,
                                 RunObserver& display, train::TrainControl control, int keepCheckpoints,
                                 const Trainer& trainer) {
    store::RunRecorder recorder(project, runId, keepCheckpoints);
    ObserverList observers;
    observers.add(&display);
    observers.add(&recorder);
    control.checkpoints = &recorder;
    project.startRun(runId);
    try {
        if (trainer)
            return trainer(config, architecture, data, observers, control);
        return train::train(config, architecture, data, observers, control);
    } catch (const Error& e) {
        recorder.fail(toString(e.kind()), e.what());
        // The run's own error is what the caller rethrows; that the project could not record it
        // (a full disk, a lock held by another process) must reach the user too, or the project
        // would show a run still running with no word why.
        if (!recorder.endedWithError().empty()) {
            RunEvent warning;
            warning.kind = EventKind::Message;
            warning.errorKind = toString(ErrorKind::Storage);
            warning.message = "the project could not record how run " + std::to_string(runId) + " ended (" +
                              recorder.endedWithError() + "); it may still show as running";
            display.onEvents({warning});
        }
        throw;
    }
}

} // namespace mppdl::session
