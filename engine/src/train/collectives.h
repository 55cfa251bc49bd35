#pragma once

// Internal: what the strategies need from the other processes of a run. A run in one process has
// no Collectives (nullptr): its segments are all local and the helpers below do nothing.

#include <torch/torch.h>

#include <string>
#include <vector>

namespace mppdl::train {

class Collectives {
public:
    virtual ~Collectives() = default;
    virtual int rank() const = 0;
    virtual int world() const = 0;
    /// Element-wise sum (or maximum) over the processes, in place, of one contiguous tensor.
    virtual void allreduce(torch::Tensor& tensor, bool max) = 0;
    /// Rank `root`'s tensor into everyone's (same shape everywhere).
    virtual void broadcast(torch::Tensor& tensor, int root) = 0;
    /// Every process's bytes, in rank order, at every process.
    virtual std::vector<std::string> allgather(const std::string& bytes) = 0;
    /// Waits, up to the loading timeout rather than a collective's, until every process has
    /// called it: between reading a shard, which may take long, and the first collective after.
    /// A process that goes silent meanwhile fails the wait at once, named.
    virtual void awaitLoaded() {}
};

/// Sums (or maximums) `tensors` over the processes in one collective: they are packed into one
/// buffer per dtype, reduced, and copied back. Nothing to do without `group`.
void allreduceTensors(Collectives* group, const std::vector<torch::Tensor>& tensors, bool max = false);

/// Rank 0's bytes at every process.
std::string broadcastBytes(Collectives* group, const std::string& bytes);

} // namespace mppdl::train
