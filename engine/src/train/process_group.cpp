// The processes of a run over c10d: TCPStore rendezvous and Gloo collectives (DESIGN.md:
// scale-out uses PyTorch's distributed engine, never a protocol of our own).

#include "mppdl/train/process_group.h"

#include "collectives.h"

#include "mppdl/core/error.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>

#include <dlfcn.h>
#include <netdb.h>

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

} // namespace

struct ProcessGroup::Impl : Collectives {
    int rankValue = 0, worldValue = 1, portValue = 0;
    std::string master;
    c10::intrusive_ptr<c10d::TCPStore> store;
    c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
    std::function<std::string()> failureContext;

    int rank() const override { return rankValue; }
    int world() const override { return worldValue; }

    /// Waits for a collective; a peer that died or went silent becomes a DeviceError that says so.
    void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
        try {
            work->wait();
        } catch (const std::exception& e) {
            const std::string context = failureContext ? failureContext() : std::string();
            throw DeviceError("process " + std::to_string(rankValue) + " of " + std::to_string(worldValue) + ": the " +
                              what + " with the other processes failed: " +
                              (context.empty() ? "a process of the run died or stopped answering" : context) + " (" +
                              firstLine(e) + ")");
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

std::unique_ptr<ProcessGroup> ProcessGroup::join(int rank, int world, const std::string& master, double timeoutSeconds,
                                                 const std::function<void(int port)>& listening) {
    if (world < 1)
        throw ConfigError("a run needs at least one process, got a world of " + std::to_string(world));
    if (rank < 0 || rank >= world)
        throw ConfigError("rank " + std::to_string(rank) + " is not in a world of " + std::to_string(world) +
                          " processes (ranks 0 to " + std::to_string(world - 1) + ")");
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
    const std::string host = master.substr(0, colon);
    if (!resolves(host))
        throw ConfigError("--master '" + master + "': the host '" + host + "' does not resolve to an address");
    quietenGlog();

    auto impl = std::make_unique<Impl>();
    impl->rankValue = rank;
    impl->worldValue = world;
    impl->master = master;
    c10d::TCPStoreOptions options;
    options.port = uint16_t(port);
    options.isServer = rank == 0;
    options.numWorkers = size_t(world);
    options.waitWorkers = false; // the Gloo rendezvous below waits for everyone
    options.timeout = milliseconds(timeoutSeconds);
    try {
        impl->store = c10::make_intrusive<c10d::TCPStore>(host, options);
    } catch (const std::exception& e) {
        if (rank == 0)
            throw DeviceError("cannot serve the run's rendezvous at " + master +
                              " (is the port in use? choose "
                              "another with --master HOST:PORT): " +
                              firstLine(e));
        throw DeviceError("cannot reach the run's master at " + master + " within " +
                          std::to_string(int(timeoutSeconds)) +
                          " s (is rank 0 running there, and the port open?): " + firstLine(e));
    }
    impl->portValue = impl->store->getPort();
    if (rank == 0 && listening)
        listening(impl->portValue);
    try {
        auto glooOptions = c10d::ProcessGroupGloo::Options::create(milliseconds(timeoutSeconds));
        // Loopback for a run on one host; otherwise the address this host reaches the master from.
        const bool local = host == "127.0.0.1" || host == "localhost" || host == "::1";
        glooOptions->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                             : c10d::ProcessGroupGloo::createDefaultDevice());
        impl->gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl->store, rank, world, glooOptions);
    } catch (const std::exception& e) {
        throw DeviceError("process " + std::to_string(rank) + " of " + std::to_string(world) +
                          " could not connect to the others: " + firstLine(e));
    }
    return std::unique_ptr<ProcessGroup>(new ProcessGroup(std::move(impl)));
}

void ProcessGroup::set(const std::string& key, const std::string& value) {
    m_impl->store->set(key, std::vector<uint8_t>(value.begin(), value.end()));
}

bool ProcessGroup::has(const std::string& key) { return m_impl->store->check({key}); }

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
