#pragma once

// Internal: the replicas of a segment-parallel run, the pool of threads that trains them, and the
// ways their models are joined (DESIGN.md, "Strategies").

#include "collectives.h"

#include "model/graph_module.h"

#include <torch/torch.h>

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mppdl::train {

/// A model that trains: the single strategy's one, or one segment's replica, with its shard.
struct Replica {
    int segment = 0; ///< its index among all the run's segments
    torch::Device device{torch::kCPU};
    model::GraphModule module{nullptr};
    std::unique_ptr<torch::optim::Optimizer> optimizer;
    at::Generator permutation; ///< the epoch order of its rows
    at::Generator dropout;     ///< its Dropout masks (undefined on a GPU: the device's default)
    torch::Tensor x, y;        ///< rows resident on its device: its own, or all of them (see `rowsOf`)
    /// The rows of x, y it trains on (int64, on its device), when x, y are shared with the other
    /// replicas on the CPU rather than copied; undefined: all of x.
    torch::Tensor rowsOf;
    int64_t batch = 0; ///< min(batch size, rows)
    int64_t rows() const { return rowsOf.defined() ? rowsOf.size(0) : x.size(0); }
    int64_t stepsPerEpoch() const { return (rows() + batch - 1) / batch; }
};

/// Worker threads that live for a run and train the replicas of this process side by side, each
/// with an OpenMP team of its own (N workers x T/N threads keep T cores busy, not N x T).
class SegmentPool {
public:
    SegmentPool(int workers, int team);
    ~SegmentPool();
    SegmentPool(const SegmentPool&) = delete;
    SegmentPool& operator=(const SegmentPool&) = delete;

    int workers() const { return int(m_threads.size()); }

    /// Runs job(i) for every i < count, i on worker i % workers; meanwhile the calling thread runs
    /// `whileWaiting` about every 10 ms (it reports progress). Rethrows the first job's failure
    /// after all have returned; `failed` is set as soon as one fails, for the others to stop early.
    void run(size_t count, const std::function<void(size_t)>& job, const std::function<void()>& whileWaiting);

    std::atomic<bool> failed{false};

private:
    void work(int worker, int team);

    std::vector<std::thread> m_threads;
    std::mutex m_mutex;
    std::condition_variable m_start, m_done;
    uint64_t m_generation = 0;
    int m_busy = 0;
    bool m_quit = false;
    size_t m_count = 0;
    const std::function<void(size_t)>* m_job = nullptr;
    std::vector<std::exception_ptr> m_errors;
};

/// Sets this thread's OpenMP team size (libtorch's intra-op threads on this thread).
void setThreadTeam(int threads);

/// Parameters first, then buffers: the order every join below works in.
std::vector<torch::Tensor> stateTensors(model::GraphModule& module);

/// Model averaging's merge: `merged` becomes the sum over all segments of weight x replica
/// (floating parameters and buffers; `weights` of the local replicas sum to 1 over all
/// processes; integer buffers such as BatchNorm's batch count take the maximum), then is copied
/// back into every local replica. With `buffersOnly` the parameters are taken from the first
/// replica as they are (all-reduce keeps them equal; an average would only add rounding).
/// `divergence[i]`: replica i's L2 distance from the merged parameters, before the copy. With
/// one replica of weight 1 the result is that replica bit for bit (0 + 1 * p).
void averageReplicas(model::GraphModule& merged, std::vector<Replica>& replicas, const std::vector<double>& weights,
                     std::vector<double>& divergence, Collectives* group, bool buffersOnly = false);

/// EASGD's elastic step (Zhang, Choromanska, LeCun 2015) with moving rate `alpha`: with the
/// center c, every replica moves x_i -= alpha (x_i - c) and the center c += alpha sum_i (x_i - c),
/// the sum over all segments, from the same old c. Integer buffers take the maximum.
/// `divergence[i]`: ||x_i - c|| over the parameters, before the step.
void elasticAverage(model::GraphModule& center, std::vector<Replica>& replicas, double alpha,
                    std::vector<double>& divergence, Collectives* group);

/// All-reduce's step: every replica's gradient becomes sum_i weight_i grad_i over all segments
/// (a replica without a minibatch this step has weight 0 and no gradient).
void averageGradients(std::vector<Replica>& replicas, const std::vector<double>& weights, Collectives* group);

} // namespace mppdl::train
