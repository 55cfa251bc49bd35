// The rows of a --no-cache run (StreamedRows), read from the Fashion-MNIST IDX files as a table is
// read from its server: every epoch visits each segment's rows once, block by block in one seeded
// block order shared by the segments; the same seed gives the same orders; gathered minibatches
// are the rows normalized as in memory, to every digit; every epoch reads its blocks again; the
// fitting passes see the raw rows; a failed read fails the gather that needed it.

#include "train/streamed_rows.h"

#include "mppdl/core/error.h"
#include "mppdl/data/row_set.h"
#include "mppdl/data/source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <atomic>
#include <numeric>
#include <set>

using namespace mppdl;

namespace {

constexpr int64_t kRows = 3000, kBlockRows = 400;

const data::Dataset& idxRows() {
    static const data::Dataset rows = [] {
        data::SourceOptions o;
        o.limit = kRows;
        return data::loadSource(MPPDL_FASHION_MNIST_DIR, o).train;
    }();
    return rows;
}

/// A stream over the first kRows rows of the IDX files, each block read from the files (only its
/// rows); counts the rows read and, with `failBlockAt`, fails the read of the block holding it.
struct IdxStream {
    explicit IdxStream(uint64_t seed, int64_t failAt = -1) {
        for (int64_t p = 0; p < kRows; ++p)
            (p % 10 == 3 ? validationAt : trainAt).push_back(p);
        std::vector<int64_t> ordinals(kRows);
        std::iota(ordinals.begin(), ordinals.end(), 0);
        auto read = [this, failAt](const std::vector<int64_t>& wanted, int64_t& bytes) {
            if (failAt >= 0 && wanted.front() <= failAt && failAt <= wanted.back())
                throw DataError("the read of rows " + std::to_string(wanted.front()) + ".. failed");
            data::SourceOptions o;
            o.limit = kRows;
            auto selection = std::make_shared<data::RowSelection>();
            selection->train = wanted;
            o.rows = selection;
            auto block = data::loadSource(MPPDL_FASHION_MNIST_DIR, o).train;
            bytes += block.features().numel();
            rowsRead += block.size();
            return block;
        };
        stream = std::make_unique<train::StreamedRows>(read, ordinals, kRows, trainAt, kBlockRows, 3, seed);
    }
    /// Segment s of 2: the training positions of one parity.
    at::Tensor segmentRows(int s) const {
        std::vector<int64_t> rows;
        for (int64_t p = s; p < int64_t(trainAt.size()); p += 2)
            rows.push_back(p);
        return torch::tensor(at::ArrayRef<int64_t>(rows), torch::kInt64);
    }
    /// The block (of the rows as read) of training position p.
    int64_t blockOf(int64_t p) const { return trainAt[size_t(p)] / kBlockRows; }

    std::vector<int64_t> trainAt, validationAt;
    std::atomic<int64_t> rowsRead{0};
    std::unique_ptr<train::StreamedRows> stream;
};

std::vector<int64_t> values(const at::Tensor& t) {
    const auto c = t.contiguous();
    return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

} // namespace

TEST(StreamedRows, AnEpochVisitsEachSegmentRowOnceBlockByBlockInOneSharedOrder) {
    IdxStream a(7), b(7);
    ASSERT_EQ(a.stream->blocks(), (kRows + kBlockRows - 1) / kBlockRows);
    std::vector<std::vector<int64_t>> sequences;
    for (int epoch = 0; epoch < 3; ++epoch) {
        std::vector<std::vector<int64_t>> blocksOfSegments;
        for (int s = 0; s < 2; ++s) {
            const auto rows = a.segmentRows(s);
            const auto order = values(a.stream->epochOrder(epoch, s, rows));
            // The same seed, epoch, segment and rows: the same order (a resumed run repeats it).
            EXPECT_EQ(order, values(b.stream->epochOrder(epoch, s, rows)));
            auto sorted = order;
            std::sort(sorted.begin(), sorted.end());
            EXPECT_EQ(sorted, values(rows)) << "epoch " << epoch << " segment " << s;
            // Block by block: each block's rows together, each block once.
            std::vector<int64_t> blocks;
            for (const int64_t p : order)
                if (blocks.empty() || blocks.back() != a.blockOf(p))
                    blocks.push_back(a.blockOf(p));
            EXPECT_EQ(std::set<int64_t>(blocks.begin(), blocks.end()).size(), blocks.size());
            EXPECT_GT(blocks.size(), 4u);
            // Not the rows' own order within a block.
            EXPECT_NE(order, values(rows));
            blocksOfSegments.push_back(blocks);
        }
        EXPECT_EQ(blocksOfSegments[0], blocksOfSegments[1]) << "the segments share the epoch's block order";
        sequences.push_back(blocksOfSegments[0]);
    }
    EXPECT_NE(sequences[0], sequences[1]);
    // Another seed, another order.
    EXPECT_FALSE(
        IdxStream(8).stream->epochOrder(0, 0, a.segmentRows(0)).equal(a.stream->epochOrder(0, 0, a.segmentRows(0))));
}

TEST(StreamedRows, MinibatchesAreTheRowsNormalizedAsInMemoryAndEveryEpochReadsThemAgain) {
    IdxStream s(3);
    const auto& idx = idxRows();
    const auto trainAt = torch::tensor(at::ArrayRef<int64_t>(s.trainAt), torch::kInt64);
    // The fitting pass reads the raw rows: the normalizer is the one of the rows in memory.
    const auto raw = s.stream->rawRows(s.trainAt, idx.labels().index_select(0, trainAt), idx.sampleShape(),
                                       idx.features().scalar_type(), idx.numClasses());
    const auto fitted = data::Normalizer::fit(data::Normalizer::Mode::Standardize, raw, data::Reduce());
    const auto inMemory = data::Normalizer::fit(data::Normalizer::Mode::Standardize, idx, trainAt, data::Reduce());
    EXPECT_EQ(fitted.mean, inMemory.mean);
    EXPECT_EQ(fitted.std, inMemory.std);
    EXPECT_EQ(fitted.scale, inMemory.scale);
    EXPECT_TRUE(s.stream->rawGather(s.validationAt)
                    .features()
                    .equal(idx.features().index_select(0, torch::tensor(at::ArrayRef<int64_t>(s.validationAt),
                                                                        torch::kInt64))));
    s.stream->normalizeWith(fitted);
    const auto prepared = inMemory.apply(idx, trainAt);

    for (int epoch = 0; epoch < 2; ++epoch) {
        const int64_t before = s.rowsRead.load();
        std::vector<at::Tensor> orders{s.stream->epochOrder(epoch, 0, s.segmentRows(0)),
                                       s.stream->epochOrder(epoch, 1, s.segmentRows(1))};
        // The two segments' minibatches in turn, as the run loop's rounds take them.
        for (int64_t begin = 0; begin < orders[0].size(0) || begin < orders[1].size(0); begin += 64)
            for (const auto& order : orders) {
                if (begin >= order.size(0))
                    continue;
                const auto at = order.slice(0, begin, std::min<int64_t>(order.size(0), begin + 64));
                const auto batch = s.stream->gather(at);
                ASSERT_TRUE(batch.features().equal(prepared.features().index_select(0, at))) << "epoch " << epoch;
                ASSERT_TRUE(batch.labels().equal(prepared.labels().index_select(0, at)));
            }
        // Every block again (the last holds fewer rows), and not many twice.
        const int64_t read = s.rowsRead.load() - before;
        EXPECT_GE(read, kRows) << "epoch " << epoch;
        EXPECT_LE(read, kRows + 2 * kBlockRows) << "epoch " << epoch;
    }
    EXPECT_EQ(s.stream->rowsRead(), s.rowsRead.load());
}

TEST(StreamedRows, AFailedReadFailsTheGatherThatNeedsIt) {
    IdxStream s(3, /*failAt=*/1234);
    s.stream->normalizeWith(data::Normalizer());
    const auto order = s.stream->epochOrder(0, 0, s.segmentRows(0));
    bool failed = false;
    try {
        for (int64_t begin = 0; begin < order.size(0); begin += 64)
            s.stream->gather(order.slice(0, begin, std::min<int64_t>(order.size(0), begin + 64)));
    } catch (const DataError& e) {
        failed = true;
        EXPECT_NE(std::string(e.what()).find("the read of rows 1200.. failed"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(failed);
}
