#pragma once

// Internal: packed rows on disk, for a run whose rows do not fit its memory budget. A cache entry
// is a directory of raw little-endian row files (one per part of the run: its training rows, the
// validation and test rows it evaluates), each with its labels and a CRC-32, and a manifest that
// names the key it was built for. It is built in a directory of its own and renamed into place
// when complete, so that a build cut short (killed, full disk) is never taken for an entry.

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mppdl::data {

/// A file of packed rows mapped read-only as a tensor of `type` and `sizes` (rows first), unmapped
/// when the last tensor that shares it goes. `randomAccess`: the kernel reads no pages ahead
/// (minibatches gather rows in a random order; the run's prefetcher reads the ones they need).
at::Tensor mapRows(const std::string& path, at::ScalarType type, const std::vector<int64_t>& sizes, bool randomAccess);

/// Writes rows to a new file chunk by chunk, keeping their CRC-32, and flushes what it wrote to
/// disk now and then so that dirty pages never pile up in the page cache (a memory cgroup counts
/// them against the process).
class RowFileWriter {
public:
    explicit RowFileWriter(std::string path);
    ~RowFileWriter();
    RowFileWriter(const RowFileWriter&) = delete;
    RowFileWriter& operator=(const RowFileWriter&) = delete;

    /// Appends a CPU tensor's bytes (made contiguous).
    void append(const at::Tensor& rows);
    /// Flushes to disk and closes; the CRC-32 of everything appended.
    uint32_t finish();
    int64_t bytes() const { return m_bytes; }

private:
    void flush();
    std::string m_path;
    int m_fd = -1;
    uint32_t m_crc = 0;
    int64_t m_bytes = 0, m_unsynced = 0;
};

/// FNV-1a (64 bits) of `bytes` bytes, continuing from `h`: what names cache entries and digests
/// the rows they hold.
uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull);

/// The CRC-32 of a file, read in chunks.
uint32_t fileChecksum(const std::string& path);

/// The cache entry under `root` of `identity` (the source, its options and the run's layout: what
/// names the directory), valid for `key` (what the rows depend on besides: the source files' sizes
/// and times, the rows planned). An entry of the same identity with another key is rebuilt in place.
class PackedCache {
public:
    PackedCache(const std::string& root, const std::string& identity, std::string key);

    /// The directory of the complete entry (it may not exist yet).
    const std::string& dir() const { return m_dir; }
    /// The manifest of a complete entry for this key whose files have the checksums it records;
    /// none otherwise, with `why` saying so ("none built yet", "train.f32 fails its checksum").
    std::optional<nlohmann::json> find(std::string& why) const;
    /// A fresh build directory (leftovers of builds whose process is gone are removed first).
    const std::string& beginBuild();
    /// A file of the build.
    std::string buildPath(const std::string& name) const { return m_build + "/" + name; }
    /// The entry's file `name` (after commit or find).
    std::string path(const std::string& name) const { return m_dir + "/" + name; }
    /// Writes `manifest` (the key added) last, then renames the build into place.
    void commit(nlohmann::json manifest);
    /// Removes the build directory, if any.
    void abandon();

private:
    std::string m_root, m_key, m_dir, m_build;
};

/// Where caches go by default: $XDG_CACHE_HOME/mppdl, else ~/.cache/mppdl, else /tmp/mppdl-cache.
std::string defaultCacheRoot();

} // namespace mppdl::data
