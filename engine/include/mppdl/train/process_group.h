#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace mppdl::train {

class Collectives;

/// The network interface a process's collectives (Gloo) use, and why it was chosen.
struct GlooInterface {
    std::string name;    ///< "eth0"
    std::string address; ///< its IPv4 address, which the other processes connect to
    std::string why;     ///< "--interface eth0", "GLOO_SOCKET_IFNAME=eth0", "the route to the master 10.0.0.5"
};

/// The interface of a process of a run whose master is `masterHost`: `interface` (--interface)
/// when given, else $GLOO_SOCKET_IFNAME (PyTorch's variable: its first name), else the one whose
/// address this host reaches the master from (for a master serving 0.0.0.0: the only interface
/// besides loopback). Never loopback for a master elsewhere. ConfigError, listing the interfaces
/// that have an address, when the one named has none or none fits.
GlooInterface chooseInterface(const std::string& interface, const std::string& masterHost, int masterPort);

/// The secret that signs a run's configuration for its workers (HMAC-SHA256): the contents of
/// `secretFile` when given (refused unless only its owner may read it, mode 0600 or stricter;
/// one trailing newline dropped), else $MPPDL_CLUSTER_SECRET; "" when neither is set.
/// ConfigError for a file that cannot be read or is open to others, or an empty secret.
std::string clusterSecret(const std::string& secretFile);
/// A fresh random secret (32 bytes from OpenSSL's generator, as hex): a run whose processes are
/// all on this host hands it to its workers itself.
std::string freshClusterSecret();

/// The processes of one run, joined through PyTorch's c10d: a TCPStore rendezvous at the master
/// (rank 0 serves it), or a FileStore for processes of one host, and a Gloo process group whose collectives merge the
/// segments each process trains. The same object serves processes on one host (`--processes N`) and on several
/// (`mppdl worker --master HOST:PORT`).
class ProcessGroup {
public:
    ~ProcessGroup();

    /// Joins as `rank` of `world` processes. Rank 0 serves the rendezvous at `master` ("HOST:PORT";
    /// port 0 picks a free one, see port()); the others connect to it. libtorch 1.13's TCPStore
    /// listens on every interface whatever HOST is; `master` "file:///PATH" instead meets in a file
    /// (c10d's FileStore: no port at all, for processes of one host or of a shared filesystem;
    /// the file must not hold an earlier run's keys, and whoever made it removes it). Waits up to `timeoutSeconds`
    /// for everyone, which is also how long a collective waits for a silent peer. Throws
    /// ConfigError for a malformed address or rank, DeviceError when the port is taken or the
    /// master cannot be reached in time.
    /// `listening` (rank 0) is called with the port and this process's interface once the
    /// rendezvous is served and before the others are waited for: the moment to start workers.
    /// `interface`: see chooseInterface() (a master on loopback uses loopback).
    using Listening = std::function<void(int port, const GlooInterface& network)>;
    static std::unique_ptr<ProcessGroup> join(int rank, int world, const std::string& master,
                                              double timeoutSeconds = 30, const Listening& listening = {},
                                              const std::string& interface = "");

    int rank() const;
    int world() const;
    /// The rendezvous port (the one chosen when asked for port 0).
    int port() const;
    /// The interface this process's collectives use.
    const GlooInterface& network() const;
    /// The other processes whose heartbeat (a counter each bumps in the store every second) did
    /// not move over `probeSeconds`: after a failed collective, those that went silent. Empty when
    /// the store cannot tell.
    std::vector<int> silentRanks(double probeSeconds);
    /// How long a failed collective watches the heartbeats to tell which processes went silent.
    static constexpr double kSilenceProbeSeconds = 3;
    /// How long a process waits for the others to finish reading their rows before the first
    /// collective after the reading (default an hour; the join timeout is for everything else).
    /// A process that stops answering meanwhile still fails the run within kSilenceProbeSeconds.
    void setLoadingTimeout(double seconds);

    /// A value every process can read (the run's configuration, from rank 0); get() waits for it.
    void set(const std::string& key, const std::string& value);
    std::string get(const std::string& key);
    /// Whether some process has set `key` (does not wait).
    bool has(const std::string& key);
    /// A value stored with its HMAC-SHA256 under `secret`, and read back only when that checks:
    /// anyone who can reach the rendezvous can write to it, so a worker takes its run from it
    /// only signed. getSigned() throws ConfigError for a value that is unsigned or signed with
    /// another secret.
    void setSigned(const std::string& key, const std::string& value, const std::string& secret);
    std::string getSigned(const std::string& key, const std::string& secret);

    /// What a failed collective adds to its message, such as which worker process died and how
    /// (the launcher of the workers knows; the group only sees a broken connection).
    void setFailureContext(std::function<std::string()> context);

    /// The collectives the trainer uses (engine-internal, see engine/src/train/collectives.h).
    Collectives* collectives() const;

    struct Impl;

private:
    explicit ProcessGroup(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

} // namespace mppdl::train
