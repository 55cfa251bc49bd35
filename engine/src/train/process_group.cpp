// The processes of a run over c10d: a TCPStore or FileStore rendezvous and Gloo collectives (DESIGN.md:
// scale-out uses PyTorch's distributed engine, never a protocol of our own).

#include "mppdl/train/process_group.h"

#include "collectives.h"

#include "mppdl/core/error.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>
#include <sstream>

#include <arpa/inet.h>
#include <dlfcn.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mppdl::train {

namespace {

std::chrono::milliseconds milliseconds(double seconds) { return std::chrono::milliseconds(int64_t(seconds * 1000)); }


/// libtorch's message without its C++ backtrace: the first line.
std::string firstLine(const std::exception& e) {
    const auto* c10 = dynamic_cast<const c10::Error*>(&e);
    std::string what = c10 ? c10->what_without_backtrace() : e.what();
    return what.substr(0, what.find('\n'));
}

/// c10d logs to stderr through glog whatever the outcome (a refused bind, a retried connect); the
/// failures reach the user as our exceptions, so glog is kept to fatal messages. Looked up at run
/// time: glog comes with libtorch, and mppdl does not link it itself.
void quietenGlog() {
    if (auto* level = static_cast<int*>(dlsym(RTLD_DEFAULT, "_ZN3fLI17FLAGS_minloglevelE")))
        *level = std::max(*level, 3);
}

/// Whether `host` resolves: a misspelt master fails at once instead of after the timeout.
bool resolves(const std::string& host) {
    addrinfo* found = nullptr;
    const int error = getaddrinfo(host.c_str(), nullptr, nullptr, &found);
    if (found)
        freeaddrinfo(found);
    return error == 0;
}

/// The IPv4 addresses of this host's network interfaces, name and address, in the system's order.
std::vector<std::pair<std::string, std::string>> interfaceAddresses() {
    std::vector<std::pair<std::string, std::string>> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0)
        return out;
    for (const ifaddrs* a = list; a; a = a->ifa_next) {
        if (!a->ifa_addr || a->ifa_addr->sa_family != AF_INET)
            continue;
        char text[INET_ADDRSTRLEN] = "";
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(a->ifa_addr)->sin_addr, text, sizeof text);
        out.emplace_back(a->ifa_name, text);
    }
    freeifaddrs(list);
    return out;
}

/// "lo 127.0.0.1, eth0 10.0.0.5": for messages.
std::string listInterfaces() {
    std::string list;
    for (const auto& [name, address] : interfaceAddresses())
        list += (list.empty() ? "" : ", ") + name + " " + address;
    return list.empty() ? "none" : list;
}

/// The address this host reaches `host` from: the kernel's choice of source address for a UDP
/// socket connected to it (connecting a UDP socket sends nothing). "" when there is no route.
std::string sourceAddressFor(const std::string& host, int port) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_DGRAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(host.c_str(), std::to_string(port > 0 ? port : 9).c_str(), &hints, &found) != 0 || !found)
        return "";
    std::string address;
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
        sockaddr_in local{};
        socklen_t size = sizeof local;
        char text[INET_ADDRSTRLEN] = "";
        if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &size) == 0 &&
            inet_ntop(AF_INET, &local.sin_addr, text, sizeof text))
            address = text;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(found);
    return address;
}

bool isLoopback(const std::string& address) { return address.rfind("127.", 0) == 0; }

std::string hex(const unsigned char* bytes, size_t n) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < n; ++i) {
        out += digits[bytes[i] >> 4];
        out += digits[bytes[i] & 15];
    }
    return out;
}

std::string hmacSha256(const std::string& secret, const std::string& message) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (!HMAC(EVP_sha256(), secret.data(), int(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
              message.size(), digest, &size))
        throw InternalError("HMAC-SHA256 failed");
    return hex(digest, size);
}

/// How a signed value starts: its HMAC-SHA256 (hex) follows, then a newline and the value.
constexpr const char* kSignedPrefix = "mppdl-signed hmac-sha256 ";

} // namespace

std::string clusterSecret(const std::string& secretFile) {
    std::string secret;
    if (!secretFile.empty()) {
        struct stat info {};
        if (stat(secretFile.c_str(), &info) != 0)
            throw ConfigError("--secret-file " + secretFile + ": cannot read it: " + std::strerror(errno));
        if (info.st_mode & (S_IRWXG | S_IRWXO)) {
            char mode[8];
            std::snprintf(mode, sizeof mode, "%04o", unsigned(info.st_mode & 07777));
            throw ConfigError("--secret-file " + secretFile + ": others may read it (mode " + mode +
                              "): make it the owner's only with chmod 600 " + secretFile);
        }
        std::ifstream in(secretFile, std::ios::binary);
        std::ostringstream text;
        text << in.rdbuf();
        if (!in)
            throw ConfigError("--secret-file " + secretFile + ": cannot read it");
        secret = text.str();
        if (!secret.empty() && secret.back() == '\n')
            secret.pop_back();
        if (secret.empty())
            throw ConfigError("--secret-file " + secretFile + " is empty");
        return secret;
    }
    if (const char* env = std::getenv("MPPDL_CLUSTER_SECRET")) {
        secret = env;
        if (secret.empty())
            throw ConfigError("MPPDL_CLUSTER_SECRET is set but empty");
    }
    return secret;
}

std::string freshClusterSecret() {
    unsigned char bytes[32];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        throw InternalError("no random bytes for the run's secret (OpenSSL's RAND_bytes failed)");
    return hex(bytes, sizeof bytes);
}

GlooInterface chooseInterface(const std::string& interface, const std::string& masterHost, int masterPort) {
    GlooInterface out;
    const char* env = std::getenv("GLOO_SOCKET_IFNAME");
    // PyTorch's variable may list several interfaces; the first is the one it would use.
    const std::string fromEnv = env ? std::string(env).substr(0, std::string(env).find(',')) : "";
    out.name = !interface.empty() ? interface : fromEnv;
    out.why = !interface.empty() ? "--interface " + interface : "GLOO_SOCKET_IFNAME=" + fromEnv;
    if (!out.name.empty()) {
        for (const auto& [name, address] : interfaceAddresses())
            if (name == out.name) {
                out.address = address;
                return out;
            }
        throw ConfigError(out.why +
                          ": the interface has no IPv4 address here (interfaces with one: " + listInterfaces() + ")");
    }
    if (masterHost == "0.0.0.0") {
        // Rank 0 serving on every interface: the one other hosts reach, when there is one.
        std::vector<std::pair<std::string, std::string>> outside;
        for (const auto& entry : interfaceAddresses())
            if (!isLoopback(entry.second))
                outside.push_back(entry);
        if (outside.size() != 1)
            throw ConfigError("--master 0.0.0.0 serves on every interface: name the one the other hosts reach this "
                              "one on with --interface (interfaces: " +
                              listInterfaces() + ")");
        out.name = outside.front().first;
        out.address = outside.front().second;
        out.why = "the only interface besides loopback";
        return out;
    }
    out.address = sourceAddressFor(masterHost, masterPort);
    if (out.address.empty())
        throw ConfigError("no route from this host to the master " + masterHost +
                          " (name the interface to use with --interface; interfaces: " + listInterfaces() + ")");
    for (const auto& [name, address] : interfaceAddresses())
        if (address == out.address)
            out.name = name;
    out.why = "the route to the master " + masterHost;
    // A master reached over loopback is this host's own address: keep it, it is what peers see,
    // unless the master itself is on loopback.
    if (isLoopback(out.address) && !isLoopback(masterHost) && masterHost != "localhost")
        throw ConfigError("the master " + masterHost + " is reached over loopback (" + out.address +
                          "), which other hosts cannot reach: name the interface with --interface (interfaces: " +
                          listInterfaces() + ")");
    return out;
}

struct ProcessGroup::Impl : Collectives {
    int rankValue = 0, worldValue = 1, portValue = 0;
    std::string master;
    GlooInterface network;
    c10::intrusive_ptr<c10d::Store> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
    std::function<std::string()> failureContext;

    // Heartbeats: each process bumps a counter of its own in the store every second, over a
    // connection of its own, so that a failed collective can tell which processes went silent.
    c10::intrusive_ptr<c10d::Store> beatStore;
    std::thread beat;
    std::mutex beatMutex;
    std::condition_variable beatStop;
    bool stopping = false;

    ~Impl() override {
        {
            std::lock_guard<std::mutex> lock(beatMutex);
            stopping = true;
        }
        beatStop.notify_all();
        if (beat.joinable())
            beat.join();
    }

    static std::string aliveKey(int rank) { return "mppdl/alive/" + std::to_string(rank); }

    void startHeartbeat(const std::function<c10::intrusive_ptr<c10d::Store>()>& connect) {
        try {
            beatStore = connect();
        } catch (const std::exception&) {
            return; // no heartbeat: a failure then says less, nothing else changes
        }
        beat = std::thread([this] {
            std::unique_lock<std::mutex> lock(beatMutex);
            for (int64_t n = 1; !stopping; ++n) {
                lock.unlock();
                try {
                    const std::string value = std::to_string(n);
                    beatStore->set(aliveKey(rankValue), std::vector<uint8_t>(value.begin(), value.end()));
                } catch (const std::exception&) {
                    return; // the master is gone
                }
                lock.lock();
                beatStop.wait_for(lock, std::chrono::seconds(1), [this] { return stopping; });
            }
        });
    }

    /// Every process's heartbeat counter as the store holds it ("" for none yet, and for this
    /// process); empty when the store cannot tell (its master is gone).
    std::vector<std::string> heartbeats() {
        std::vector<std::string> out(static_cast<size_t>(worldValue));
        try {
            for (int r = 0; r < worldValue; ++r)
                if (r != rankValue && store->check({aliveKey(r)})) {
                    const auto bytes = store->get(aliveKey(r));
                    out[size_t(r)].assign(bytes.begin(), bytes.end());
                }
        } catch (const std::exception&) {
            return {};
        }
        return out;
    }

    /// The other processes whose heartbeat did not move over `probeSeconds` (or never came);
    /// empty when the store cannot tell (its master is gone).
    std::vector<int> silentRanks(double probeSeconds) {
        const auto before = heartbeats();
        std::this_thread::sleep_for(milliseconds(probeSeconds));
        const auto after = heartbeats();
        std::vector<int> silent;
        if (before.empty() || after.empty())
            return silent;
        for (int r = 0; r < worldValue; ++r)
            if (r != rankValue && (after[size_t(r)].empty() || after[size_t(r)] == before[size_t(r)]))
                silent.push_back(r);
        return silent;
    }

    int rank() const override { return rankValue; }
    int world() const override { return worldValue; }

    /// Why the others failed this process: rank 0's account of its workers when it has one, else
    /// the processes in `silent` (probed when not given); "" when nobody can tell.
    std::string whyOthersFailed(std::optional<std::vector<int>> silent = std::nullopt) {
        std::string context = failureContext ? failureContext() : std::string();
        if (context.empty()) {
            if (!silent)
                silent = silentRanks(ProcessGroup::kSilenceProbeSeconds);
            for (const int r : *silent)
                context += (context.empty() ? "process " : ", ") + std::to_string(r);
            if (!context.empty())
                context += " stopped answering (no heartbeat for " +
                           std::to_string(int(ProcessGroup::kSilenceProbeSeconds)) + " s)";
        }
        return context;
    }

    /// Waits for a collective; a peer that died or went silent becomes a DeviceError that says so.
    void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
        try {
            work->wait();
        } catch (const std::exception& e) {
            const std::string context = whyOthersFailed();
            throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) + ": the " +
                              what + " with the other processes failed: " +
                              (context.empty() ? "a process of the run died or stopped answering" : context) + " (" +
                              firstLine(e) + ")");
        }
    }

    double loadingSeconds = 3600;
    int awaits = 0; ///< awaitLoaded() calls so far, the same number in every process

    /// A barrier in the store: each process sets its key and polls for the others'. Heartbeats
    /// are compared every probe interval, so a process that stops answering fails it at once.
    void awaitLoaded() override {
        if (worldValue <= 1)
            return;
        const std::string prefix = "mppdl/loaded/" + std::to_string(awaits++) + "/";
        const auto key = [&](int r) { return prefix + std::to_string(r); };
        try {
            store->set(key(rankValue), std::vector<uint8_t>{'1'});
        } catch (const std::exception& e) {
            throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) +
                              ": the run's master at " + master + " is gone (" + firstLine(e) + ")");
        }
        const auto start = std::chrono::steady_clock::now();
        const auto probe = milliseconds(ProcessGroup::kSilenceProbeSeconds);
        auto lastProbe = start;
        std::vector<std::string> beats = heartbeats();
        for (;;) {
            std::vector<int> waiting;
            try {
                for (int r = 0; r < worldValue; ++r)
                    if (r != rankValue && !store->check({key(r)}))
                        waiting.push_back(r);
            } catch (const std::exception& e) {
                throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) +
                                  ": the run's master at " + master + " is gone (" + firstLine(e) + ")");
            }
            if (waiting.empty())
                return;
            const auto now = std::chrono::steady_clock::now();
            std::string list;
            for (const int r : waiting)
                list += (list.empty() ? "" : ", ") + std::to_string(r);
            if (now - start > milliseconds(loadingSeconds))
                throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) +
                                  ": process" + (waiting.size() > 1 ? "es " : " ") + list +
                                  " did not finish reading its rows within " + std::to_string(int(loadingSeconds)) +
                                  " s (--load-timeout)");
            if (now - lastProbe >= probe) {
                const auto current = heartbeats();
                if (current.empty() || beats.empty())
                    throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) +
                                      ": the run's master at " + master + " is gone");
                std::vector<int> silent;
                for (const int r : waiting)
                    if (current[size_t(r)].empty() || current[size_t(r)] == beats[size_t(r)])
                        silent.push_back(r);
                if (!silent.empty()) {
                    const std::string context = whyOthersFailed(silent);
                    throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) +
                                      ": waiting for the others to read their rows failed: " + context);
                }
                beats = current;
                lastProbe = now;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }

    void allreduce(torch::Tensor& tensor, bool max) override {
        std::vector<torch::Tensor> tensors{tensor};
        c10d::AllreduceOptions options;
        options.reduceOp = max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
        wait(gloo->allreduce(tensors, options), "all-reduce");
    }

    void broadcast(torch::Tensor& tensor, int root) override {
        std::vector<torch::Tensor> tensors{tensor};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        wait(gloo->broadcast(tensors, options), "broadcast");
    }

    std::vector<std::string> allgather(const std::string& bytes) override {
        // Sizes first, then every blob padded to the largest: Gloo gathers equal shapes.
        auto size = torch::tensor({int64_t(bytes.size())}, torch::kLong);
        std::vector<std::vector<torch::Tensor>> sizes(1);
        for (int r = 0; r < worldValue; ++r)
            sizes[0].push_back(torch::zeros({1}, torch::kLong));
        std::vector<torch::Tensor> mine{size};
        wait(gloo->allgather(sizes, mine), "gathering of sizes");
        int64_t largest = 0;
        for (const auto& s : sizes[0])
            largest = std::max(largest, s.item<int64_t>());
        auto padded = torch::zeros({std::max<int64_t>(1, largest)}, torch::kUInt8);
        std::memcpy(padded.data_ptr<uint8_t>(), bytes.data(), bytes.size());
        std::vector<std::vector<torch::Tensor>> blobs(1);
        for (int r = 0; r < worldValue; ++r)
            blobs[0].push_back(torch::zeros_like(padded));
        std::vector<torch::Tensor> input{padded};
        wait(gloo->allgather(blobs, input), "gathering of state");
        std::vector<std::string> out;
        for (int r = 0; r < worldValue; ++r)
            out.emplace_back(reinterpret_cast<const char*>(blobs[0][size_t(r)].data_ptr<uint8_t>()),
                             size_t(sizes[0][size_t(r)].item<int64_t>()));
        return out;
    }
};

ProcessGroup::ProcessGroup(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
ProcessGroup::~ProcessGroup() = default;

int ProcessGroup::rank() const { return m_impl->rankValue; }
int ProcessGroup::world() const { return m_impl->worldValue; }
int ProcessGroup::port() const { return m_impl->portValue; }
Collectives* ProcessGroup::collectives() const { return m_impl.get(); }

void ProcessGroup::setFailureContext(std::function<std::string()> context) {
    m_impl->failureContext = std::move(context);
}

namespace {

/// Where a run's processes meet: c10d's TCPStore served by rank 0 at HOST:PORT, or c10d's
/// FileStore in a file (`file://PATH`, PyTorch's init_method for processes sharing a filesystem),
/// which opens no port at all.
struct Rendezvous {
    std::string path; ///< the file; empty for a TCPStore
    std::string host;
    int port = 0;
};

constexpr const char* kFileScheme = "file://";

Rendezvous parseMaster(const std::string& master, int rank) {
    Rendezvous out;
    if (master.rfind(kFileScheme, 0) == 0) {
        out.path = master.substr(std::strlen(kFileScheme));
        if (out.path.empty() || out.path.front() != '/')
            throw ConfigError("--master '" + master + "': a file rendezvous is file:///ABSOLUTE/PATH");
        return out;
    }
    const auto colon = master.rfind(':');
    int port = -1;
    try {
        size_t used = 0;
        if (colon != std::string::npos && colon > 0)
            port = std::stoi(master.substr(colon + 1), &used);
        if (colon + 1 + used != master.size())
            port = -1;
    } catch (const std::exception&) {
        port = -1;
    }
    if (port < 0 || port > 65535 || (port == 0 && rank != 0))
        throw ConfigError("--master '" + master + "': expected HOST:PORT, such as 10.0.0.5:29500");
    out.host = master.substr(0, colon);
    out.port = port;
    if (!resolves(out.host))
        throw ConfigError("--master '" + master + "': the host '" + out.host + "' does not resolve to an address");
    return out;
}

} // namespace

std::unique_ptr<ProcessGroup> ProcessGroup::join(int rank, int world, const std::string& master, double timeoutSeconds,
                                                 const Listening& listening, const std::string& interface) {
    if (world < 1)
        throw ConfigError("a run needs at least one process, got a world of " + std::to_string(world));
    if (rank < 0 || rank >= world)
        throw ConfigError("rank " + std::to_string(rank) + " is not in a world of " + std::to_string(world) +
                          " processes (ranks 0 to " + std::to_string(world - 1) + ")");
    const Rendezvous where = parseMaster(master, rank);
    const bool file = !where.path.empty();
    // Loopback for a run on one host; otherwise the interface chosen, never loopback (peers on
    // other hosts would be told to connect to themselves).
    const bool local = file || where.host == "127.0.0.1" || where.host == "localhost" || where.host == "::1";
    GlooInterface network;
    if (local && (!file || interface.empty()))
        network = GlooInterface{"lo", "127.0.0.1",
                                file ? "a rendezvous in a file of this host" : "a master on loopback"};
    else
        network = chooseInterface(interface, file ? "127.0.0.1" : where.host, where.port);
    quietenGlog();

    auto impl = std::make_unique<Impl>();
    impl->rankValue = rank;
    impl->worldValue = world;
    impl->master = master;
    // The store for the rendezvous, and a second connection for the heartbeats.
    const auto connect = [&](bool serve) -> c10::intrusive_ptr<c10d::Store> {
        if (file) {
            // -1: no count of workers, so no instance deletes the file; its owner removes it.
            auto store = c10::make_intrusive<c10d::FileStore>(where.path, -1);
            store->setTimeout(milliseconds(timeoutSeconds));
            return store;
        }
        c10d::TCPStoreOptions options;
        options.port = uint16_t(impl->portValue > 0 ? impl->portValue : where.port); // the port chosen for 0
        options.isServer = serve;
        options.numWorkers = size_t(world);
        options.waitWorkers = false; // the Gloo rendezvous below waits for everyone
        options.timeout = milliseconds(timeoutSeconds);
        return c10::make_intrusive<c10d::TCPStore>(where.host, options);
    };
    try {
        impl->store = connect(rank == 0);
    } catch (const std::exception& e) {
        if (file)
            throw DeviceError("cannot use the run's rendezvous file " + where.path + ": " + firstLine(e));
        if (rank == 0)
            throw DeviceError("cannot serve the run's rendezvous at " + master +
                              " (is the port in use? choose "
                              "another with --master HOST:PORT): " +
                              firstLine(e));
        throw DeviceError("cannot reach the run's master at " + master + " within " +
                          std::to_string(int(timeoutSeconds)) +
                          " s (is rank 0 running there, and the port open?): " + firstLine(e));
    }
    if (!file)
        impl->portValue = static_cast<c10d::TCPStore&>(*impl->store).getPort();
    impl->network = network;
    if (rank == 0 && listening)
        listening(impl->portValue, network);
    try {
        auto glooOptions = c10d::ProcessGroupGloo::Options::create(milliseconds(timeoutSeconds));
        glooOptions->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(network.address));
        impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, rank, world, glooOptions);
        if (world > 1)
            impl->startHeartbeat([&] { return connect(false); });
    } catch (const std::exception& e) {
        throw DeviceError("process " + std::to_string(rank) + " of " + std::to_string(world) +
                          " could not connect to the others from " + network.address + " (" + network.name + ", " +
                          network.why + "): " + firstLine(e));
    }
    return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

const GlooInterface& ProcessGroup::network() const { return m_impl->network; }

std::vector<int> ProcessGroup::silentRanks(double probeSeconds) { return m_impl->silentRanks(probeSeconds); }

void ProcessGroup::setLoadingTimeout(double seconds) { m_impl->loadingSeconds = seconds; }

void ProcessGroup::set(const std::string& key, const std::string& value) {
    m_impl->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

bool ProcessGroup::has(const std::string& key) { return m_impl->store->check({key}); }

void ProcessGroup::setSigned(const std::string& key, const std::string& value, const std::string& secret) {
    set(key, kSignedPrefix + hmacSha256(secret, value) + "\n" + value);
}

std::string ProcessGroup::getSigned(const std::string& key, const std::string& secret) {
    const std::string stored = get(key);
    const std::string from = "the run's configuration from the master at " + m_impl->master;
    const std::string prefix = kSignedPrefix;
    const auto newline = stored.find('\n');
    if (stored.compare(0, prefix.size(), prefix) != 0 || newline == std::string::npos)
        throw ConfigError(from + " is not signed: refused (is it an mppdl run of this version? anyone who can "
                                 "reach the port can write there)");
    const std::string claimed = stored.substr(prefix.size(), newline - prefix.size());
    const std::string value = stored.substr(newline + 1);
    const std::string expected = hmacSha256(secret, value);
    if (claimed.size() != expected.size() || CRYPTO_memcmp(claimed.data(), expected.data(), expected.size()) != 0)
        throw ConfigError(from + " is not signed with this worker's cluster secret (MPPDL_CLUSTER_SECRET or "
                                 "--secret-file, the same on every host): refused");
    return value;
}

std::string ProcessGroup::get(const std::string& key) {
    try {
        const auto bytes = m_impl->store->get(key);
        return std::string(bytes.begin(), bytes.end());
    } catch (const std::exception& e) {
        throw DeviceError("process " + std::to_string(m_impl->rankValue) + ": no '" + key + "' from the master at " +
                          m_impl->master + ": " + firstLine(e));
    }
}

} // namespace mppdl::train
