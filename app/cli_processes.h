#pragma once

// A run over several processes: rank 0 is the `mppdl train` (or `resume`) process; it serves the
// c10d rendezvous, starts the workers meant for this host and reports; `mppdl worker` joins from
// this host or another one.

#include "cli_common.h"

#include "mppdl/data/preprocess.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/trainer.h"

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

namespace mppdl::cli {

struct ProcessFlags {
    /// Processes started on this host, rank 0 included; 0: all of them. The others join with
    /// `mppdl worker` from other hosts.
    int localProcesses = 0;
    /// HOST:PORT rank 0 serves the rendezvous at (or file:///PATH); empty: a private file when
    /// every process is local, else 0.0.0.0:29500.
    std::string master;
    /// How long to wait for the processes to join, and for a silent one in a collective.
    double timeoutSeconds = 60;
    /// How long to wait for the others to read their rows (ProcessGroup::setLoadingTimeout).
    double loadTimeoutSeconds = 3600;
    /// The network interface for the collectives (train::chooseInterface; empty: chosen).
    std::string interface;
    /// The cluster secret's file (train::clusterSecret; empty: $MPPDL_CLUSTER_SECRET).
    std::string secretFile;

    void add(CLI::App& command);
};

/// The processes of a run of `config.processes` > 1, joined before the data is read, since each
/// reads only its own rows: this one is rank 0, serves the rendezvous, starts this host's workers
/// and hands them the run's configuration. They stop when it goes away.
class ProcessRun {
public:
    /// Null for a run of one process.
    static std::unique_ptr<ProcessRun> start(const train::TrainConfig& config, const model::Architecture& architecture,
                                             const ProcessFlags& flags);
    ~ProcessRun();

    train::ProcessGroup* group() const;
    /// The configuration every process trains with (--threads shared out over this host's processes).
    const train::TrainConfig& config() const;

    struct Impl;

private:
    explicit ProcessRun(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

/// The processes of a job other than a training run (predict --processes): this one is rank 0,
/// serves the rendezvous and starts this host's workers, which take `job` from it (under the key a
/// training run's configuration goes); workers on other hosts join with `mppdl worker`.
class JobProcesses {
public:
    /// `task`: what each process does, for a failure's message ("predicting its share of the rows").
    static std::unique_ptr<JobProcesses> start(int processes, const ProcessFlags& flags, const std::string& task,
                                               const nlohmann::json& job);
    ~JobProcesses();
    train::ProcessGroup& group() const;
    /// Which of this host's workers have ended, and how ("" while all run).
    std::string describeEnded() const;
    /// The value process `rank` sets under `key`, once it has: DeviceError as soon as that process,
    /// started here, ends without it, or after `timeoutSeconds`.
    std::string awaitKey(const std::string& key, int rank, double timeoutSeconds) const;

    struct Impl;

private:
    explicit JobProcesses(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

/// What a worker does with rank 0's predict job (cli_models.cpp): predicts its share and writes
/// its part; the exit code.
int runPredictJob(const nlohmann::json& job, train::ProcessGroup& group);

/// train::train(), over the processes of `processes` when given (it was started for `config`).
train::TrainResult trainInProcesses(const train::TrainConfig& config, const model::Architecture& architecture,
                                    const data::PreparedData& data, RunObserver& observer, train::TrainControl control,
                                    ProcessRun* processes);

void registerWorkerCommand(CLI::App& app, Command& selected);

} // namespace mppdl::cli
