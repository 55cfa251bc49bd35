#pragma once

// The CLI's side of project files: which file, which architecture version, which run's weights.

#include "cli_common.h"

#include "mppdl/model/architecture.h"
#include "mppdl/session/run_model.h"
#include "mppdl/store/project.h"
#include "mppdl/train/trained_model.h"

#include <string>

namespace mppdl::cli {

/// The project a command works on: `flag` (--project), else $MPPDL_PROJECT, else the one *.mppdl
/// file in the current directory. With none there, writers get ./project.mppdl (created on first
/// use) and readers a ConfigError saying how to name one; several there is a ConfigError naming
/// them.
std::string projectPath(const std::string& flag, bool forWriting);
/// Opens (Read) or opens-or-creates (Write) the project. Says on stderr when it created one,
/// unless `created` is given: then it is set and the caller tells.
store::Project openProject(const std::string& flag, store::Access access, bool* created = nullptr);

using session::ProjectArchitecture;
using session::projectArchitecture;
using session::validated;

/// An architecture as `arch show` and `arch export` name it: NAME@VERSION of the project, a name
/// the project has (its latest version), else a file or a bundled name, which need no project.
ProjectArchitecture architectureFor(const std::string& projectFlag, const std::string& ref);

using session::findRun;
using session::RunWeights;
using session::runModel;
using session::runWeights;

void registerProjectCommands(CLI::App& app, Command& selected);

/// `mppdl tui [PROJECT]` (cli_tui.cpp), and the workbench it opens on `projectFlag`'s project.
void registerTuiCommand(CLI::App& app, Command& selected);
int openTerminalWorkbench(const std::string& projectFlag);

} // namespace mppdl::cli
