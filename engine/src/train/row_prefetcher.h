#pragma once

// Internal: reads ahead the rows that the next minibatches of an out-of-core run gather from its
// memory-mapped training rows, on a thread of its own, so that their pages are in memory by the
// time the step's index_select needs them and compute does not wait on the disk while it keeps up.

#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace mppdl::train {

class RowPrefetcher {
public:
    RowPrefetcher();
    ~RowPrefetcher();
    RowPrefetcher(const RowPrefetcher&) = delete;
    RowPrefetcher& operator=(const RowPrefetcher&) = delete;

    /// Queues the rows order[begin, end) of `x` (a contiguous CPU tensor, rows first) to be read.
    void ahead(const torch::Tensor& x, const torch::Tensor& order, int64_t begin, int64_t end);

    /// Minibatches a replica's reads run ahead of its steps.
    static constexpr int64_t kDepth = 4;

private:
    struct Job {
        const unsigned char* base = nullptr;
        int64_t rowBytes = 0;
        std::vector<int64_t> rows;
    };
    void work();

    std::mutex m_mutex;
    std::condition_variable m_wake;
    std::deque<Job> m_jobs;
    bool m_quit = false;
    std::thread m_thread;
};

} // namespace mppdl::train
