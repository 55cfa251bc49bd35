#pragma once

// Internal: whole-file reads with transparent gunzip, shared by the file sources.

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::data {

/// The whole contents of a file, gunzipped when it starts with the gzip magic (concatenated gzip
/// members are read one after another, as gzip does). Throws DataError "PATH: ..." when the file is
/// missing or unreadable, or its gzip data is truncated or corrupt.
/// A gzip file may expand to at most maxExpandedBytes(): DataError naming it beyond that.
std::string readFile(const std::string& path);
/// The same with a cap of the caller's (`maxExpanded` bytes of decompressed content).
std::string readFile(const std::string& path, uint64_t maxExpanded);
/// 64 GiB, or half the memory this process may use (memoryAvailable()) when that is less.
uint64_t maxExpandedBytes();

/// Whether `bytes` start with the gzip magic (1f 8b).
bool isGzip(const std::string& bytes);

/// A file read front to back, gunzipped on the fly when it is gzip (zlib's gzFile): for readers
/// that take some rows of a large file without holding all of it. skip() seeks in a raw file; in a
/// gzip file it decompresses and discards (gzip has no random access).
class InputFile {
public:
    /// Throws DataError "PATH: ..." when the file is missing, a directory or unreadable.
    explicit InputFile(const std::string& path);
    ~InputFile();
    InputFile(const InputFile&) = delete;
    InputFile& operator=(const InputFile&) = delete;

    /// Exactly `size` bytes into `out`; DataError "PATH: truncated ..." naming `what` when the file
    /// ends first, or on corrupt gzip data.
    void read(void* out, uint64_t size, const std::string& what);
    /// Up to `size` bytes: fewer only at the end of the file. DataError on corrupt gzip data.
    uint64_t readUpTo(void* out, uint64_t size, const std::string& what);
    /// Moves `size` bytes forward.
    void skip(uint64_t size, const std::string& what);
    /// Bytes of (decompressed) content before the read position.
    uint64_t position() const { return m_position; }
    const std::string& path() const { return m_path; }

    /// Rows of `rowBytes` each stored from byte `dataOffset` on: the first `rows`, or of those only
    /// the `selected` ones (ascending ordinals), into `out` one after the other. False when the file
    /// ends first; InternalError for a selected row >= `rows`.
    bool readRows(void* out, uint64_t dataOffset, uint64_t rowBytes, int64_t rows,
                  const std::vector<int64_t>* selected);

private:
    std::string m_path;
    void* m_file = nullptr; // gzFile
    uint64_t m_position = 0;
};

} // namespace mppdl::data
