// A cluster of hosts, each a network namespace of its own joined to the others through a bridge
// by a rate-limited veth pair (tc tbf): PostgreSQL on one (packaging/pg-test-server.sh, listening
// on that host's address), rank 0 on another, a worker on each of the others, each rank reading
// only its own shards of the table over the network. The run trains what the thread pool trains;
// a rank whose shard takes longer to come than --timeout is waited for (--load-timeout); a
// worker's link taken down mid-run fails the run within its timeout, and `mppdl resume` completes
// it once the link is back. Needs root and iproute2 (skipped otherwise, saying so); the server,
// the namespaces, the bridge and the links are removed afterwards, also when a test fails.

#include "postgres/pg_test_db.h"
#include "support/background.h"
#include "support/json_events.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;
constexpr int kHosts = 3;             ///< the hosts that train: rank 0 on host 0
constexpr int kDatabaseHost = kHosts; ///< PostgreSQL's host
constexpr int kTableRows = 3000;

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
        // The bridge has an address too: this test reaches the database host through it.
        bool ok = sh("ip link add " + m_bridge + " type bridge") == 0 && sh("ip link set " + m_bridge + " up") == 0 &&
                  sh("ip addr add " + m_subnet + "254/24 dev " + m_bridge) == 0;
        for (int i = 0; ok && i <= kDatabaseHost; ++i) {
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
        stopDatabase();
        if (!m_prefix.empty()) {
            for (int i = 0; i <= kDatabaseHost; ++i) {
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

    /// Starts PostgreSQL on the database host with a table of kTableRows Fashion-MNIST rows
    /// (pixels real[], id); returns the keyword string without the password, "" on failure.
    std::string startDatabase() {
        const std::string env = path("pg.env"), pid = path("pg.pid");
        m_server = fork();
        if (m_server == 0) {
            // The script stops the server when its command (this sleep) ends.
            const std::string command = in(kDatabaseHost) +
                                        "env -u MPPDL_TEST_PG MPPDL_PG_LISTEN=" + address(kDatabaseHost) +
                                        " MPPDL_PG_CLIENTS=" + m_subnet + "0/24 " + MPPDL_SOURCE_DIR +
                                        "/packaging/pg-test-server.sh sh -c 'echo \"$MPPDL_TEST_PG\" > " + env +
                                        ".part && mv " + env + ".part " + env + " && echo $$ > " + pid +
                                        " && exec sleep 900' >" + path("pg.log") + " 2>&1";
            execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        for (int i = 0; i < 600 && !std::filesystem::exists(env); ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::ifstream envFile(env);
        std::string conn;
        std::getline(envFile, conn);
        std::ifstream pidIn(pid);
        pidIn >> m_sleeper;
        if (conn.empty())
            return "";
        mppdl::data::PgConnection db(conn + " password=mppdl-test", "the cluster's database");
        createFashionTable(db, "fashion", "real[]", fashionRows(kTableRows).train);
        setenv("PGPASSWORD", "mppdl-test", 1);
        return conn;
    }
    void stopDatabase() {
        if (m_server <= 0)
            return;
        if (m_sleeper > 0)
            kill(m_sleeper, SIGTERM); // the script then stops the server and removes its files
        int status = 0;
        for (int i = 0; i < 300 && waitpid(m_server, &status, WNOHANG) == 0; ++i)
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (waitpid(m_server, &status, WNOHANG) == 0) {
            kill(m_server, SIGKILL);
            waitpid(m_server, &status, 0);
        }
        m_server = -1;
    }

    std::string m_prefix, m_bridge, m_link, m_subnet;
    pid_t m_server = -1, m_sleeper = -1;
};

std::string run(const std::string& arch, int epochs, int limit) {
    return "train --data " + kFmnist + " --arch " + arch + " --epochs " + std::to_string(epochs) + " --limit " +
           std::to_string(limit) + " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 5 --threads 2" +
           " --strategy model-averaging --segments " + std::to_string(kHosts) + " --json";
}

/// A run of the table: 3 segments by the database's distribution (hash of id), each rank reading
/// its own segment's shard.
std::string tableRun(const std::string& conn, int epochs, const std::string& arch = "mlp") {
    return "train --data pg:fashion --conn '" + conn + "' --shape 1,28,28 --id id --distribute-by database " +
           "--distributed-by id --arch " + arch + " --epochs " + std::to_string(epochs) +
           " --batch-size 64 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 5 --threads 2" +
           " --strategy model-averaging --segments " + std::to_string(kHosts) + " --json --no-project";
}

} // namespace

TEST_F(ClusterCli, ThreeHostsTrainWhatThreadsTrainEachReadingItsOwnShard) {
    const std::string conn = startDatabase();
    ASSERT_FALSE(conn.empty()) << "PostgreSQL did not start on the database host: see " << path("pg.log");
    const auto threads = runMppdl(tableRun(conn, 2));
    ASSERT_EQ(threads.code, 0) << threads.out;
    std::vector<std::unique_ptr<Background>> workers;
    const std::string hosts = " --processes 3 --local-processes 1 --master " + master() + " --timeout 60";
    auto rank0 = std::make_unique<Background>(tableRun(conn, 2) + hosts, in(0));
    for (int rank = 1; rank < kHosts; ++rank)
        workers.push_back(std::make_unique<Background>(worker(rank, 60), in(rank)));
    std::string out;
    while (auto line = rank0->line())
        out += *line + "\n";
    ASSERT_EQ(rank0->wait(), 0) << out;
    for (auto& w : workers)
        EXPECT_EQ(w->wait(), 0);
    const auto one = finishedEvent(threads.out), three = finishedEvent(out);
    EXPECT_NEAR(three["val_loss"].get<double>(), one["val_loss"].get<double>(), 1e-6);
    EXPECT_NEAR(three["val_accuracy"].get<double>(), one["val_accuracy"].get<double>(), 1e-9);
    ASSERT_EQ(three["ranks"].size(), size_t(kHosts)) << out;
    int64_t rows = 0;
    for (const auto& r : three["ranks"]) {
        EXPECT_GT(r["rows_read"].get<int64_t>(), 0);
        rows += r["rows_read"].get<int64_t>();
    }
    EXPECT_EQ(rows, kTableRows) << "every row of the table read once, by one host";
    std::cerr << "three hosts: val_loss " << three["val_loss"] << ", val_accuracy " << three["val_accuracy"]
              << "; the thread pool: val_loss " << one["val_loss"] << ", val_accuracy " << one["val_accuracy"] << "\n";
}

// Host 2's link slowed to a few Mbit/s: its shard takes longer to come than --timeout, and the
// others wait for it (--load-timeout) instead of failing their first collective.
TEST_F(ClusterCli, AShardSlowerThanTheTimeoutIsWaitedFor) {
    const std::string conn = startDatabase();
    ASSERT_FALSE(conn.empty()) << "PostgreSQL did not start on the database host: see " << path("pg.log");
    ASSERT_EQ(sh("tc qdisc change dev " + link(2) + " root tbf rate 4mbit burst 32kb latency 400ms"), 0);
    constexpr int kTimeout = 4;
    const std::string hosts = " --processes 3 --local-processes 1 --master " + master() + " --timeout " +
                              std::to_string(kTimeout) + " --load-timeout 120";
    const auto start = std::chrono::steady_clock::now();
    Background rank0(tableRun(conn, 1, "lenet5") + hosts, in(0));
    Background worker1(worker(1, kTimeout) + " --load-timeout 120", in(1));
    Background worker2(worker(2, kTimeout) + " --load-timeout 120", in(2));
    std::string out;
    double seconds = 0;
    bool restored = false;
    while (auto line = rank0.line()) {
        out += *line + "\n";
        // Loaded everywhere: the link's speed is given back, so that training's collectives are
        // held to --timeout over a link as fast as the others (what is tested is the loading).
        if (!restored && line->find("\"event\":\"started\"") != std::string::npos) {
            seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            restored = sh("tc qdisc change dev " + link(2) + " root tbf rate 200mbit burst 256kb latency 100ms") == 0;
            EXPECT_TRUE(restored) << "could not give host 2's link its speed back";
        }
    }
    ASSERT_EQ(rank0.wait(), 0) << out;
    EXPECT_EQ(worker1.wait(), 0);
    EXPECT_EQ(worker2.wait(), 0);
    EXPECT_GT(seconds, 2.0 * kTimeout) << "host 2's shard came too fast to show anything";
    std::cerr << "a run whose slowest shard took longer than --timeout " << kTimeout << " s started training after "
              << seconds << " s\n";
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
