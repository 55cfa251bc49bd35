#pragma once

// Internal: the project schema as an ordered list of migrations, and the runner that brings a file
// forward. PRAGMA user_version is the schema version a file has; a fresh file has 0.

#include "store/sqlite.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mppdl::store {

/// SQL that takes a file from the previous step's version to `toVersion`.
struct Migration {
    int toVersion;
    const char* sql;
};

/// The project schema; the last step's version is currentSchemaVersion(). Never edit a step that
/// has shipped: add one.
const std::vector<Migration>& projectMigrations();

/// The tables migration 1 creates; a current file lacking one is corrupt.
const std::vector<std::string>& projectTables();

/// "mpdl": PRAGMA application_id of every project file.
constexpr uint32_t kApplicationId = 0x6D70646C;

/// Runs inside the migration transaction after the steps, before user_version is set:
/// (database, version before, version after).
using MigrationHook = std::function<void(sqlite::Database&, int, int)>;

/// Applies, in one BEGIN IMMEDIATE transaction, every step above the file's user_version, then
/// `afterSteps` (when some step ran), then sets user_version to the last step's version. Any
/// failure rolls everything back (user_version unchanged) and throws StorageError naming the file
/// and the step. A file already newer than the last step is refused. Returns the steps applied.
int migrate(sqlite::Database& db, const std::vector<Migration>& steps, const MigrationHook& afterSteps = {});

/// PRAGMA user_version.
int userVersion(sqlite::Database& db);

} // namespace mppdl::store
