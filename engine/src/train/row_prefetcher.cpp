#include "row_prefetcher.h"

#include <unistd.h>

namespace mppdl::train {

RowPrefetcher::RowPrefetcher() : m_thread([this] { work(); }) {}

RowPrefetcher::~RowPrefetcher() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_quit = true;
    }
    m_wake.notify_one();
    m_thread.join();
}

void RowPrefetcher::ahead(const torch::Tensor& x, const torch::Tensor& order, int64_t begin, int64_t end) {
    end = std::min(end, order.size(0));
    if (begin >= end)
        return;
    Job job;
    job.base = static_cast<const unsigned char*>(x.data_ptr());
    job.rowBytes = x.stride(0) * int64_t(x.element_size());
    const auto rows = order.slice(0, begin, end).contiguous();
    job.rows.assign(rows.data_ptr<int64_t>(), rows.data_ptr<int64_t>() + rows.numel());
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_jobs.push_back(std::move(job));
    }
    m_wake.notify_one();
}

void RowPrefetcher::work() {
    static const int64_t page = ::sysconf(_SC_PAGESIZE);
    volatile unsigned char sink = 0;
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [&] { return m_quit || !m_jobs.empty(); });
            if (m_quit)
                return;
            job = std::move(m_jobs.front());
            m_jobs.pop_front();
        }
        // One byte of every page a row spans: the fault reads the page in here, not in the step.
        for (const int64_t row : job.rows) {
            const unsigned char* first = job.base + row * job.rowBytes;
            const unsigned char* last = first + job.rowBytes - 1;
            for (const unsigned char* p = first; p <= last; p += page)
                sink = static_cast<unsigned char>(sink + *p);
            sink = static_cast<unsigned char>(sink + *last);
        }
    }
}

} // namespace mppdl::train
