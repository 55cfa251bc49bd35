#pragma once

// Internal: the rows of a run with --no-cache, read from their source again every epoch, as
// MADlib reads a table in every iteration without use_caching, and kept nowhere in between.
//
// The source's rows, in its order (a table's --id order), are cut into blocks of consecutive rows
// of a fixed size (blockRowsFor()); a process reads its own rows of a block with one query. An
// epoch visits the blocks in a seeded order, the same for every segment and every process, and
// each segment visits its own rows of a block in a seeded order of its own: a block shuffle. A
// segment so sees the same rows in the same order whether its run has one process or several,
// and whatever the machine's memory. A minibatch so needs one block (two where it spans a boundary), not the table; a
// few blocks are held at a time, the least recently used going first, and the next block of the
// epoch is read on a thread of its own while the current one trains. The order depends only on
// the seed, the epoch, the segment and its rows, so a resumed run repeats it bit for bit.

#include "mppdl/data/preprocess.h"
#include "mppdl/data/row_set.h"

#include <torch/torch.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace mppdl::train {

class StreamedRows final : public data::RowStream {
public:
    /// Reads the rows with these source ordinals (ascending), as the source holds them; adds the
    /// rows' feature bytes to `bytes`.
    using Read = std::function<data::Dataset(const std::vector<int64_t>& ordinals, int64_t& bytes)>;

    /// `ordinals`: the source ordinals of the process's rows as read (ascending), of
    /// `sourceRows`; `trainAt`: which of them are the training rows (PreparedData::train's
    /// positions, ascending); `blockRows`: the source's rows per block; `capacity`: blocks held at
    /// most (at least 2).
    StreamedRows(Read read, std::vector<int64_t> ordinals, int64_t sourceRows, std::vector<int64_t> trainAt,
                 int64_t blockRows, int capacity, uint64_t seed);

    /// The rows of a block: 8 MB of prepared rows (rowBytes each), at least 256. Fixed, so that the
    /// order of a run does not depend on its memory budget or its processes.
    static int64_t blockRowsFor(int64_t rowBytes);
    ~StreamedRows() override;
    StreamedRows(const StreamedRows&) = delete;
    StreamedRows& operator=(const StreamedRows&) = delete;

    /// The rows at these positions (of the rows as read, ascending) before any normalization,
    /// with their labels: what the statistics and the normalizer are fitted on, read a block at a
    /// time as computeStatistics() asks for them.
    data::RowSet rawRows(const std::vector<int64_t>& positions, const at::Tensor& labels,
                         const std::vector<int64_t>& sampleShape, at::ScalarType type, int64_t classes);
    /// The raw rows at these positions (of the rows as read), gathered at once.
    data::Dataset rawGather(const std::vector<int64_t>& positions);
    /// From now on blocks are normalized by `normalizer` as they are read; what is held goes.
    void normalizeWith(data::Normalizer normalizer);

    at::Tensor epochOrder(int epoch, int segment, const at::Tensor& rows) override;
    data::Dataset gather(const at::Tensor& positions) override;
    int64_t rowsRead() const override { return m_rowsRead.load(); }
    int64_t bytesRead() const override { return m_bytesRead.load(); }

    int64_t blockRows() const { return m_blockRows; }
    /// The source's blocks, and those holding rows of this process.
    int64_t blocks() const { return m_blocks; }
    int64_t blocksRead() const;

private:
    struct Block {
        std::shared_ptr<const data::Dataset> rows;
        std::exception_ptr error;
        bool reading = false;
        uint64_t lastUse = 0;
    };
    std::shared_ptr<const data::Dataset> block(int64_t b);
    /// The block of a row as read (its position in m_ordinals).
    int64_t blockOf(int64_t readAt) const { return m_ordinals[size_t(readAt)] / m_blockRows; }
    /// The rows (positions of the rows as read) `readAt`, gathered from their blocks.
    data::Dataset gatherRead(const std::vector<int64_t>& readAt);
    void queue(int64_t b, bool first);
    void evict();
    void work();

    Read m_read;
    std::vector<int64_t> m_ordinals, m_trainAt;
    int64_t m_blockRows, m_blocks;
    size_t m_capacity;
    uint64_t m_seed;
    /// Per block: its first row of the rows as read (one more entry: their count), and whether it
    /// holds training rows.
    std::vector<int64_t> m_start;
    std::vector<bool> m_trains;

    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::map<int64_t, Block> m_held;
    std::deque<int64_t> m_queue;
    std::vector<int64_t> m_next; ///< the block read after each block: the epoch's order
    int m_epoch = -1;
    uint64_t m_uses = 0;
    std::shared_ptr<const data::Normalizer> m_normalizer;
    bool m_quit = false;
    std::atomic<int64_t> m_rowsRead{0}, m_bytesRead{0};
    std::thread m_thread;
};

} // namespace mppdl::train
