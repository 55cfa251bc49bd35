#include "cli_processes.h"

#include "mppdl/core/error.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/process_group.h"

#include <nlohmann/json.hpp>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iostream>
#include <spawn.h>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace mppdl::cli {

namespace {

constexpr const char* kRunKey = "mppdl/run";

/// The worker processes this process started; stopped when it goes away.
class LocalWorkers {
public:
    /// Workers of a run of `world` processes; `task(rank)` says what a rank does, for a failure's
    /// message.
    LocalWorkers(int world, std::function<std::string(int rank)> task) : m_world(world), m_task(std::move(task)) {}
    ~LocalWorkers() {
        for (auto& w : m_workers)
            if (!w.reaped)
                ::kill(w.pid, SIGTERM);
        // A grace period to stop, then SIGKILL for a worker that does not (stuck in a read).
        const auto until = std::chrono::steady_clock::now() + kGracePeriod;
        for (auto& w : m_workers)
            while (!w.reaped) {
                if (waitpid(w.pid, &w.status, WNOHANG) == w.pid) {
                    w.reaped = true;
                } else if (std::chrono::steady_clock::now() > until) {
                    ::kill(w.pid, SIGKILL);
                    waitpid(w.pid, &w.status, 0);
                    w.reaped = true;
                } else {
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                }
            }
        if (!m_rendezvousDir.empty()) {
            std::error_code ignored;
            std::filesystem::remove_all(m_rendezvousDir, ignored);
        }
    }
    static constexpr std::chrono::seconds kGracePeriod{5};

    /// "file:///tmp/mppdl-rendezvous-XXXXXX/store": a rendezvous for workers of this host only,
    /// in a directory only this user may open (mkdtemp makes it 0700), removed with the workers.
    /// No port is opened for it, so nobody else on the host or the network can join or write it.
    std::string rendezvousFile() {
        if (m_rendezvousDir.empty()) {
            const char* tmp = std::getenv("TMPDIR");
            std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/mppdl-rendezvous-XXXXXX";
            if (!mkdtemp(pattern.data()))
                throw DeviceError("cannot make a directory for the run's rendezvous (" + pattern +
                                  "): " + std::strerror(errno));
            m_rendezvousDir = pattern;
        }
        return "file://" + m_rendezvousDir + "/store";
    }

    /// Starts rank `rank`, which verifies the run's configuration with `secret` (handed over in
    /// its environment, which only this user and root can read, not on its command line).
    void start(int rank, const std::string& master, const ProcessFlags& flags, const std::string& secret) {
        const std::vector<std::string> args = {"mppdl",          "worker",
                                               "--rank",         std::to_string(rank),
                                               "--world",        std::to_string(m_world),
                                               "--master",       master,
                                               "--timeout",      std::to_string(flags.timeoutSeconds),
                                               "--load-timeout", std::to_string(flags.loadTimeoutSeconds)};
        std::vector<char*> argv;
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        std::vector<std::string> variables{"MPPDL_CLUSTER_SECRET=" + secret,
                                           "MPPDL_LOCAL_WORKER=" + std::to_string(getpid())};
        for (char** e = environ; *e; ++e)
            if (std::strncmp(*e, "MPPDL_CLUSTER_SECRET=", 21) != 0 && std::strncmp(*e, "MPPDL_LOCAL_WORKER=", 19) != 0)
                variables.emplace_back(*e);
        std::vector<char*> env;
        for (auto& v : variables)
            env.push_back(v.data());
        env.push_back(nullptr);
        pid_t pid = 0;
        const int error = posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, argv.data(), env.data());
        if (error != 0)
            throw DeviceError("cannot start worker process " + std::to_string(rank) + ": " + std::strerror(error));
        m_workers.push_back({rank, pid, false, 0});
    }

    /// Which workers have ended and how: what a failed collective's message needs. Waits up to
    /// two seconds for a death the broken connection announced to become visible.
    /// `only` >= 0: that rank's worker alone, looked at once ("" while it runs).
    std::string describeEnded(int only = -1) {
        std::string out;
        for (int attempt = 0; attempt < (only >= 0 ? 1 : 20) && out.empty(); ++attempt) {
            for (auto& w : m_workers) {
                if (only >= 0 && w.rank != only)
                    continue;
                if (!w.reaped && waitpid(w.pid, &w.status, WNOHANG) == w.pid)
                    w.reaped = true;
                if (!w.reaped)
                    continue;
                out += (out.empty() ? "" : "; ") + std::string("process ") + std::to_string(w.rank) + " (pid " +
                       std::to_string(w.pid) + ", " + m_task(w.rank) + ") ";
                if (WIFSIGNALED(w.status))
                    out += std::string("was killed by signal ") + std::to_string(WTERMSIG(w.status)) + " (" +
                           strsignal(WTERMSIG(w.status)) + ")";
                else
                    out += "exited with status " + std::to_string(WEXITSTATUS(w.status));
            }
            if (out.empty() && only < 0)
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        return out;
    }

    /// "process 2 (training segment 2) stopped answering (no heartbeat for 3 s)"; "" for none.
    std::string describeSilent(const std::vector<int>& ranks) const {
        std::string out;
        for (const int r : ranks)
            out += (out.empty() ? "" : "; ") + std::string("process ") + std::to_string(r) + " (" + m_task(r) + ")";
        return out.empty() ? out
                           : out + " stopped answering (no heartbeat for " +
                                 std::to_string(int(train::ProcessGroup::kSilenceProbeSeconds)) + " s)";
    }

private:
    struct Worker {
        int rank;
        pid_t pid;
        bool reaped;
        int status;
    };
    int m_world;
    std::function<std::string(int)> m_task;
    std::vector<Worker> m_workers;
    std::string m_rendezvousDir;
};

/// A worker this host's rank 0 started (MPPDL_LOCAL_WORKER holds its pid) ends with it, even
/// when rank 0 is killed and cannot stop it.
void stopWithParent() {
    const char* parent = std::getenv("MPPDL_LOCAL_WORKER");
    if (!parent)
        return;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (std::to_string(getppid()) != parent) // the parent died before the call above
        std::_Exit(128 + SIGTERM);
}

void addSecretOption(CLI::App& c, std::string& secretFile) {
    c.add_option("--secret-file", secretFile,
                 "file (mode 0600) holding the cluster secret that signs the run's configuration for workers on "
                 "other hosts (default: $MPPDL_CLUSTER_SECRET; a run of this host makes its own)");
}

void addLoadTimeoutOption(CLI::App& c, double& seconds) {
    c.add_option("--load-timeout", seconds,
                 "seconds to wait for the other processes to read their rows before the first collective (a process "
                 "that stops answering fails the run sooner)")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 7.0 * 86400.0));
}

void addInterfaceOption(CLI::App& c, std::string& interface) {
    c.add_option("--interface", interface,
                 "network interface for the collectives between hosts, such as eth0 (default: $GLOO_SOCKET_IFNAME, "
                 "else the one that routes to the master)");
}

/// "training segments 1, 3": what rank `rank` of `world` trains.
std::string segmentsOf(int rank, int world, int segments) {
    std::string list;
    int count = 0;
    for (int s = rank; s < segments; s += world, ++count)
        list += (list.empty() ? " " : ", ") + std::to_string(s);
    return "training segment" + std::string(count > 1 ? "s" : "") + list;
}

/// The secret that signs the run's configuration: the user's, or for a run of this host only a
/// fresh one its workers get from this process.
std::string runSecret(int world, int local, const ProcessFlags& flags) {
    auto secret = train::clusterSecret(flags.secretFile);
    if (!secret.empty())
        return secret;
    if (local < world)
        throw ConfigError("processes on other hosts take the run's configuration only signed with the cluster "
                          "secret: set MPPDL_CLUSTER_SECRET (or --secret-file FILE, mode 0600) to the same value "
                          "here and on every host");
    return train::freshClusterSecret();
}

/// Joins this process as rank 0 of `world`, starting `local` - 1 of the workers here; the others
/// are told how to join from their hosts.
std::unique_ptr<train::ProcessGroup> launch(int world, int local, const ProcessFlags& flags, LocalWorkers& workers,
                                            const std::string& secret) {
    // Processes all of this host meet in a private file: no port at all (libtorch 1.13's
    // TCPStore would listen on every interface).
    const std::string master = !flags.master.empty() ? flags.master
                               : local == world      ? workers.rendezvousFile()
                                                     : "0.0.0.0:29500";
    const bool inFile = master.rfind("file://", 0) == 0;
    const std::string masterHost = inFile ? "" : master.substr(0, master.rfind(':'));
    const auto listening = [&](int port, const train::GlooInterface& network) {
        for (int rank = 1; rank < local; ++rank)
            workers.start(rank, inFile ? master : "127.0.0.1:" + std::to_string(port), flags, secret);
        if (local < world) {
            // The address the others reach this host at: the one --master names, else (0.0.0.0)
            // that of the interface this process's collectives use.
            const std::string host = masterHost == "0.0.0.0" ? network.address : masterHost;
            std::cerr << "waiting for processes " << local << " to " << world - 1
                      << " to join: on each host run\n  mppdl worker --rank R --world " << world << " --master "
                      << (inFile ? master : host + ":" + std::to_string(port)) << "\n(this host's collectives use "
                      << network.name << " " << network.address << ", chosen by " << network.why << ")" << std::endl;
        }
    };
    auto group = train::ProcessGroup::join(0, world, master, flags.timeoutSeconds, listening, flags.interface);
    group->setLoadingTimeout(flags.loadTimeoutSeconds);
    // A local worker that ended says how; otherwise the processes whose heartbeat stopped (a
    // host or its link gone) are named with their segments.
    auto* joined = group.get();
    group->setFailureContext([&workers, joined] {
        const auto ended = workers.describeEnded();
        return !ended.empty() ? ended
                              : workers.describeSilent(joined->silentRanks(train::ProcessGroup::kSilenceProbeSeconds));
    });
    return group;
}

/// A worker's run reports nothing itself: rank 0 speaks for the run.
class SilentObserver : public RunObserver {
public:
    void onEvents(const std::vector<RunEvent>&) override {}
};

} // namespace

void ProcessFlags::add(CLI::App& c) {
    c.add_option("--local-processes", localProcesses,
                 "processes started on this host, this one included (default: all of --processes); the others "
                 "join from other hosts with 'mppdl worker'")
        ->check(CLI::Range(0, 4096));
    c.add_option("--master", master,
                 "HOST:PORT this process serves the rendezvous at, or file:///PATH to meet in a file (default: a "
                 "private file when every process is on this host, else 0.0.0.0:29500)");
    c.add_option("--timeout", timeoutSeconds, "seconds to wait for the processes to join and for a silent one")
        ->capture_default_str()
        ->check(CLI::Range(1.0, 86400.0));
    addLoadTimeoutOption(c, loadTimeoutSeconds);
    addInterfaceOption(c, interface);
    addSecretOption(c, secretFile);
}

struct ProcessRun::Impl {
    Impl(int world, int segments)
        : workers(world, [world, segments](int rank) { return segmentsOf(rank, world, segments); }) {}
    train::TrainConfig config;
    LocalWorkers workers; // stopped after the group is gone (declared before it)
    std::unique_ptr<train::ProcessGroup> group;
};

ProcessRun::ProcessRun(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
ProcessRun::~ProcessRun() = default;
train::ProcessGroup* ProcessRun::group() const { return m_impl->group.get(); }
const train::TrainConfig& ProcessRun::config() const { return m_impl->config; }

std::unique_ptr<ProcessRun> ProcessRun::start(const train::TrainConfig& given, const model::Architecture& architecture,
                                              const ProcessFlags& flags) {
    if (given.processes <= 1)
        return nullptr;
    const auto problems = train::validate(given);
    if (!problems.empty()) // before any worker starts
        throw ConfigError(problems.front());
    auto impl = std::make_unique<Impl>(given.processes, given.segments);
    train::TrainConfig& config = impl->config;
    config = given;
    const int local = flags.localProcesses > 0 ? std::min(flags.localProcesses, config.processes) : config.processes;
    // --threads counts the host's threads, as on the thread pool: its processes share them. Then
    // each segment computes with as many threads as it would on the pool, so the two agree.
    config.threads = std::max(1, (config.threads > 0 ? config.threads : train::defaultThreadCount()) / local);
    const auto secret = runSecret(config.processes, local, flags);
    impl->group = launch(config.processes, local, flags, impl->workers, secret);
    impl->group->setSigned(kRunKey,
                           nlohmann::json{{"config", nlohmann::json::parse(train::toJson(config))},
                                          {"architecture", nlohmann::json::parse(model::toJson(architecture))}}
                               .dump(),
                           secret);
    return std::unique_ptr<ProcessRun>(new ProcessRun(std::move(impl)));
}

struct JobProcesses::Impl {
    Impl(int world, const std::string& task) : workers(world, [task](int) { return task; }) {}
    mutable LocalWorkers workers; // stopped after the group is gone (declared before it)
    std::unique_ptr<train::ProcessGroup> group;
};

JobProcesses::JobProcesses(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
JobProcesses::~JobProcesses() = default;
train::ProcessGroup& JobProcesses::group() const { return *m_impl->group; }
std::string JobProcesses::describeEnded() const { return m_impl->workers.describeEnded(); }

std::string JobProcesses::awaitKey(const std::string& key, int rank, double timeoutSeconds) const {
    auto& group = *m_impl->group;
    const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeoutSeconds);
    while (!group.has(key)) {
        // A worker of this host that ended without its key fails the job at once, naming it (one
        // that set it and then exited is fine: the key is looked at again).
        const std::string ended = m_impl->workers.describeEnded(rank);
        if (!ended.empty() && !group.has(key))
            throw DeviceError(ended);
        if (std::chrono::steady_clock::now() > until)
            throw DeviceError("process " + std::to_string(rank) + " did not report within " +
                              std::to_string(int(timeoutSeconds)) + " s (--load-timeout)");
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return group.get(key);
}

std::unique_ptr<JobProcesses> JobProcesses::start(int processes, const ProcessFlags& flags, const std::string& task,
                                                  const nlohmann::json& job) {
    auto impl = std::make_unique<Impl>(processes, task);
    const int local = flags.localProcesses > 0 ? std::min(flags.localProcesses, processes) : processes;
    const auto secret = runSecret(processes, local, flags);
    impl->group = launch(processes, local, flags, impl->workers, secret);
    impl->group->setSigned(kRunKey, job.dump(), secret);
    return std::unique_ptr<JobProcesses>(new JobProcesses(std::move(impl)));
}

train::TrainResult trainInProcesses(const train::TrainConfig& config, const model::Architecture& architecture,
                                    const data::PreparedData& data, RunObserver& observer, train::TrainControl control,
                                    ProcessRun* processes) {
    if (!processes)
        return train::train(config, architecture, data, observer, control);
    control.group = processes->group();
    return train::train(processes->config(), architecture, data, observer, control);
}

namespace {

struct WorkerFlags {
    int rank = -1;
    int world = 0;
    std::string master;
    std::string interface;
    std::string secretFile;
    double timeoutSeconds = 60;
    double loadTimeoutSeconds = 3600;
    int threads = 0;
    std::string device;

    void add(CLI::App& c) {
        c.add_option("--threads", threads,
                     "CPU threads this worker trains with (0: what rank 0 gives each process of this host)");
        c.add_option("--device", device, "the device this worker trains on: cpu, cuda, cuda:N (default: the run's)");
        c.add_option("--rank", rank, "this process's rank, 1 to world - 1 (rank 0 is the train command)")->required();
        c.add_option("--world", world, "processes in the run")->required();
        c.add_option("--master", master, "HOST:PORT of the run's rank 0 (or file:///PATH, a rendezvous in a file)")
            ->required();
        c.add_option("--timeout", timeoutSeconds, "seconds to wait for the master and for a silent process")
            ->capture_default_str();
        addLoadTimeoutOption(c, loadTimeoutSeconds);
        addInterfaceOption(c, interface);
        addSecretOption(c, secretFile);
    }

    int execute() {
        if (rank < 1)
            throw ConfigError("--rank " + std::to_string(rank) +
                              ": workers have ranks 1 to world - 1 (rank 0 is the "
                              "mppdl train process)");
        stopWithParent();
        // Before joining: a worker without the secret cannot take any run.
        const auto secret = train::clusterSecret(secretFile);
        if (secret.empty())
            throw ConfigError("no cluster secret to check the run's configuration with: set MPPDL_CLUSTER_SECRET "
                              "(or --secret-file FILE, mode 0600) to rank 0's");
        auto group = train::ProcessGroup::join(rank, world, master, timeoutSeconds, {}, interface);
        group->setLoadingTimeout(loadTimeoutSeconds);
        nlohmann::json run;
        try {
            run = nlohmann::json::parse(group->getSigned(kRunKey, secret));
        } catch (const nlohmann::json::exception& e) {
            throw ConfigError(std::string("the master sent a run this worker cannot read: ") + e.what());
        }
        if (run.contains("predict"))
            return runPredictJob(run.at("predict"), *group);
        auto config = train::trainConfigFromJson(run.at("config").dump());
        if (threads > 0)
            config.threads = threads;
        if (!device.empty())
            config.device = device;
        const auto architecture = model::parseArchitecture(run.at("architecture").dump(), "the run's architecture");
        SilentObserver silent;
        // Its own segments' rows only, and its share of the validation and test rows.
        const auto loaded = train::loadData(config, architecture, silent, group.get());
        train::TrainControl control;
        control.cancel = &cancelFlag();
        control.group = group.get();
        try {
            train::train(config, architecture, loaded.prepared, silent, control);
        } catch (const CancelledError&) {
            return 130; // rank 0 says so to the user
        }
        return 0;
    }
};

} // namespace

void registerWorkerCommand(CLI::App& app, Command& selected) {
    auto flags = std::make_shared<WorkerFlags>();
    auto* worker = app.add_subcommand(
        "worker", "join a multi-process run as one of its workers (the run's configuration comes from rank 0)");
    flags->add(*worker);
    worker->callback([&selected, flags] { selected = [flags] { return flags->execute(); }; });
}

} // namespace mppdl::cli
