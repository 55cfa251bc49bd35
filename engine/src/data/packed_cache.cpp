#include "data/packed_cache.h"

#include "mppdl/core/error.h"

#include <zlib.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace fs = std::filesystem;

namespace mppdl::data {

namespace {

std::string systemError(const std::string& what, const std::string& path) {
    return what + " " + path + ": " + std::strerror(errno);
}

uint32_t addChecksum(uint32_t crc, const unsigned char* data, int64_t bytes) {
    while (bytes > 0) {
        const auto part = static_cast<uInt>(std::min<int64_t>(bytes, 1 << 30));
        crc = static_cast<uint32_t>(crc32(crc, data, part));
        data += part;
        bytes -= part;
    }
    return crc;
}

/// An entry's directory name (the manifest keeps the whole key to compare).
std::string hashName(const std::string& key) {
    char out[17];
    std::snprintf(out, sizeof out, "%016llx", static_cast<unsigned long long>(fnv1a(key.data(), key.size())));
    return out;
}

bool processAlive(long pid) { return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM); }

void syncDirectory(const std::string& dir) {
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

} // namespace

uint64_t fnv1a(const void* data, size_t bytes, uint64_t h) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

at::Tensor mapRows(const std::string& path, at::ScalarType type, const std::vector<int64_t>& sizes, bool randomAccess) {
    int64_t expected = static_cast<int64_t>(c10::elementSize(type));
    for (const auto d : sizes)
        expected *= d;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw StorageError(systemError("cannot open the packed rows", path));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_size != expected) {
        ::close(fd);
        throw StorageError("the packed rows " + path + " hold " + std::to_string(st.st_size) + " bytes, " +
                           std::to_string(expected) + " expected");
    }
    if (expected == 0) {
        ::close(fd);
        return torch::empty(sizes, type);
    }
    void* data = ::mmap(nullptr, static_cast<size_t>(expected), PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd); // the mapping keeps the file
    if (data == MAP_FAILED)
        throw StorageError(systemError("cannot map the packed rows", path));
    if (randomAccess)
        ::madvise(data, static_cast<size_t>(expected), MADV_RANDOM);
    const auto length = static_cast<size_t>(expected);
    return torch::from_blob(
        data, sizes, [length](void* p) { ::munmap(p, length); }, torch::TensorOptions().dtype(type));
}

RowFileWriter::RowFileWriter(std::string path) : m_path(std::move(path)) {
    m_fd = ::open(m_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (m_fd < 0)
        throw StorageError(systemError("cannot create", m_path));
    m_crc = static_cast<uint32_t>(crc32(0, nullptr, 0));
}

RowFileWriter::~RowFileWriter() {
    if (m_fd >= 0)
        ::close(m_fd);
}

void RowFileWriter::append(const at::Tensor& rows) {
    const auto c = rows.contiguous();
    const auto* data = static_cast<const unsigned char*>(c.data_ptr());
    const auto bytes = static_cast<int64_t>(c.numel() * c.element_size());
    m_crc = addChecksum(m_crc, data, bytes);
    for (int64_t done = 0; done < bytes;) {
        const ssize_t n = ::write(m_fd, data + done, static_cast<size_t>(bytes - done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            throw StorageError(systemError("cannot write", m_path));
        done += n;
    }
    m_bytes += bytes;
    m_unsynced += bytes;
    // Written pages are dirty until they reach the disk, and cannot be reclaimed before.
    if (m_unsynced >= (int64_t(32) << 20))
        flush();
}

void RowFileWriter::flush() {
    if (::fdatasync(m_fd) != 0)
        throw StorageError(systemError("cannot write", m_path));
    ::posix_fadvise(m_fd, 0, 0, POSIX_FADV_DONTNEED);
    m_unsynced = 0;
}

uint32_t RowFileWriter::finish() {
    flush();
    if (::close(m_fd) != 0) {
        m_fd = -1;
        throw StorageError(systemError("cannot write", m_path));
    }
    m_fd = -1;
    return m_crc;
}

uint32_t fileChecksum(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw StorageError(systemError("cannot open", path));
    std::vector<unsigned char> buffer(size_t(4) << 20);
    auto crc = static_cast<uint32_t>(crc32(0, nullptr, 0));
    for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ::close(fd);
            throw StorageError(systemError("cannot read", path));
        }
        if (n == 0)
            break;
        crc = addChecksum(crc, buffer.data(), n);
    }
    ::close(fd);
    return crc;
}

PackedCache::PackedCache(const std::string& root, const std::string& identity, std::string key)
    : m_root(root), m_key(identity + std::move(key)), m_dir(m_root + "/" + hashName(identity)) {}

std::optional<nlohmann::json> PackedCache::find(std::string& why) const {
    std::ifstream in(m_dir + "/manifest.json");
    if (!in) {
        why = "none built yet";
        return std::nullopt;
    }
    nlohmann::json manifest;
    try {
        in >> manifest;
    } catch (const std::exception&) {
        why = "its manifest is unreadable";
        return std::nullopt;
    }
    if (manifest.value("key", std::string()) != m_key) {
        why = "the source or the rows it holds changed since it was built";
        return std::nullopt;
    }
    for (const auto& [name, crc] : manifest.at("files").items()) {
        std::error_code error;
        if (!fs::exists(path(name), error) || fileChecksum(path(name)) != crc.get<uint32_t>()) {
            why = name + " fails its checksum";
            return std::nullopt;
        }
    }
    return manifest;
}

const std::string& PackedCache::beginBuild() {
    std::error_code error;
    fs::create_directories(m_root, error);
    if (error)
        throw StorageError("cannot create the cache directory " + m_root + ": " + error.message());
    const std::string prefix = fs::path(m_dir).filename().string() + ".building-";
    for (const auto& entry : fs::directory_iterator(m_root, error)) {
        const std::string name = entry.path().filename().string();
        if (name.rfind(prefix, 0) == 0 && !processAlive(std::strtol(name.c_str() + prefix.size(), nullptr, 10)))
            fs::remove_all(entry.path(), error);
    }
    m_build = m_dir + ".building-" + std::to_string(::getpid());
    fs::remove_all(m_build, error);
    if (!fs::create_directory(m_build, error))
        throw StorageError("cannot create " + m_build + ": " + error.message());
    return m_build;
}

void PackedCache::commit(nlohmann::json manifest) {
    manifest["key"] = m_key;
    const std::string file = buildPath("manifest.json");
    {
        std::ofstream out(file);
        out << manifest.dump(1) << '\n';
        if (!out.flush())
            throw StorageError("cannot write " + file);
    }
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
    syncDirectory(m_build);
    // An entry already there failed find(): it goes (a run mapping its files keeps them).
    std::error_code error;
    fs::remove_all(m_dir, error);
    if (::rename(m_build.c_str(), m_dir.c_str()) != 0)
        throw StorageError(systemError("cannot move the cache into place:", m_dir));
    syncDirectory(m_root);
    m_build.clear();
}

void PackedCache::abandon() {
    if (m_build.empty())
        return;
    std::error_code error;
    fs::remove_all(m_build, error);
    m_build.clear();
}

std::string defaultCacheRoot() {
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
        return std::string(xdg) + "/mppdl";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.cache/mppdl";
    return "/tmp/mppdl-cache";
}

} // namespace mppdl::data
