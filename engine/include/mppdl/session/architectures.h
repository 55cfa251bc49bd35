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

} // namespace mppdl::session
