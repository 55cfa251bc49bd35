#pragma once

// Training recorded in a project: what `mppdl train --project`, `mppdl resume` and the workbench's
// launcher all do, in one place. No libtorch in this header.

#include "mppdl/store/project.h"
#include "mppdl/train/trainer.h"

#include <functional>
#include <optional>
#include <string>

namespace mppdl::session {

/// The dataset a run read, as the project keeps it: a reference (a file's absolute path, or the
/// table as named with the connection, without its password, in the options), the schema and the
/// statistics; never the rows. Returns its id (an equal dataset is refreshed, not added twice).
int64_t registerDataset(store::Project& project, const train::TrainConfig& config, const data::LoadedSource& source);
/// The same with the schema and statistics given (a multi-process run's, computed over its processes).
int64_t registerDataset(store::Project& project, const train::TrainConfig& config, const std::string& kind,
                        const data::Schema& schema, const data::Statistics& statistics);

/// The inverse: where a recorded dataset is and the options it was read with (a password is never
/// recorded, so a table's connection needs PGPASSWORD or ~/.pgpass, or one given again). ConfigError
/// for options written by a newer mppdl.
train::DataConfig datasetSource(const store::DatasetRecord& dataset);

/// What a new run records beside its configuration.
struct RunStart {
    std::string name; ///< empty: "<architecture>-<id>"
    std::optional<int64_t> warmStartRun;
    std::optional<int> warmStartEpoch;
    /// A search's run: the JSON object recorded as the configuration's "search" (tune/), and the
    /// strategy and segments the run list shows (its scheduler), instead of the configuration's.
    std::string search;
    std::string strategy;
    int segments = 0;
};

/// Creates the run (queued) for data already loaded: its dataset, the architecture version, the
/// configuration as JSON (with the architecture's name and version and the warm start), the
/// library versions and the model info (normalizer, classes, members). Returns its id.
int64_t createRun(store::Project& project, const train::TrainConfig& config,
                  const store::ArchitectureVersion& architecture, const train::LoadedData& loaded,
                  const RunStart& start = {});

/// How the training itself runs: train::train() on this process's threads by default; the command
/// line passes one that also spreads segments over processes.
using Trainer = std::function<train::TrainResult(const train::TrainConfig&, const model::Architecture&,
                                                 const data::PreparedData&, RunObserver&, const train::TrainControl&)>;

/// Trains run `runId` with the project's recorder beside `display` (as observer and checkpoint
/// sink): marks the run running, records its metrics, checkpoints and end; on any mppdl::Error the
/// run is recorded as failed before the error is rethrown. When recording that end fails too, a
/// Message event (errorKind "storage") tells `display` so before the run's own error is rethrown.
train::TrainResult trainRecorded(store::Project& project, int64_t runId, const train::TrainConfig& config,
                                 const model::Architecture& architecture, const data::PreparedData& data,
                                 RunObserver& display, train::TrainControl control, int keepCheckpoints = 3,
                                 const Trainer& trainer = {});

} // namespace mppdl::session
