#pragma once

// The project file: one SQLite database (`*.mppdl`) holding every dataset reference, architecture
// version, run, metric point, checkpoint and evaluation. The CLI writes it, the GUI reads it.
//
// Safety rules:
//  - a file that is not an mppdl project, is corrupt, comes from a newer mppdl or cannot be
//    written is refused with a StorageError naming the file, and is never modified;
//  - WAL journal: one writer and any number of readers at once; every connection waits on a busy
//    database (busy_timeout) instead of failing with "database is locked";
//  - every write is one transaction (BEGIN IMMEDIATE): a killed process leaves the last committed
//    state, never a half-written one.
//
// A Project is one connection: use it from one thread at a time (the GUI opens its own).

#include "mppdl/core/checkpoint.h"
#include "mppdl/core/events.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mppdl::store {

/// The schema this build writes. Files with a lower user_version are migrated forward when opened
/// for writing; files with a higher one are refused.
int currentSchemaVersion();

enum class Access { Read, Write };

enum class RunState { Queued, Running, Finished, Failed, Cancelled, Interrupted };
const char* toString(RunState state);
/// Throws StorageError for an unknown name.
RunState parseRunState(const std::string& name);

/// A data source a run used. Large data is referenced (location), never copied into the project.
struct DatasetRecord {
    int64_t id = 0;
    std::string name;     ///< unique in the project
    std::string kind;     ///< a data::sourceKinds() name: "idx", "csv", ..., "pg" for a table
    std::string location; ///< a path, or a connection string without its password
    std::string options;  ///< JSON: reader options and column mapping
    std::string schema;   ///< JSON: sample shape, dtype, rows
    std::vector<std::string> classNames;
    std::string statistics; ///< JSON: class histogram, channel moments
    std::string createdAt;  ///< ISO 8601, UTC
};

/// One immutable version of a named architecture.
struct ArchitectureVersion {
    int64_t id = 0; ///< row id; runs refer to it
    std::string name;
    int version = 0;  ///< 1, 2, ... per name
    std::string spec; ///< the architecture JSON
    std::string note;
    std::string createdAt;
    int64_t runs = 0; ///< runs that used this version
};

struct ArchitectureSummary {
    std::string name;
    int versions = 0;
    int latest = 0;
    int64_t runs = 0;
    std::string updatedAt; ///< when the latest version was added
};

/// What a run is before it starts.
struct NewRun {
    std::string name;      ///< empty: "<architecture>-<id>"
    int64_t datasetId = 0; ///< 0: none recorded
    int64_t architectureVersionId = 0;
    std::string strategy = "single";
    int segments = 1;
    int epochs = 0;       ///< planned
    std::string config;   ///< JSON: everything needed to repeat the run
    std::string versions; ///< mppdl and library versions
    std::optional<int64_t> warmStartRun;
    std::optional<int> warmStartEpoch;
};

struct RunRecord {
    int64_t id = 0;
    std::string name;
    int64_t datasetId = 0;
    int64_t architectureVersionId = 0;
    std::string architectureName;
    int architectureVersion = 0;
    std::string strategy;
    int segments = 1;
    std::string config;
    /// As stored, except that a `running` run whose process is gone reads as Interrupted: on this
    /// host when its pid no longer exists, from another host when its heartbeat is over 10 min old.
    RunState state = RunState::Queued;
    std::string host;
    int64_t pid = 0;
    std::string versions;
    /// JSON: what turns the run's weights into a usable model besides the architecture
    /// (normalizer, class names); set once the data is prepared.
    std::string modelInfo;
    std::string createdAt, startedAt, endedAt; ///< ISO 8601 UTC; empty when not yet
    double heartbeat = 0;                      ///< unix seconds of the last write by the running process
    int epochs = 0;                            ///< planned
    int epochsDone = 0;
    int bestEpoch = 0; ///< by validation accuracy; 0 when none
    std::optional<double> bestValAccuracy;
    std::optional<double> testAccuracy;
    double seconds = 0; ///< wall time of training so far
    std::string errorKind, errorMessage;
    std::optional<int64_t> warmStartRun;
    std::optional<int> warmStartEpoch;
};

/// One scalar of a metric series. Segment -1 is the whole (merged) model.
struct MetricPoint {
    int segment = -1;
    int epoch = 0;
    int64_t step = 0;
    std::string kind; ///< "progress", "epoch", "test", or "rank" (a process's figures; segment = its rank)
    std::string name;
    double value = 0;
    double wallSeconds = 0;
};

struct CheckpointInfo {
    int epoch = 0;
    std::optional<double> valAccuracy;
    double wallSeconds = 0;
    int64_t weightBytes = 0;
    int64_t stateBytes = 0; ///< 0 when only the weights are kept (not resumable from here)
    std::string createdAt;
};

/// What Project::checkCheckpoints() found: every checkpoint read and its checksums verified.
struct CheckpointCheck {
    int checked = 0;
    int64_t bytes = 0;
    int unchecked = 0;                 ///< written before checkpoints carried a checksum
    std::vector<std::string> problems; ///< one message per damaged checkpoint, naming run and epoch
};

struct EvaluationRecord {
    int64_t id = 0;
    int epoch = 0; ///< the epoch whose weights were evaluated
    Evaluation evaluation;
    std::string createdAt;
};

/// Run-level facts that change as a run goes (one UPDATE, with the heartbeat).
struct RunProgress {
    int epochsDone = 0;
    int bestEpoch = 0;
    std::optional<double> bestValAccuracy;
    double seconds = 0;
};

class Project {
public:
    /// Opens an existing project. Refusals (StorageError, file untouched): missing file; not an
    /// SQLite database; an SQLite database that is not an mppdl project (application_id); a corrupt
    /// file; a newer schema (the message names the mppdl version that wrote it and the schema
    /// needed); Access::Write on a file that is read-only (no write permission bit, or not writable
    /// by this user). An older schema is migrated forward in one transaction (Write access, or Read
    /// access on a writable file).
    static Project open(const std::string& path, Access access);
    /// Creates a new, empty project; refuses (StorageError) when `path` exists. The file appears
    /// complete or not at all (built beside it, then linked into place).
    static Project create(const std::string& path);
    /// open(Write) when `path` exists, create() otherwise.
    static Project openOrCreate(const std::string& path);

    Project(Project&&) noexcept;
    Project& operator=(Project&&) noexcept;
    ~Project();

    const std::string& path() const;
    int schemaVersion() const;
    bool writable() const;
    /// PRAGMA integrity_check: "ok", or SQLite's findings.
    std::string integrityCheck() const;
    /// Writes a consistent copy of the project to `path` (File > Save As), which must not exist
    /// (StorageError otherwise); the copy appears complete or not at all. This project stays open.
    void saveCopy(const std::string& path) const;

    // --- datasets
    /// Finds the dataset with the same kind, location and options and refreshes its schema, class
    /// names and statistics, or inserts it under a unique name derived from `record.name`.
    int64_t registerDataset(const DatasetRecord& record);
    std::vector<DatasetRecord> datasets() const;
    std::optional<DatasetRecord> dataset(int64_t id) const;

    // --- architectures
    /// Adds `spec` as the next version of `name`, unless it equals the latest version's spec (then
    /// that version is returned and `*created` is false). Versions are never changed afterwards.
    ArchitectureVersion addArchitecture(const std::string& name, const std::string& spec, const std::string& note,
                                        bool* created = nullptr);
    std::vector<ArchitectureSummary> architectures() const;
    /// Oldest first; empty when the name is unknown.
    std::vector<ArchitectureVersion> architectureVersions(const std::string& name) const;
    /// The given version, or the latest when `version` is 0.
    std::optional<ArchitectureVersion> architecture(const std::string& name, int version = 0) const;
    std::optional<ArchitectureVersion> architectureById(int64_t id) const;

    // --- runs
    /// Inserts a run in state Queued; returns its id.
    int64_t createRun(const NewRun& run);
    /// Marks the run Running in this process (host, pid, start time, heartbeat).
    void startRun(int64_t runId);
    void setModelInfo(int64_t runId, const std::string& json);
    void updateProgress(int64_t runId, const RunProgress& progress);
    /// Finished, Failed, Cancelled or Interrupted, with the end time and, for failures, the error.
    void endRun(int64_t runId, RunState state, const std::string& errorKind = {}, const std::string& errorMessage = {});
    void setTestAccuracy(int64_t runId, double accuracy);
    /// Persists Interrupted for runs that read as interrupted; returns how many.
    int reconcileInterrupted();
    /// Oldest first.
    std::vector<RunRecord> runs() const;
    std::optional<RunRecord> run(int64_t id) const;
    /// By id ("3") or by name; StorageError for a name shared by several runs (their ids listed),
    /// nullopt for none.
    std::optional<RunRecord> findRun(const std::string& idOrName) const;

    // --- metric series
    /// All points in one transaction; also refreshes the run's heartbeat.
    void appendMetrics(int64_t runId, const std::vector<MetricPoint>& points);
    /// Ordered by step, then name. `kind` empty means every kind.
    std::vector<MetricPoint> metrics(int64_t runId, const std::string& kind = {}) const;
    /// Drops the points of epochs after `epoch` (a resume continues from there).
    void truncateMetrics(int64_t runId, int epoch);

    // --- checkpoints
    /// Stores the checkpoint (replacing one of the same epoch), then keeps the last `keepLast`
    /// epochs and the best one by validation accuracy (the earliest of equals); the best keeps only
    /// its weights once it is not among the last. One transaction.
    void saveCheckpoint(int64_t runId, const Checkpoint& checkpoint, int keepLast);
    std::vector<CheckpointInfo> checkpoints(int64_t runId) const;
    /// A stored epoch; nullopt when not kept.
    std::optional<Checkpoint> checkpoint(int64_t runId, int epoch) const;
    /// The latest checkpoint that has resume state.
    std::optional<Checkpoint> lastResumable(int64_t runId) const;
    /// Reads every checkpoint of every run and verifies its checksums (mppdl project check).
    CheckpointCheck checkCheckpoints() const;
    /// Epoch numbers of the kept best and last checkpoints (0 when none).
    int bestCheckpointEpoch(int64_t runId) const;
    int lastCheckpointEpoch(int64_t runId) const;

    // --- evaluations
    int64_t saveEvaluation(int64_t runId, int epoch, const Evaluation& evaluation);
    std::vector<EvaluationRecord> evaluations(int64_t runId) const;

    struct Impl;

private:
    explicit Project(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace mppdl::store
