#include "data/gz_file.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/memory.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

namespace mppdl::data {

namespace {

// deflate cannot compress better than about 1032:1; a larger claim is corrupt data, and the cap keeps
// a damaged size field from asking for gigabytes.
constexpr uint64_t kMaxDeflateRatio = 1032;
/// The most a whole gzip file is decompressed into (memory permitting): 64 GiB, so that a small
/// file of repeated bytes (a "zip bomb") is a clear error, never an out-of-memory kill.
constexpr uint64_t kMaxExpanded = uint64_t(64) << 30;

/// DataError unless `path` names a file (not a directory).
void checkIsFile(const std::string& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (ec || !std::filesystem::exists(status))
        throw DataError(path + ": no such file");
    if (std::filesystem::is_directory(status))
        throw DataError(path + ": is a directory, not a file");
}

std::string readRaw(const std::string& path) {
    checkIsFile(path);
    std::error_code ec;

    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file)
        throw DataError(path + ": cannot open: " + std::strerror(errno));
    std::string bytes;
    const auto size = std::filesystem::file_size(path, ec);
    if (!ec)
        bytes.reserve(size);
    char buffer[1 << 16];
    size_t got = 0;
    while ((got = std::fread(buffer, 1, sizeof buffer, file.get())) > 0)
        bytes.append(buffer, got);
    if (std::ferror(file.get()))
        throw DataError(path + ": read error: " + std::strerror(errno));
    return bytes;
}

std::string gunzip(const std::string& path, const std::string& compressed, uint64_t maxExpanded) {
    auto corrupt = [&] { return DataError(path + ": truncated or corrupt gzip data"); };
    auto tooLarge = [&] {
        return DataError(path + ": expands to more than " + humanBytes(double(maxExpanded)) +
                         ", the most a gzip file is decompressed into memory (this process may use " +
                         humanBytes(double(memoryAvailable().bytes)) + "): gunzip it, or give it uncompressed");
    };

    z_stream zs{};
    // 15 + 16: a gzip wrapper (not zlib), with the largest window.
    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        throw DataError(path + ": cannot initialise zlib");
    std::unique_ptr<z_stream, int (*)(z_stream*)> guard(&zs, &inflateEnd);

    const uint64_t ratioLimit = static_cast<uint64_t>(compressed.size()) * kMaxDeflateRatio + (1 << 16);
    const uint64_t limit = std::min(ratioLimit, maxExpanded);
    // The gzip trailer's ISIZE is the uncompressed size modulo 2^32: a good first guess.
    uint64_t guess = compressed.size() * 4;
    if (compressed.size() >= 18) {
        const auto* tail = reinterpret_cast<const unsigned char*>(compressed.data() + compressed.size() - 4);
        guess = tail[0] | (tail[1] << 8) | (tail[2] << 16) | (static_cast<uint64_t>(tail[3]) << 24);
    }
    std::string out;
    out.resize(static_cast<size_t>(std::clamp<uint64_t>(guess, 1 << 12, limit)));

    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
    size_t inLeft = compressed.size();
    size_t produced = 0;
    for (;;) {
        if (produced == out.size()) {
            if (out.size() >= ratioLimit)
                throw corrupt();
            if (out.size() >= limit)
                throw tooLarge();
            out.resize(static_cast<size_t>(std::min<uint64_t>(limit, out.size() * 2)));
        }
        // zlib counts in uInt: feed at most UINT_MAX bytes a call.
        const uInt inChunk = static_cast<uInt>(std::min<size_t>(inLeft, UINT_MAX));
        const uInt outChunk = static_cast<uInt>(std::min<size_t>(out.size() - produced, UINT_MAX));
        zs.avail_in = inChunk;
        zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
        zs.avail_out = outChunk;
        const int rc = inflate(&zs, Z_NO_FLUSH);
        inLeft -= inChunk - zs.avail_in;
        produced += outChunk - zs.avail_out;
        if (rc == Z_STREAM_END) {
            // Another gzip member may follow; anything else after the end (padding) is ignored, as gzip does.
            if (inLeft >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
                if (inflateReset(&zs) != Z_OK)
                    throw corrupt();
                continue;
            }
            break;
        }
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            throw corrupt();
        // The input ran out before the stream ended, and there was room to write: truncated.
        if (inLeft == 0 && zs.avail_out > 0)
            throw corrupt();
    }
    out.resize(produced);
    return out;
}

} // namespace

bool isGzip(const std::string& bytes) {
    return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
           static_cast<unsigned char>(bytes[1]) == 0x8b;
}

uint64_t maxExpandedBytes() {
    // Half of what the process may use: the rows decoded from the text still need room.
    return std::min<uint64_t>(kMaxExpanded, uint64_t(memoryAvailable().bytes) / 2);
}

std::string readFile(const std::string& path) { return readFile(path, maxExpandedBytes()); }

std::string readFile(const std::string& path, uint64_t maxExpanded) {
    auto bytes = readRaw(path);
    if (!isGzip(bytes))
        return bytes;
    try {
        return gunzip(path, bytes, maxExpanded);
    } catch (const std::bad_alloc&) {
        throw DataError(path + ": not enough memory to decompress");
    }
}

InputFile::InputFile(const std::string& path) : m_path(path) {
    checkIsFile(path);
    gzFile file = gzopen(path.c_str(), "rb");
    if (!file)
        throw DataError(path + ": cannot open: " + std::strerror(errno));
    gzbuffer(file, 1 << 17);
    m_file = file;
}

InputFile::~InputFile() {
    if (m_file)
        gzclose_r(static_cast<gzFile>(m_file));
}

uint64_t InputFile::readUpTo(void* out, uint64_t size, const std::string& what) {
    auto* to = static_cast<char*>(out);
    uint64_t done = 0;
    while (done < size) {
        // gzread counts in unsigned int and returns int: at most 1 GiB a call.
        const unsigned chunk = static_cast<unsigned>(std::min<uint64_t>(size - done, uint64_t(1) << 30));
        const int got = gzread(static_cast<gzFile>(m_file), to + done, chunk);
        if (got < 0) {
            int code = 0;
            const char* message = gzerror(static_cast<gzFile>(m_file), &code);
            throw DataError(m_path + ": truncated or corrupt gzip data (" + (message ? message : "zlib error") +
                            ") while reading " + what);
        }
        if (got == 0) {
            // The end: of the file, or (Z_BUF_ERROR) of a gzip stream cut short.
            int code = Z_OK;
            gzerror(static_cast<gzFile>(m_file), &code);
            if (code == Z_BUF_ERROR)
                throw DataError(m_path + ": truncated or corrupt gzip data (it ends inside " + what + ")");
            break;
        }
        done += uint64_t(got);
    }
    m_position += done;
    return done;
}

void InputFile::read(void* out, uint64_t size, const std::string& what) {
    if (readUpTo(out, size, what) != size)
        throw DataError(m_path + ": truncated: the file ends at byte " + std::to_string(m_position) + ", inside " +
                        what);
}

void InputFile::skip(uint64_t size, const std::string& what) {
    if (size == 0)
        return;
    const auto target = static_cast<z_off_t>(m_position + size);
    if (gzseek(static_cast<gzFile>(m_file), target, SEEK_SET) != target)
        throw DataError(m_path + ": truncated or corrupt while skipping to " + what);
    m_position += size;
}

bool InputFile::readRows(void* out, uint64_t dataOffset, uint64_t rowBytes, int64_t rows,
                         const std::vector<int64_t>* selected) {
    auto* to = static_cast<char*>(out);
    if (!selected) {
        skip(dataOffset - m_position, "the first row");
        const uint64_t size = uint64_t(rows) * rowBytes;
        return readUpTo(to, size, "the rows") == size;
    }
    for (size_t i = 0; i < selected->size(); ++i) {
        const int64_t row = (*selected)[i];
        if (row < 0 || row >= rows)
            throw InternalError(m_path + ": row " + std::to_string(row) + " selected of " + std::to_string(rows));
        const std::string what = "row " + std::to_string(row);
        skip(dataOffset + uint64_t(row) * rowBytes - m_position, what);
        if (readUpTo(to + i * rowBytes, rowBytes, what) != rowBytes)
            return false;
    }
    return true;
}

} // namespace mppdl::data
