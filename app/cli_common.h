#pragma once

// Shared pieces of the mppdl command-line program.

#include "mppdl/data/source.h"
#include "mppdl/session/architectures.h"
#include "mppdl/train/trainer.h"

#include <CLI/CLI.hpp>

#include <atomic>
#include <functional>
#include <string>

namespace mppdl::cli {

/// What a parsed subcommand will do; returns the process exit code.
using Command = std::function<int()>;

/// Set by SIGINT; the trainer checks it between minibatches.
std::atomic<bool>& cancelFlag();
/// Installs the Ctrl-C handler: the first Ctrl-C cancels cleanly, a second one kills.
void installSignalHandlers();

/// Data-source flags shared by train, eval and data show.
struct SourceFlags {
    std::string location;
    std::string kind = "auto";
    std::string label;
    std::string shape;
    std::string delimiter = ",";
    bool header = false;
    bool noHeader = false;
    int64_t limit = 0;
    std::string connection;
    std::string features;
    std::string ignore;
    std::string categorical;
    std::string id;
    std::string bytea = "uint8";
    std::string distributedBy;
    std::string onBadRows = "fail";
    int64_t skipRows = 0;
    std::string layout;
    std::string tableFormat;

    void add(CLI::App& command, bool required = true);
    data::SourceOptions options() const;
};

/// The help of every --conn flag: how a PostgreSQL connection and its password are given.
constexpr const char* kConnectionHelp =
    "libpq connection URI or keywords (default: the PG* variables; a password comes best from PGPASSWORD or "
    "~/.pgpass, and is never recorded)";

using session::bundledArchitectures;
using session::resolveArchitecture;
using data::kFashionMnistDir;

void registerTrainCommands(CLI::App& app, Command& selected);
void registerInspectCommands(CLI::App& app, Command& selected);
/// mppdl eval, predict, export (cli_models.cpp).
void registerModelCommands(CLI::App& app, Command& selected);
/// mppdl tune (cli_tune.cpp).
void registerTuneCommands(CLI::App& app, Command& selected);
/// mppdl db ls (cli_db.cpp); only in builds with PostgreSQL (MPPDL_WITH_POSTGRES).
void registerDbCommands(CLI::App& app, Command& selected);

/// Prints an evaluation: accuracy, per-class table, confusion matrix.
void printEvaluation(const Evaluation& evaluation);
/// The evaluation as a JSON object (for --json).
std::string evaluationJson(const Evaluation& evaluation);

} // namespace mppdl::cli
