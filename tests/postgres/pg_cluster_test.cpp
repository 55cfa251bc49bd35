// A cluster of three hosts, each a network namespace of its own joined to the others through a
// bridge by a rate-limited veth pair (tc tbf): rank 0 in one, a worker in each of the others,
// each reading only its own rows. The run trains what the thread pool trains; a worker's link
// taken down mid-run fails the run within its timeout, and `mppdl resume` completes it once the
// link is back. Needs root and iproute2 (skipped otherwise, saying so); the namespaces, the
// bridge and the links are removed afterwards, also when a test fails.

#include "support/background.h"
#include "support/json_events.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;
constexpr int kHosts = 3;

int sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

/// The hosts: namespaces mppdl_PID_hI at 10.77.N.(I+1)/24, N from the pid so that concurrent
/// tests do not meet; the host end of host I's link is mvPID_I, enslaved to the bridge mbPID.
class ClusterCli : public ScratchDirTest {
protected:
    void SetUp() override {
        ScratchDirTest::SetUp();
        if (geteuid() != 0 || sh("ip -V") != 0 || sh("tc -V") != 0)
            GTEST_SKIP() << "needs root, ip and tc (iproute2) to make network namespaces";
        const std::string pid = std::to_string(getpid());
        m_prefix = "mppdl_" + pid + "_h";
        m_bridge = "mb" + pid;
        m_link = "mv" + pid + "_";
        m_subnet = "10.77." + std::to_string(20 + getpid() % 200) + ".";
        bool ok = sh("ip link add " + m_bridge + " type bridge") == 0 && sh("ip link set " + m_bridge + " up") == 0;
        for (int i = 0; ok && i < kHosts; ++i) {
            const std::string ns = host(i), link = m_link + std::to_string(i);
            ok = sh("ip netns add " + ns) == 0 &&
                 sh("ip link add " + link + " type veth peer name eth0 netns " + ns) == 0 &&
                 sh("ip link set " + link + " master " + m_bridge + " up") == 0 &&
                 sh("ip netns exec " + ns + " ip addr add " + address(i) + "/24 dev eth0") == 0 &&
                 sh("ip netns exec " + ns + " ip link set eth0 up") == 0 &&
                 sh("ip netns exec " + ns + " ip link set lo up") == 0 &&
                 // 200 Mbit/s each way at the host's end of its link.
                 sh("tc qdisc add dev " + link + " root tbf rate 200mbit burst 256kb latency 100ms") == 0;
        }
        if (!ok)
            GTEST_SKIP() << "could not make the namespaces, bridge and links (no netns or bridge support here?)";
        setenv("MPPDL_CLUSTER_SECRET", "the cluster's secret", 1);
    }
    void TearDown() override {
        if (!m_prefix.empty()) {
            for (int i = 0; i < kHosts; ++i) {
                sh("ip netns pids " + host(i) + " | xargs -r kill -9");
                sh("ip netns delete " + host(i)); // takes its end of the link, and so the link
            }
            sh("ip link delete " + m_bridge);
        }
        ScratchDirTest::TearDown();
    }
    std::string host(int i) const { return m_prefix + std::to_string(i); }
    std::string address(int i) const { return m_subnet + std::to_string(i + 1); }
    std::string in(int i) const { return "ip netns exec " + host(i) + " "; }
    std::string master() const { return address(0) + ":29511"; }
    std::string link(int i) const { return m_link + std::to_string(i); }
    std::string worker(int rank, int timeout) const {
        return "worker --rank " + std::to_string(rank) + " --world " + std::to_string(kHosts) + " --master " +
               master() + " --timeout " + std::to_string(timeout);
    }

    std::string m_prefix, m_bridge, m_link, m_subnet;
};

std::string run(const std::string& arch, int epochs, int limit) {
    return "train --data " + kFmnist + " --arch " + arch + " --epochs " + std::to_string(epochs) + " --limit " +
           std::to_string(limit) + " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 5 --threads 2" +
           " --strategy model-averaging --segments " + std::to_string(kHosts) + " --json";
}

} // namespace

TEST_F(ClusterCli, ThreeHostsTrainWhatThreadsTrainEachReadingItsOwnRows) {
    const auto threads = runMppdl(run("mlp", 2, 3000) + " --no-project");
    ASSERT_EQ(threads.code, 0) << threads.out;
    std::vector<std::unique_ptr<Background>> workers;
    const std::string hosts = " --processes 3 --local-processes 1 --master " + master() + " --timeout 60";
    auto rank0 = std::make_unique<Background>(run("mlp", 2, 3000) + " --no-project" + hosts, in(0));
    for (int rank = 1; rank < kHosts; ++rank)
        workers.push_back(std::make_unique<Background>(worker(rank, 60), in(rank)));
    std::string out;
    while (auto line = rank0->line())
        out += *line + "\n";
    ASSERT_EQ(rank0->wait(), 0) << out;
    for (auto& w : workers)
        EXPECT_EQ(w->wait(), 0);
    const auto one = finishedEvent(threads.out), three = finishedEvent(out);
    EXPECT_NEAR(three["test_loss"].get<double>(), one["test_loss"].get<double>(), 1e-6);
    EXPECT_NEAR(three["test_accuracy"].get<double>(), one["test_accuracy"].get<double>(), 1e-9);
    ASSERT_EQ(three["ranks"].size(), size_t(kHosts)) << out;
    int64_t rows = 0;
    for (const auto& r : three["ranks"]) {
        EXPECT_GT(r["rows_read"].get<int64_t>(), 0);
        rows += r["rows_read"].get<int64_t>();
    }
    EXPECT_EQ(rows, 3000 + 10000) << "every training and test row read once, by one host";
}

TEST_F(ClusterCli, AWorkerWhoseLinkGoesDownFailsTheRunWhichResumesOnceItIsBack) {
    constexpr int kTimeout = 15;
    // The run records its processes; resume takes where they are.
    const std::string hosts = " --local-processes 1 --master " + master() + " --timeout " + std::to_string(kTimeout);
    std::string failure;
    double seconds = 0;
    {
        Background rank0(run("fmnist_cnn", 3, 6000) + " --project p.mppdl --processes 3" + hosts, in(0));
        Background worker1(worker(1, kTimeout), in(1)), worker2(worker(2, kTimeout), in(2));
        ASSERT_TRUE(waitForProgressOfEpoch(rank0, 2)) << "never saw a progress event of epoch 2";
        ASSERT_EQ(sh("ip link set " + link(2) + " down"), 0);
        const auto down = std::chrono::steady_clock::now();
        while (auto line = rank0.line())
            if (line->find("\"event\":\"failed\"") != std::string::npos)
                failure = *line;
        EXPECT_NE(rank0.wait(), 0);
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - down).count();
        worker1.kill9();
        worker2.kill9();
    }
    EXPECT_LT(seconds, kTimeout + 15.0) << failure;
    EXPECT_NE(failure.find("\"event\":\"failed\""), std::string::npos) << failure;
    // Named by the heartbeat it stopped sending: the rank and its segment.
    EXPECT_NE(failure.find("process 2 (training segment 2) stopped answering"), std::string::npos) << failure;
    std::cerr << "the link went down; the run failed " << seconds << " s later: " << failure << "\n";

    ASSERT_EQ(sh("ip link set " + link(2) + " up"), 0);
    auto runs = nlohmann::json::parse(runMppdl("runs --json --project p.mppdl").out);
    EXPECT_EQ(runs[0]["state"], "failed");
    EXPECT_EQ(runs[0]["epochs_done"], 1);
    {
        Background resumed("resume 1 --project p.mppdl --json" + hosts, in(0));
        Background worker1(worker(1, kTimeout), in(1)), worker2(worker(2, kTimeout), in(2));
        std::string out;
        while (auto line = resumed.line())
            out += *line + "\n";
        ASSERT_EQ(resumed.wait(), 0) << out;
    }
    runs = nlohmann::json::parse(runMppdl("runs --json --project p.mppdl").out);
    EXPECT_EQ(runs[0]["state"], "finished");
    EXPECT_EQ(runs[0]["epochs_done"], 3);
}
