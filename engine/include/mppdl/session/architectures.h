#pragma once

// Which architecture a run uses: the bundled ones (resources/architectures), files, and the versions a
// project keeps. The command line's --arch and the workbench's launcher resolve names here alike.

#include "mppdl/model/architecture.h"
#include "mppdl/store/project.h"

#include <string>
#include <vector>

namespace mppdl::session {

/// Names of the bundled architectures (mlp, lenet5, fmnist_cnn, ...), sorted.
std::vector<std::string> bundledArchitectures();
/// An architecture file path as given, or the file of the bundled architecture of that name;
/// ConfigError naming the bundled ones otherwise.
std::string resolveArchitecture(const std::string& nameOrPath);

/// The architecture when the analysis finds no problem; else a ConfigError listing every problem.
model::Architecture validated(model::Architecture architecture);

/// An architecture as a run uses it: a project version and the parsed spec.
struct ProjectArchitecture {
    store::ArchitectureVersion version;
    model::Architecture architecture;
};
/// `ref` is NAME@VERSION (a project version), a file (added to the project as a new version of
/// its name unless unchanged), a name the project has (its latest version) or a bundled name
/// (added as version 1 when first used). The architecture is validated before it is added; with
/// `addToProject` false nothing is added (the version's id is then 0).
ProjectArchitecture projectArchitecture(store::Project& project, const std::string& ref, bool addToProject);

/// Where an imported Keras model comes from: a Keras JSON file, or the model_arch of one row of a
/// MADlib model architecture table (what load_keras_model wrote).
struct ArchitectureImport {
    std::string file;       ///< a Keras JSON file; empty for a table
    std::string table;      ///< [SCHEMA.]TABLE of a MADlib model architecture table
    int64_t modelId = -1;   ///< the table's model_id to read
    std::string connection; ///< the table's PostgreSQL connection (libpq's conninfo or URI)
    std::string name;       ///< the imported architecture's name; empty: the model's own
};

/// An imported architecture and where it came from ("from MADlib table models, model_id 2"), which
/// its description repeats ("Imported from ...").
struct ImportedArchitecture {
    model::Architecture architecture;
    std::string source;
};

/// The architecture an import names, read and validated. ConfigError for a missing file, a missing
/// row or a NULL model_arch, naming the table and the connection; DataError when the database
/// cannot be reached. A table needs PostgreSQL support (ConfigError in a build without).
/// A table row's architecture is named by the row's MADlib `name` (characters an mppdl reference
/// cannot hold, spaces, '@' and '/', become '_'), else "TABLE_model_ID"; its description is the
/// row's `description` after where it came from.
ImportedArchitecture importArchitecture(const ArchitectureImport& from);

/// Adds an imported architecture to the project as a new version of its name, unless a version of
/// that name has the same layers (whatever its description says): then that version, with
/// `*created` false.
store::ArchitectureVersion addImportedArchitecture(store::Project& project, const ImportedArchitecture& imported,
                                                   const std::string& note, bool* created);

} // namespace mppdl::session
