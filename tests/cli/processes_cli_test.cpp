// Segments over processes through the real binary: the same training as on threads, a killed
// worker, resuming, the rendezvous's refusals, a forged run configuration refused, the cluster
// secret kept private, and the network interface of the collectives.

#include "mppdl/train/process_group.h"
#include "mppdl/train/trained_model.h"

#include "support/background.h"
#include "support/json_events.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include "engine/train/train_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <arpa/inet.h>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <set>
#include <sstream>
#include <sys/socket.h>
#include <thread>

namespace fs = std::filesystem;
using namespace mppdl;

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

class ProcessesCli : public ScratchDirTest {};

std::string quick(const std::string& arch, int epochs, int limit) {
    return "train --data " + kFmnist + " --arch " + arch + " --epochs " + std::to_string(epochs) + " --limit " +
           std::to_string(limit) + " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 5 --threads 2";
}

/// The largest relative L2 difference, tensor by tensor, between two saved models.
double relativeDifference(const std::string& a, const std::string& b) {
    return ::relativeDifference(train::TrainedModel::load(a), train::TrainedModel::load(b));
}

double testAccuracy(const std::string& out) { return finishedEvent(out).at("test_accuracy").get<double>(); }

} // namespace

// The issue's test: after one merge (one epoch, merged once) model averaging over 2 processes
// (Gloo) holds the weights it holds over 2 threads within 1e-6, and their test accuracies after
// the epoch differ by less than 0.5 points. The other strategies join the same way.
TEST_F(ProcessesCli, ProcessesTrainWhatThreadsTrain) {
    for (const std::string strategy : {"model-averaging", "easgd", "allreduce", "ensemble"}) {
        const std::string flags = quick("fmnist_cnn", 1, 3000) + " --no-project --json --strategy " + strategy +
                                  " --segments 2";
        const auto threads = runMppdl(flags + " --save threads.model");
        ASSERT_EQ(threads.code, 0) << threads.out;
        const auto processes = runMppdl(flags + " --processes 2 --save processes.model");
        ASSERT_EQ(processes.code, 0) << processes.out;
        EXPECT_LT(relativeDifference("threads.model", "processes.model"), 1e-6) << strategy;
        EXPECT_LT(std::abs(testAccuracy(threads.out) - testAccuracy(processes.out)), 0.005) << strategy;
    }
}

// Each process reads only its own segments' rows and its share of the validation and test rows:
// together the source once (1.0x, not P x), and the run is still the thread pool's.
TEST_F(ProcessesCli, EachProcessReadsOnlyItsOwnRows) {
    for (const std::string policy : {"random", "by-label"}) {
        const std::string flags = quick("lenet5", 1, 3000) + " --no-project --json --strategy model-averaging " +
                                  "--segments 4 --distribute-by " + policy;
        const auto threads = runMppdl(flags);
        ASSERT_EQ(threads.code, 0) << threads.out;
        const auto single = finishedEvent(threads.out).at("ranks");
        ASSERT_EQ(single.size(), 1u) << threads.out;
        EXPECT_EQ(single[0]["rows_read"], 3000 + 10000);
        EXPECT_EQ(single[0]["bytes_read"], (3000 + 10000) * 28 * 28);
        for (const int processes : {2, 3}) {
            const auto run = runMppdl(flags + " --processes " + std::to_string(processes));
            ASSERT_EQ(run.code, 0) << run.out;
            const auto ranks = finishedEvent(run.out).at("ranks");
            ASSERT_EQ(int(ranks.size()), processes) << run.out;
            int64_t rows = 0;
            for (const auto& r : ranks) {
                rows += r["rows_read"].get<int64_t>();
                EXPECT_LT(r["rows_read"].get<int64_t>(), 13000 / processes + 3000) << policy << " " << r.dump();
                EXPECT_GT(r["peak_rss_bytes"].get<int64_t>(), 0);
            }
            EXPECT_EQ(rows, 13000) << policy << " over " << processes << " processes";
            // Segment s trains in process s mod P.
            EXPECT_EQ(ranks[1]["segments"],
                      processes == 2 ? nlohmann::json::array({1, 3}) : nlohmann::json::array({1}));
            EXPECT_NEAR(testAccuracy(run.out), testAccuracy(threads.out), 1e-9) << policy;
            EXPECT_NEAR(finishedEvent(run.out).at("val_loss").get<double>(),
                        finishedEvent(threads.out).at("val_loss").get<double>(), 1e-6)
                << policy;
        }
    }
}

// The project keeps each process's figures, and `mppdl show` prints them.
TEST_F(ProcessesCli, ShowPrintsWhatEachProcessRead) {
    auto r = runMppdl(quick("lenet5", 1, 1000) + " --strategy model-averaging --segments 2 --processes 2 "
                                                 "--project p.mppdl --quiet");
    ASSERT_EQ(r.code, 0) << r.out;
    r = runMppdl("show 1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("processes (11,000 rows read in all)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("peak RSS MB"), std::string::npos) << r.out;
    r = runMppdl("export-metrics 1 --project p.mppdl --kind rank --csv ranks.csv");
    ASSERT_EQ(r.code, 0) << r.out;
}

// A worker killed mid-run fails the run within 30 s with a message naming the process and its
// segments; the run is recorded as failed and resumes from its last merged checkpoint.
TEST_F(ProcessesCli, KilledWorkerFailsTheRunWhichResumes) {
    // fmnist_cnn: epochs of a few seconds, so that the kill surely lands inside epoch 2 (lenet5's
    // take 0.3 s on an idle machine, shorter than the progress interval).
    const std::string flags = quick("fmnist_cnn", 3, 6000) + " --strategy model-averaging --processes 2 --segments 4 "
                                                             "--sync-every 5 --project p.mppdl --json";
    std::string failure;
    std::chrono::steady_clock::time_point killed;
    {
        Background training(flags);
        ASSERT_TRUE(waitForProgressOfEpoch(training, 2)) << "never saw a progress event of epoch 2";
        const auto workers = childrenOf(training.pid());
        ASSERT_EQ(workers.size(), 1u);
        kill(workers.front(), SIGKILL);
        killed = std::chrono::steady_clock::now();
        while (auto line = training.line())
            if (line->find("\"event\":\"failed\"") != std::string::npos)
                failure = *line;
        EXPECT_NE(training.wait(), 0);
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
    EXPECT_LT(seconds, 30.0);
    EXPECT_NE(failure.find("process 1"), std::string::npos) << failure;
    EXPECT_NE(failure.find("segments 1, 3"), std::string::npos) << failure;
    EXPECT_NE(failure.find("killed by signal 9"), std::string::npos) << failure;

    auto r = runMppdl("runs --json --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    auto runs = nlohmann::json::parse(r.out);
    EXPECT_EQ(runs[0]["state"], "failed");
    EXPECT_EQ(runs[0]["epochs_done"], 1);

    r = runMppdl("resume 1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    r = runMppdl("runs --json --project p.mppdl");
    runs = nlohmann::json::parse(r.out);
    EXPECT_EQ(runs[0]["state"], "finished");
    EXPECT_EQ(runs[0]["epochs_done"], 3);
}

TEST_F(ProcessesCli, RendezvousRefusalsAreClear) {
    // A port some other program holds.
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ASSERT_EQ(listen(fd, 1), 0);
    socklen_t length = sizeof address;
    getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
    const std::string port = std::to_string(ntohs(address.sin_port));
    auto r = runMppdl(quick("mlp", 1, 500) +
                      " --no-project --strategy model-averaging --processes 2 --master 127.0.0.1:" + port);
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("cannot serve the run's rendezvous at 127.0.0.1:" + port), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("in use"), std::string::npos) << r.out;
    close(fd);

    setenv("MPPDL_CLUSTER_SECRET", "the run's secret", 1); // workers refuse to start without one
    r = runMppdl("worker --rank 1 --world 2 --master no-such-host.invalid:29500");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("does not resolve"), std::string::npos) << r.out;

    const auto start = std::chrono::steady_clock::now();
    r = runMppdl("worker --rank 1 --world 2 --master 127.0.0.1:" + port + " --timeout 2");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("cannot reach the run's master at 127.0.0.1:" + port), std::string::npos) << r.out;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);

    r = runMppdl("worker --rank 2 --world 2 --master 127.0.0.1:29500");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("rank 2 is not in a world of 2"), std::string::npos) << r.out;
    r = runMppdl("worker --rank 1 --world 2 --master 127.0.0.1");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("expected HOST:PORT"), std::string::npos) << r.out;
    r = runMppdl(quick("mlp", 1, 500) + " --no-project --strategy model-averaging --segments 2 --processes 3");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("3 processes for 2 segments"), std::string::npos) << r.out;
}

// Anyone who can reach a run's rendezvous can write to it, so a worker takes its run only signed
// with the cluster secret. A stranger (libtorch's c10d store and Gloo group, as any program may
// use them) serves a rendezvous and writes a run that would send the worker to a database of its
// choosing: unsigned, then signed with another secret. The worker refuses both and says why.
TEST_F(ProcessesCli, AWorkerRefusesAForgedRunConfiguration) {
    setenv("MPPDL_CLUSTER_SECRET", "the worker's secret", 1);
    const std::string forged = R"({"config":{"data":{"location":"pg:secrets","source":{"connection":)"
                               R"("host=elsewhere.invalid"}}}})";
    for (const bool otherSecret : {false, true}) {
        CliResult worker;
        std::thread runner;
        auto stranger = train::ProcessGroup::join(0, 2, "127.0.0.1:0", 30, [&](int port, const train::GlooInterface&) {
            runner = std::thread([&worker, port] {
                worker = runMppdl("worker --rank 1 --world 2 --master 127.0.0.1:" + std::to_string(port) +
                                  " --timeout 30");
            });
        });
        if (otherSecret)
            stranger->setSigned("mppdl/run", forged, "the stranger's secret");
        else
            stranger->set("mppdl/run", forged);
        runner.join();
        EXPECT_EQ(worker.code, 2) << worker.out;
        EXPECT_NE(worker.out.find(otherSecret ? "is not signed with this worker's cluster secret"
                                              : "is not signed: refused"),
                  std::string::npos)
            << worker.out;
        EXPECT_EQ(worker.out.find("elsewhere"), std::string::npos) << worker.out;
    }
    unsetenv("MPPDL_CLUSTER_SECRET");
}

TEST_F(ProcessesCli, TheClusterSecretIsKeptPrivate) {
    std::ofstream("secret") << "s3cret\n";
    fs::permissions("secret",
                    fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
    const std::string noSecret = "env -u MPPDL_CLUSTER_SECRET ";
    auto r = runMppdl("worker --rank 1 --world 2 --master 127.0.0.1:29500 --secret-file secret", noSecret);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("others may read it (mode 0644)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("chmod 600 secret"), std::string::npos) << r.out;
    r = runMppdl("worker --rank 1 --world 2 --master 127.0.0.1:29500", noSecret);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("no cluster secret"), std::string::npos) << r.out;
    // A run with workers on other hosts needs one before it waits for them; a run of this host
    // makes its own and hands it to its workers (the other tests' runs).
    r = runMppdl(quick("mlp", 1, 500) +
                     " --no-project --strategy model-averaging --segments 2 --processes 2 --local-processes 1",
                 noSecret);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("set MPPDL_CLUSTER_SECRET"), std::string::npos) << r.out;
}

TEST_F(ProcessesCli, TheInterfaceOfTheCollectivesIsChosenOrNamed) {
    // The master on loopback: loopback. An interface named: that one, or an error listing those
    // that have an address.
    auto chosen = train::chooseInterface("", "127.0.0.1", 29500);
    EXPECT_EQ(chosen.name, "lo");
    EXPECT_EQ(chosen.address, "127.0.0.1");
    chosen = train::chooseInterface("lo", "10.255.0.1", 29500);
    EXPECT_EQ(chosen.address, "127.0.0.1");
    EXPECT_EQ(chosen.why, "--interface lo");
    setenv("MPPDL_CLUSTER_SECRET", "the run's secret", 1);
    auto r = runMppdl("worker --rank 1 --world 2 --master 10.255.0.1:29500 --interface nosuch0 --timeout 2");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--interface nosuch0: the interface has no IPv4 address here (interfaces with one: lo "
                         "127.0.0.1"),
              std::string::npos)
        << r.out;
    r = runMppdl("worker --rank 1 --world 2 --master 10.255.0.1:29500 --timeout 2", "GLOO_SOCKET_IFNAME=nosuch1 ");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("GLOO_SOCKET_IFNAME=nosuch1: the interface has no IPv4 address here"), std::string::npos)
        << r.out;
    unsetenv("MPPDL_CLUSTER_SECRET");
}

namespace {

/// The inodes of the sockets process `pid` holds open.
std::set<std::string> socketInodes(pid_t pid) {
    std::set<std::string> out;
    std::error_code error;
    for (const auto& fd : fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", error)) {
        const auto target = fs::read_symlink(fd.path(), error).string();
        if (target.rfind("socket:[", 0) == 0)
            out.insert(target.substr(8, target.size() - 9));
    }
    return out;
}

/// `pid` and its children.
std::vector<pid_t> processTree(pid_t pid) {
    std::vector<pid_t> out{pid};
    for (const auto& entry : fs::directory_iterator("/proc")) {
        std::ifstream status(entry.path() / "status");
        std::string line;
        while (std::getline(status, line))
            if (line.rfind("PPid:", 0) == 0 && std::stoi(line.substr(5)) == pid)
                out.push_back(std::stoi(entry.path().filename().string()));
    }
    return out;
}

/// The local addresses ("0100007F:1F90", as /proc/net/tcp writes them) of the TCP sockets of
/// `pids`: those that listen, or with `any`, every one.
std::vector<std::string> socketAddresses(const std::vector<pid_t>& pids, bool any) {
    std::set<std::string> inodes;
    for (const pid_t p : pids)
        for (const auto& inode : socketInodes(p))
            inodes.insert(inode);
    std::vector<std::string> out;
    for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
        std::ifstream in(table);
        std::string line;
        std::getline(in, line); // the header
        while (std::getline(in, line)) {
            std::istringstream fields(line);
            std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
            fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >> timeout >> inode;
            if ((any || state == "0A") && inodes.count(inode)) // 0A: TCP_LISTEN
                out.push_back(local);
        }
    }
    return out;
}

} // namespace

// A run whose processes are all on this host meets in a private file (no TCPStore port, which
// libtorch 1.13 would open on every interface), and its collectives listen on loopback only.
TEST_F(ProcessesCli, ALocalRunListensOnLoopbackOnly) {
    Background training(quick("lenet5", 4, 3000) + " --no-project --json --strategy model-averaging --segments 2 "
                                                   "--processes 2",
                        "env TMPDIR=" + m_dir.string() + " ");
    ASSERT_TRUE(waitForProgressOfEpoch(training, 1)) << "never saw a progress event of epoch 1";
    const auto tree = processTree(training.pid());
    ASSERT_EQ(tree.size(), 2u) << "rank 0 and its one worker";
    // Whatever listens, and every connection (Gloo's pairs, once joined), is on loopback.
    const auto sockets = socketAddresses(tree, true);
    EXPECT_FALSE(sockets.empty()) << "the two processes' collectives are connected";
    const auto loopback = [](const std::string& address) {
        const auto host = address.substr(0, address.find(':'));
        return host == "0100007F" || host == "00000000000000000000000001000000" ||
               host == "0000000000000000FFFF00000100007F";
    };
    for (const auto& address : sockets)
        EXPECT_TRUE(loopback(address)) << "a local run has a socket on " << address << " (not loopback)";
    for (const auto& address : socketAddresses(tree, false))
        EXPECT_TRUE(loopback(address)) << "a local run listens on " << address << " (not loopback)";
    // The rendezvous file's directory is the user's only, and goes with the run.
    std::vector<fs::path> rendezvous;
    for (const auto& entry : fs::directory_iterator(m_dir))
        if (entry.path().filename().string().rfind("mppdl-rendezvous-", 0) == 0)
            rendezvous.push_back(entry.path());
    ASSERT_EQ(rendezvous.size(), 1u);
    EXPECT_EQ(fs::status(rendezvous[0]).permissions() & fs::perms::all, fs::perms::owner_all);
    EXPECT_EQ(training.wait(), 0);
    EXPECT_FALSE(fs::exists(rendezvous[0]));
}
