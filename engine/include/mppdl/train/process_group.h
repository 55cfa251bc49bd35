#pragma once

#include <functional>
#include <memory>
#include <string>

namespace mppdl::train {

class Collectives;

/// The processes of one run, joined through PyTorch's c10d: a TCPStore rendezvous at the master
/// (rank 0 serves it) and a Gloo process group whose collectives merge the segments each process
/// trains. The same object serves processes on one host (`--processes N`) and on several
/// (`mppdl worker --master HOST:PORT`).
class ProcessGroup {
public:
    ~ProcessGroup();

    /// Joins as `rank` of `world` processes. Rank 0 serves the rendezvous at `master` ("HOST:PORT";
    /// port 0 picks a free one, see port()); the others connect to it. Waits up to `timeoutSeconds`
    /// for everyone, which is also how long a collective waits for a silent peer. Throws
    /// ConfigError for a malformed address or rank, DeviceError when the port is taken or the
    /// master cannot be reached in time.
    /// `listening` (rank 0) is called with the port once the rendezvous is served and before
    /// the others are waited for: the moment to start workers.
    static std::unique_ptr<ProcessGroup> join(int rank, int world, const std::string& master,
                                              double timeoutSeconds = 30,
                                              const std::function<void(int port)>& listening = {});

    int rank() const;
    int world() const;
    /// The rendezvous port (the one chosen when asked for port 0).
    int port() const;

    /// A value every process can read (the run's configuration, from rank 0); get() waits for it.
    void set(const std::string& key, const std::string& value);
    std::string get(const std::string& key);
    /// Whether some process has set `key` (does not wait).
    bool has(const std::string& key);

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
