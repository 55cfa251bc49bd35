#pragma once

// How much memory a run may hold its packed rows in: the --memory-budget flag, or a share of what
// the process may use (its cgroup's limit, v1 memory.limit_in_bytes or v2 memory.max, where one is
// set; else the system's available memory).

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::data {

/// "512M", "2G", "1.5GiB", "300000000": bytes (K, M, G, T are powers of 1024; an optional B or
/// iB). ConfigError naming `what` on anything else or on a size of 0.
int64_t parseByteSize(const std::string& text, const std::string& what = "--memory-budget");

/// What the process may use: the smallest memory limit of its cgroup and the cgroups above it,
/// less what the cgroup already holds, and the system's available memory (/proc/meminfo).
struct MemoryAvailable {
    int64_t bytes = 0;
    std::string where; ///< "the cgroup limit of 400 MB (/sys/fs/cgroup/...)", or "MemAvailable"
};
MemoryAvailable memoryAvailable();

/// The default budget is this share of memoryAvailable(): the rest is for libtorch, the network,
/// its optimizer state and the minibatches.
constexpr double kDefaultBudgetShare = 0.5;

/// What `rows` prepared rows of `sampleShape` take in memory: float32 features, an int64 label.
int64_t preparedBytes(int64_t rows, const std::vector<int64_t>& sampleShape);

/// Rows read from a source at a time when its rows do not fit `budget`: an eighth of it (8 to
/// 256 MB) of rows of `rowBytes`, at least 256.
int64_t chunkRows(int64_t budget, int64_t rowBytes);

/// The budget a run gets: `flag` when it is not empty (parseByteSize), else the default share.
struct MemoryBudget {
    int64_t bytes = 0;
    std::string why; ///< "--memory-budget 64M", "50% of what is left of the cgroup limit of 400 MB ..."
};
MemoryBudget memoryBudget(const std::string& flag);

} // namespace mppdl::data
