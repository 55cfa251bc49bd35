#include "streamed_rows.h"

#include "data/seeded.h"

#include "mppdl/core/error.h"

#include <algorithm>

namespace mppdl::train {

namespace {

/// A seed of its own for each (seed, value): splitmix64's finalizer, the same on every platform.
uint64_t mix(uint64_t seed, uint64_t value) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (value + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

at::Tensor indexTensor(const std::vector<int64_t>& positions) {
    return torch::tensor(at::ArrayRef<int64_t>(positions), torch::kInt64);
}

} // namespace

StreamedRows::StreamedRows(Read read, std::vector<int64_t> ordinals, int64_t sourceRows, std::vector<int64_t> trainAt,
                           int64_t blockRows, int capacity, uint64_t seed)
    : m_read(std::move(read)), m_ordinals(std::move(ordinals)), m_trainAt(std::move(trainAt)),
      m_blockRows(std::max<int64_t>(1, blockRows)), m_blocks((sourceRows + m_blockRows - 1) / m_blockRows),
      m_capacity(size_t(std::max(2, capacity))), m_seed(seed), m_start(size_t(m_blocks) + 1, 0),
      m_trains(size_t(m_blocks), false) {
    if (!m_ordinals.empty() && m_ordinals.back() >= sourceRows)
        throw InternalError("StreamedRows: row " + std::to_string(m_ordinals.back()) + " of a source of " +
                            std::to_string(sourceRows));
    // The rows as read are ascending: each block's are consecutive.
    for (int64_t b = 0, i = 0; b <= m_blocks; ++b) {
        while (i < int64_t(m_ordinals.size()) && m_ordinals[size_t(i)] < b * m_blockRows)
            ++i;
        m_start[size_t(b)] = i;
    }
    m_start[size_t(m_blocks)] = int64_t(m_ordinals.size());
    for (const int64_t at : m_trainAt)
        m_trains[size_t(blockOf(at))] = true;
    m_thread = std::thread([this] { work(); });
}

int64_t StreamedRows::blockRowsFor(int64_t rowBytes) {
    constexpr int64_t kBlockBytes = int64_t(8) << 20;
    return std::max<int64_t>(256, kBlockBytes / std::max<int64_t>(1, rowBytes));
}

int64_t StreamedRows::blocksRead() const {
    int64_t n = 0;
    for (int64_t b = 0; b < m_blocks; ++b)
        n += m_start[size_t(b) + 1] > m_start[size_t(b)];
    return n;
}

StreamedRows::~StreamedRows() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_quit = true;
    }
    m_changed.notify_all();
    m_thread.join();
}

// ---- the reading thread ------------------------------------------------------------------------

void StreamedRows::queue(int64_t b, bool first) {
    auto& entry = m_held[b];
    if (entry.reading || entry.rows || entry.error)
        return;
    entry.reading = true;
    if (first)
        m_queue.push_front(b);
    else
        m_queue.push_back(b);
    m_changed.notify_all();
}

void StreamedRows::evict() {
    // The least recently used block that is held (not one being read) goes while there are too many.
    while (m_held.size() > m_capacity) {
        auto oldest = m_held.end();
        for (auto it = m_held.begin(); it != m_held.end(); ++it)
            if (it->second.rows && (oldest == m_held.end() || it->second.lastUse < oldest->second.lastUse))
                oldest = it;
        if (oldest == m_held.end())
            return;
        m_held.erase(oldest);
    }
}

void StreamedRows::work() {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_changed.wait(lock, [&] { return m_quit || !m_queue.empty(); });
        if (m_quit)
            return;
        const int64_t b = m_queue.front();
        m_queue.pop_front();
        const auto normalizer = m_normalizer;
        lock.unlock();
        std::shared_ptr<const data::Dataset> rows;
        std::exception_ptr error;
        try {
            const std::vector<int64_t> ordinals(m_ordinals.begin() + m_start[size_t(b)],
                                                m_ordinals.begin() + m_start[size_t(b) + 1]);
            int64_t bytes = 0;
            auto raw = m_read(ordinals, bytes);
            m_rowsRead += raw.size();
            m_bytesRead += bytes;
            rows = std::make_shared<const data::Dataset>(normalizer ? normalizer->apply(raw) : std::move(raw));
        } catch (...) {
            error = std::current_exception();
        }
        lock.lock();
        auto it = m_held.find(b);
        if (it == m_held.end())
            continue;                     // dropped while it was read
        if (normalizer != m_normalizer) { // read for what no longer holds: a waiter asks again
            m_held.erase(it);
        } else {
            it->second.rows = std::move(rows);
            it->second.error = error;
            it->second.reading = false;
            it->second.lastUse = ++m_uses;
            evict();
        }
        m_changed.notify_all();
    }
}

// ---- blocks, as the training asks for them -----------------------------------------------------

std::shared_ptr<const data::Dataset> StreamedRows::block(int64_t b) {
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        auto it = m_held.find(b);
        if (it == m_held.end() || (!it->second.reading && !it->second.rows && !it->second.error)) {
            queue(b, true); // not held (or gone again before this thread woke): read it next
            continue;
        }
        if (it->second.error)
            std::rethrow_exception(it->second.error);
        if (it->second.rows) {
            it->second.lastUse = ++m_uses;
            auto rows = it->second.rows;
            // The epoch's next block is read while this one trains (in a fitting pass: the next).
            int64_t next = m_next.empty() ? b + 1 : m_next[size_t(b)];
            while (m_next.empty() && next < m_blocks && m_start[size_t(next)] == m_start[size_t(next) + 1])
                ++next; // a fitting pass: the next block holding rows of this process
            if (next >= m_blocks)
                next = -1;
            if (next >= 0 && !m_held.count(next))
                queue(next, false);
            return rows;
        }
        m_changed.wait(lock);
    }
}

data::Dataset StreamedRows::gatherRead(const std::vector<int64_t>& readAt) {
    if (readAt.empty())
        return data::Dataset();
    std::vector<at::Tensor> features, labels;
    std::vector<std::string> classNames;
    // Runs of rows of one block: a minibatch is one or two, an ascending gather one per block.
    for (size_t i = 0; i < readAt.size();) {
        const int64_t b = blockOf(readAt[i]);
        std::vector<int64_t> offsets;
        for (; i < readAt.size() && blockOf(readAt[i]) == b; ++i)
            offsets.push_back(readAt[i] - m_start[size_t(b)]);
        const auto rows = block(b);
        const auto at = indexTensor(offsets);
        features.push_back(rows->features().index_select(0, at));
        labels.push_back(rows->labels().index_select(0, at));
        classNames = rows->classNames();
    }
    return data::Dataset(features.size() == 1 ? features[0] : torch::cat(features),
                         labels.size() == 1 ? labels[0] : torch::cat(labels), classNames);
}

data::RowSet StreamedRows::rawRows(const std::vector<int64_t>& positions, const at::Tensor& labels,
                                   const std::vector<int64_t>& sampleShape, at::ScalarType type, int64_t classes) {
    data::RowSet set;
    set.rows = int64_t(positions.size());
    set.sampleShape = sampleShape;
    set.type = type;
    set.classes = classes;
    set.labels = labels;
    set.features = [this, positions](int64_t begin, int64_t end) {
        return gatherRead(std::vector<int64_t>(positions.begin() + begin, positions.begin() + end)).features();
    };
    return set;
}

data::Dataset StreamedRows::rawGather(const std::vector<int64_t>& positions) { return gatherRead(positions); }

void StreamedRows::normalizeWith(data::Normalizer normalizer) {
    std::lock_guard<std::mutex> lock(m_mutex);
    m_normalizer = std::make_shared<const data::Normalizer>(std::move(normalizer));
    for (auto it = m_held.begin(); it != m_held.end();)
        it = it->second.reading ? std::next(it) : m_held.erase(it);
    for (const int64_t b : m_queue)
        m_held.erase(b); // queued, not begun
    m_queue.clear();
    m_changed.notify_all();
}

at::Tensor StreamedRows::epochOrder(int epoch, int segment, const at::Tensor& rows) {
    const auto sequence = data::seededPermutation(m_blocks, mix(m_seed, uint64_t(epoch)));
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (epoch != m_epoch) {
            // A new epoch reads every block from the source again: nothing held is reused.
            m_epoch = epoch;
            // The blocks the training reads, in the epoch's order (one of validation rows only is not).
            std::vector<int64_t> trained;
            for (const int64_t b : sequence)
                if (m_trains[size_t(b)])
                    trained.push_back(b);
            m_next.assign(size_t(m_blocks), -1);
            for (size_t i = 0; i + 1 < trained.size(); ++i)
                m_next[size_t(trained[i])] = trained[i + 1];
            for (auto it = m_held.begin(); it != m_held.end();)
                it = it->second.reading ? std::next(it) : m_held.erase(it);
            if (!trained.empty())
                queue(trained.front(), true);
        }
    }
    const auto r = rows.contiguous();
    const auto* p = r.data_ptr<int64_t>();
    std::vector<std::vector<int64_t>> perBlock(static_cast<size_t>(m_blocks));
    for (int64_t i = 0; i < r.numel(); ++i)
        perBlock[size_t(blockOf(m_trainAt[size_t(p[i])]))].push_back(p[i]);
    std::vector<int64_t> order;
    order.reserve(size_t(r.numel()));
    const uint64_t segmentSeed = mix(mix(m_seed, uint64_t(epoch)), uint64_t(segment) + 0x5EC0ULL);
    for (const int64_t b : sequence) {
        const auto& mine = perBlock[size_t(b)];
        for (const int64_t k : data::seededPermutation(int64_t(mine.size()), mix(segmentSeed, uint64_t(b))))
            order.push_back(mine[size_t(k)]);
    }
    return indexTensor(order);
}

data::Dataset StreamedRows::gather(const at::Tensor& positions) {
    const auto p = positions.to(torch::kCPU).contiguous();
    const auto* at = p.data_ptr<int64_t>();
    std::vector<int64_t> readAt(size_t(p.numel()));
    for (int64_t i = 0; i < p.numel(); ++i)
        readAt[size_t(i)] = m_trainAt[size_t(at[i])];
    return gatherRead(readAt);
}

} // namespace mppdl::train
