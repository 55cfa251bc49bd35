#pragma once

// A run over several processes: rank 0 is the `mppdl train` (or `resume`) process; it serves the
// c10d rendezvous, starts the workers meant for this host and reports; `mppdl worker` joins from
// this host or another one.

#include "cli_common.h"

#include "mppdl/data/preprocess.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/trainer.h"

namespace mppdl::cli {

struct ProcessFlags {
    /// Processes started on this host, rank 0 included; 0: all of them. The others join with
    /// `mppdl worker` from other hosts.
    int localProcesses = 0;
    /// HOST:PORT rank 0 serves the rendezvous at; empty: a free loopback port when every process
    /// is local, else 0.0.0.0:29500.
    std::string master;
    /// How long to wait for the processes to join, and for a silent one in a collective.
    double timeoutSeconds = 60;

    void add(CLI::App& command);
};

/// train::train(), spread over `config.processes` processes when that is more than 1.
train::TrainResult trainInProcesses(const train::TrainConfig& config, const model::Architecture& architecture,
                                    const data::PreparedData& data, RunObserver& observer, train::TrainControl control,
                                    const ProcessFlags& flags);

void registerWorkerCommand(CLI::App& app, Command& selected);

} // namespace mppdl::cli
