#include "store/schema.h"

#include "mppdl/core/error.h"

namespace mppdl::store {

namespace {

// Schema 1. Conventions: times are ISO 8601 UTC text ("2026-11-23T10:15:02Z") except the
// heartbeat (unix seconds, REAL, compared with the clock); JSON lives in TEXT columns; a REAL that
// may be NaN is nullable because SQLite stores NaN as NULL.
constexpr const char* kSchema1 = R"sql(
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE datasets (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    kind        TEXT NOT NULL,
    location    TEXT NOT NULL,
    options     TEXT NOT NULL DEFAULT '',
    schema      TEXT NOT NULL DEFAULT '',
    class_names TEXT NOT NULL DEFAULT '[]',
    statistics  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    UNIQUE (kind, location, options)
);

CREATE TABLE architectures (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);

CREATE TABLE architecture_versions (
    id              INTEGER PRIMARY KEY,
    architecture_id INTEGER NOT NULL REFERENCES architectures(id),
    version         INTEGER NOT NULL CHECK (version >= 1),
    spec            TEXT NOT NULL,
    note            TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    UNIQUE (architecture_id, version)
);

-- Runs refer to a version by id and must be repeatable: a version never changes once written.
CREATE TRIGGER architecture_versions_immutable
BEFORE UPDATE ON architecture_versions
BEGIN
    SELECT RAISE(ABORT, 'architecture versions are immutable: add a new version instead');
END;

CREATE TABLE runs (
    id                      INTEGER PRIMARY KEY,
    name                    TEXT NOT NULL,
    dataset_id              INTEGER REFERENCES datasets(id),
    architecture_version_id INTEGER NOT NULL REFERENCES architecture_versions(id),
    strategy                TEXT NOT NULL,
    segments                INTEGER NOT NULL DEFAULT 1,
    config                  TEXT NOT NULL DEFAULT '',
    state                   TEXT NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'finished', 'failed', 'cancelled', 'interrupted')),
    host                    TEXT NOT NULL DEFAULT '',
    pid                     INTEGER NOT NULL DEFAULT 0,
    versions                TEXT NOT NULL DEFAULT '',
    model_info              TEXT NOT NULL DEFAULT '',
    created_at              TEXT NOT NULL,
    started_at              TEXT,
    ended_at                TEXT,
    heartbeat               REAL NOT NULL DEFAULT 0,
    epochs                  INTEGER NOT NULL DEFAULT 0,
    epochs_done             INTEGER NOT NULL DEFAULT 0,
    best_epoch              INTEGER NOT NULL DEFAULT 0,
    best_val_accuracy       REAL,
    test_accuracy           REAL,
    seconds                 REAL NOT NULL DEFAULT 0,
    error_kind              TEXT NOT NULL DEFAULT '',
    error_message           TEXT NOT NULL DEFAULT '',
    warm_start_run          INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    warm_start_epoch        INTEGER
);
CREATE INDEX runs_name ON runs(name);
CREATE INDEX runs_architecture_version ON runs(architecture_version_id);

CREATE TABLE metrics (
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    segment      INTEGER NOT NULL,
    epoch        INTEGER NOT NULL,
    step         INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    name         TEXT NOT NULL,
    value        REAL,
    wall_seconds REAL NOT NULL
);
CREATE INDEX metrics_run_step ON metrics(run_id, step);

CREATE TABLE checkpoints (
    run_id       INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch        INTEGER NOT NULL,
    val_accuracy REAL,
    wall_seconds REAL NOT NULL,
    weights      BLOB NOT NULL,
    state        BLOB,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (run_id, epoch)
);

CREATE TABLE evaluations (
    id          INTEGER PRIMARY KEY,
    run_id      INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch       INTEGER NOT NULL,
    split       TEXT NOT NULL,
    samples     INTEGER NOT NULL,
    loss        REAL,
    accuracy    REAL,
    per_class   TEXT NOT NULL,
    confusion   TEXT NOT NULL,
    class_names TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX evaluations_run ON evaluations(run_id);
)sql";

void checkOrder(const std::string& label, const std::vector<Migration>& steps) {
    int previous = 0;
    for (const auto& step : steps) {
        if (step.toVersion <= previous)
            throw InternalError(label + ": migration steps must have increasing versions above 0 (" +
                                std::to_string(step.toVersion) + " after " + std::to_string(previous) + ")");
        previous = step.toVersion;
    }
}

} // namespace

const std::vector<Migration>& projectMigrations() {
    static const std::vector<Migration> steps = {{1, kSchema1}};
    return steps;
}

const std::vector<std::string>& projectTables() {
    static const std::vector<std::string> tables = {
        "meta", "datasets", "architectures", "architecture_versions", "runs", "metrics", "checkpoints", "evaluations",
    };
    return tables;
}

int userVersion(sqlite::Database& db) {
    return static_cast<int>(db.queryInt("PRAGMA user_version", "read its schema version"));
}

int migrate(sqlite::Database& db, const std::vector<Migration>& steps, const MigrationHook& afterSteps) {
    checkOrder(db.label(), steps);
    const int latest = steps.empty() ? 0 : steps.back().toVersion;

    // The version is read inside the write transaction: of two processes opening an old file at
    // once, the second waits for the first and then finds nothing left to do.
    sqlite::Transaction transaction(db);
    const int from = userVersion(db);
    if (from > latest)
        throw StorageError(db.label() + " has project schema " + std::to_string(from) + ", newer than schema " +
                           std::to_string(latest) + " that this mppdl knows");
    int applied = 0;
    for (const auto& step : steps) {
        if (step.toVersion <= from)
            continue;
        db.exec(step.sql, "upgrade it to project schema " + std::to_string(step.toVersion));
        ++applied;
    }
    if (applied == 0)
        return 0;
    if (afterSteps)
        afterSteps(db, from, latest);
    db.exec("PRAGMA user_version = " + std::to_string(latest), "set its schema version");
    transaction.commit();
    return applied;
}

} // namespace mppdl::store
