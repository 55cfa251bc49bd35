#pragma once

// The CLI's side of project files: which file, which architecture version, which run's weights.

#include "cli_common.h"

#include "mppdl/model/architecture.h"
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

/// A run's weights at one epoch: `ref` is RUN, RUN:EPOCH, RUN:best or RUN:last (the default).
struct RunWeights {
    store::RunRecord run;
    train::Checkpoint checkpoint;
    std::string label; ///< "run 3 (mlp-3), epoch 5"
};
RunWeights runWeights(const store::Project& project, const std::string& ref);
/// The run's model at that epoch, ready to evaluate.
train::TrainedModel runModel(const store::Project& project, const std::string& ref, const std::string& device);

/// The run named by id or name; ConfigError when there is none (with the ids there are).
store::RunRecord findRun(const store::Project& project, const std::string& idOrName);

void registerProjectCommands(CLI::App& app, Command& selected);

} // namespace mppdl::cli
