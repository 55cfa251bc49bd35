#pragma once

// Which rows of a source one process of a multi-process run reads, and what each of them is for:
// worked out from what every process knows before reading any features (the row counts, and the
// labels for a label-based distribution), with the same validation split and the same
// distribution as a single process applies to the whole source, so that the run trains the same
// segments on the same rows whichever process holds them.

#include "mppdl/data/source.h"

#include <cstdint>
#include <vector>

namespace mppdl::data {

/// What a process can know of a source before reading its features.
struct SourceRows {
    int64_t trainRows = 0; ///< the source's training rows (after the limit)
    int64_t testRows = 0;  ///< its own test split's rows (0: none)
    /// Every training row's label, by ordinal; needed only by a policy that usesLabels.
    std::vector<int64_t> labels;
    int64_t classes = 0;
    /// A table read as its segments' shards (the database policy): each shard's row count. The
    /// whole read takes shard 0's rows first, then shard 1's, and so on.
    std::vector<int64_t> shardRows;
};

/// How the run is laid out.
struct RunLayout {
    int segments = 1;
    std::string policy = "random";
    uint64_t seed = 0;
    double validationFraction = 0;
    int rank = 0, world = 1;
    /// Whether each process evaluates only its share of the validation and test rows (their
    /// figures then summed); false when every process needs every row (an ensemble's members are
    /// spread over the processes, and each scores them all).
    bool shareEvaluation = true;
};

/// One process's rows. Positions are into the rows as read: the selected training ordinals in
/// ascending order (`read.train`), then separately the selected test ordinals (`read.test`).
struct RankRows {
    RowSelection read;
    /// The table's shards this process reads (the database policy), ascending; `read.train` is
    /// then every row of them.
    std::vector<int> shards;
    std::vector<int64_t> trainAt;      ///< positions of its segments' training rows, ascending
    std::vector<int64_t> validationAt; ///< positions of the validation rows it evaluates
    /// Of the validation and test rows it reads, the ones it counts as its own (all of them when
    /// evaluation is shared): each row of the source is owned by exactly one process.
    std::vector<int64_t> validationOwnedAt, testOwnedAt;
    /// Per segment of the run: for this process's segments, positions into its training rows
    /// (after trainAt) of the segment's rows, ascending, as distribute() orders them; empty for
    /// the others' segments.
    std::vector<std::vector<int64_t>> segmentRows;
    /// Every segment's row count, and the run's totals.
    std::vector<int64_t> segmentSizes;
    int64_t trainRows = 0, validationRows = 0, testRows = 0;
};

/// The rows of `layout.rank`. The validation rows are the same seeded draw prepare() takes, the
/// segments the same as distribute() gives on the remaining rows. A process evaluates the
/// validation rows of its own shards (database policy) or a contiguous share of them, and a
/// contiguous share of the test rows. Throws ConfigError as prepare() and distribute() do.
RankRows planRankRows(const SourceRows& source, const RunLayout& layout);

/// The segments process `rank` of `world` trains: s with s mod world == rank.
std::vector<int> segmentsOfRank(int segments, int rank, int world);

} // namespace mppdl::data
