#pragma once

// Distribution of a dataset's rows over N segments, as Greenplum distributes a table's rows: each
// segment trains on the rows it holds. The policy decides which rows a segment sees, and so whether
// the segments see the same mix of classes (IID) or not.

#include "mppdl/data/dataset.h"

#include <cstdint>
#include <string>
#include <vector>

namespace at {
class Tensor;
}

namespace mppdl::data {

/// One way of distributing rows. The list in distribution.cpp is the one place the CLI's help and
/// the GUI read the policies from.
struct DistributionPolicy {
    const char* name;
    const char* description;
    bool usesSeed; ///< whether the seed changes the result
    bool usesKeys; ///< whether it reads the per-row keys passed to distribute()
    /// Whether it reads the rows' labels: a process that reads only its own rows needs every
    /// row's label first (the others place rows by their number or their home segment alone).
    bool usesLabels;
    /// Whether the source places the rows: they must be read as `segments` shards, each row marked
    /// with its home segment (Dataset::homeSegments(), see SourceOptions::segments).
    bool fromSource;
    /// The segment (0..segments-1) of each row. Called by distribute() with checked arguments:
    /// 1 <= segments <= rows.size(); `keys` undefined, or int64 [rows.size()], contiguous, on the CPU.
    std::vector<int32_t> (*assign)(const Dataset& rows, int segments, uint64_t seed, const at::Tensor& keys);
};

/// "random", "hash", "round-robin", "by-label", "database", in that order.
const std::vector<DistributionPolicy>& distributionPolicies();
/// The policy of that name, or nullptr.
const DistributionPolicy* findDistributionPolicy(const std::string& name);

/// Which rows each segment holds: one int64 CPU tensor of row indices per segment, ascending
/// within each segment; together they hold every row exactly once. With one segment every policy
/// gives 0..n-1 in order, so one segment trains exactly like a single device.
///
/// - random: a seeded permutation of the rows (std::mt19937_64 seeded with `seed`, a Fisher-Yates
///   shuffle with rejection sampling, so the same on every platform) dealt into `segments`
///   contiguous groups whose sizes differ by at most one.
/// - hash: segment = splitmix64(key) mod segments, like Greenplum's DISTRIBUTED BY (key). The key
///   is the row's entry in `keys` (int64, one per row) when given, else the row's 0-based ordinal.
///   Deterministic everywhere; the seed is not used. With few rows a segment may get none.
/// - round-robin: row i goes to segment i mod segments.
/// - by-label: deliberately non-IID. The classes that have rows are dealt out in class order: with
///   at least as many such classes as segments, the k-th of them goes to segment k mod segments
///   (class c to segment c mod N when every class has rows), so each class lives on one segment.
///   With fewer classes than segments, each class gets segments in proportion to its rows (at
///   least one, at most its row count; consecutive segment numbers) and its rows are split into
///   near-equal contiguous runs among them. No segment is left empty.
/// - database: each row stays on the segment the database keeps it on (Dataset::homeSegments():
///   Greenplum's gp_segment_id, or hash(distribution key) mod N on PostgreSQL), as MADlib trains
///   each segment on its local rows. ConfigError for rows without home segments (not read from a
///   table as `segments` shards) or with a home segment >= `segments`.
///
/// Throws ConfigError for segments < 1, more segments than rows, an unknown policy (naming the
/// known ones), keys that are not int64 with one entry per row, and keys given to a policy that
/// does not use them.
std::vector<at::Tensor> distribute(const Dataset& rows, int segments, const std::string& policy, uint64_t seed,
                                   const at::Tensor& keys);
/// distribute() without keys.
std::vector<at::Tensor> distribute(const Dataset& rows, int segments, const std::string& policy, uint64_t seed = 0);

/// What one segment holds.
struct SegmentSummary {
    int64_t rows = 0;
    std::vector<int64_t> classCounts; ///< one per class of the dataset (numClasses())
};

struct DistributionSummary {
    std::vector<SegmentSummary> segments;
    /// Rows of the fullest segment over the mean rows per segment: 1 when perfectly even, up to
    /// the number of segments when one segment holds everything; 0 when there are no rows.
    double skew = 0;
};

/// Rows and class histogram per segment of `shards` (as distribute() returns them), and the skew.
/// Throws ConfigError when a shard is not a 1-D integer tensor or holds a row the dataset lacks.
DistributionSummary summarize(const Dataset& rows, const std::vector<at::Tensor>& shards);

} // namespace mppdl::data
