#include "mppdl/store/project.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "store/schema.h"
#include "store/sqlite.h"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <utility>
#include <ctime>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <set>

namespace mppdl::store {

namespace fs = std::filesystem;
using nlohmann::json;

int currentSchemaVersion() { return projectMigrations().back().toVersion; }

namespace {

constexpr const char* kStateNames[] = {"queued", "running", "finished", "failed", "cancelled", "interrupted"};

} // namespace

const char* toString(RunState state) { return kStateNames[static_cast<int>(state)]; }

RunState parseRunState(const std::string& name) {
    for (int i = 0; i < 6; ++i)
        if (name == kStateNames[i])
            return static_cast<RunState>(i);
    throw StorageError("unknown run state '" + name +
                       "'; known states: queued, running, finished, failed, cancelled, interrupted");
}

namespace {

// A running run whose other-host process has not written for this long is taken for dead.
constexpr double kHeartbeatTimeoutSeconds = 600;
constexpr int kBusyTimeoutMs = 10000;
constexpr char kSqliteMagic[16] = {'S', 'Q', 'L', 'i', 't', 'e', ' ', 'f', 'o', 'r', 'm', 'a', 't', ' ', '3', '\0'};

// --- small facts about the world

double unixNow() { return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(); }

std::string isoTime(double unixSeconds) {
    const auto seconds = static_cast<std::time_t>(std::floor(unixSeconds));
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
    return text;
}

std::string isoNow() { return isoTime(unixNow()); }

std::string hostName() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0)
        return {};
    return name;
}

bool processExists(int64_t pid) {
    // kill(0, ...) and negative pids address process groups: never a run's process.
    if (pid <= 0 || pid > INT_MAX)
        return false;
    if (kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        return false;
    // A killed process stays a zombie until its parent reaps it: it exists but runs nothing.
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (std::getline(stat, line)) {
        const auto close = line.rfind(')'); // the command name may contain spaces and parentheses
        if (close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z')
            return false;
    }
    return true;
}

bool pathExists(const std::string& path) {
    struct stat st {};
    return lstat(path.c_str(), &st) == 0;
}

std::string errnoText() { return std::strerror(errno); }

// --- the file as bytes, before SQLite opens it

uint32_t bigEndian32(const unsigned char* p) {
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

bool validPageSize(uint32_t raw) {
    // The header stores 65536 as 1; otherwise a power of two from 512 to 32768.
    const uint32_t size = raw == 1 ? 65536 : raw;
    return size >= 512 && size <= 65536 && (size & (size - 1)) == 0;
}

/// "file:" URI of `path` with `query`; SQLite needs %-escapes for '?', '#' and '%' in paths.
std::string uriOf(const std::string& path, const std::string& query) {
    static const char* hex = "0123456789ABCDEF";
    std::string uri = "file:";
    for (const unsigned char c : fs::absolute(path).string()) {
        if (std::isalnum(c) || std::strchr("/-._~", c))
            uri += static_cast<char>(c);
        else
            uri += {'%', hex[c >> 4], hex[c & 15]};
    }
    return uri + "?" + query;
}

/// meta.written_by, or "" when it cannot be read.
std::string writtenBy(sqlite::Database& db) {
    try {
        sqlite::Statement query(db, "SELECT value FROM meta WHERE key = 'written_by'");
        return query.step() ? query.text(0) : std::string();
    } catch (const StorageError&) {
        return {};
    }
}

/// Reads written_by from a newer file without creating -wal/-shm files or taking locks: an
/// immutable connection reads the main file only, which is all a refusal message needs.
std::string peekWrittenBy(const std::string& path) {
    try {
        sqlite::Database db(uriOf(path, "immutable=1"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, path);
        return writtenBy(db);
    } catch (const StorageError&) {
        return {};
    }
}

[[noreturn]] void refuseNewer(const std::string& path, int version, const std::string& writer) {
    const std::string by = writer.empty() ? "" : ", written by mppdl " + writer;
    throw StorageError(path + " was written by a newer mppdl (project schema " + std::to_string(version) + by +
                       "); this mppdl " + versionString() + " reads schema " + std::to_string(currentSchemaVersion()) +
                       ": upgrade mppdl");
}

/// Up to `size` bytes from the start of `path`.
std::string readPrefix(const std::string& path, size_t size) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw StorageError(path + ": cannot read it: " + errnoText());
    std::string bytes(size, '\0');
    size_t got = 0;
    while (got < size) {
        const ssize_t n = ::read(fd, bytes.data() + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            const std::string error = errnoText();
            ::close(fd);
            throw StorageError(path + ": cannot read it: " + error);
        }
        if (n == 0)
            break;
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    bytes.resize(got);
    return bytes;
}

void requireRegularFile(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            throw StorageError(path + ": no such project file");
        throw StorageError(path + ": cannot examine it: " + errnoText());
    }
    if (S_ISDIR(st.st_mode))
        throw StorageError(path + " is a directory, not an mppdl project file");
    if (!S_ISREG(st.st_mode))
        throw StorageError(path + " is not a regular file, so not an mppdl project");
}

/// Refuses, from its first 100 bytes, a file that is missing, not SQLite, not a project, has a
/// broken header or a newer schema. Only reads; SQLite has not seen the file yet.
void examineHeader(const std::string& path) {
    requireRegularFile(path);
    const std::string bytes = readPrefix(path, 100);
    const auto* header = reinterpret_cast<const unsigned char*>(bytes.data());
    if (bytes.empty())
        throw StorageError(path + " is empty: it is not an mppdl project (not an SQLite database)");
    if (bytes.size() < sizeof kSqliteMagic || std::memcmp(header, kSqliteMagic, sizeof kSqliteMagic) != 0)
        throw StorageError(path + " is not an mppdl project (not an SQLite database)");
    if (bytes.size() < 100)
        throw StorageError(path + " is corrupt: its SQLite header is cut short (" + std::to_string(bytes.size()) +
                           " of 100 bytes)");
    const uint32_t pageSize = (uint32_t(header[16]) << 8) | header[17];
    if (!validPageSize(pageSize))
        throw StorageError(path + " is corrupt: its header gives an impossible page size (" + std::to_string(pageSize) +
                           ")");
    if (bigEndian32(header + 68) != kApplicationId)
        throw StorageError(path + " is an SQLite database but not an mppdl project");
    const uint32_t version = bigEndian32(header + 60);
    if (version > static_cast<uint32_t>(currentSchemaVersion()))
        refuseNewer(path, static_cast<int>(std::min<uint32_t>(version, INT_MAX)), peekWrittenBy(path));
}

/// No write permission bit at all, or not writable by this user. Root passes access(W_OK) for
/// any file, so the mode bits are what marks a project "do not write" there.
bool isReadOnlyFile(const std::string& path) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
        return true;
    return (st.st_mode & 0222) == 0 || access(path.c_str(), W_OK) != 0;
}

void requireWritableFolder(const std::string& path) {
    // SQLite creates PATH-wal and PATH-shm beside the file; without them it fails with a vague
    // "unable to open database file".
    auto folder = fs::path(path).parent_path();
    if (folder.empty())
        folder = ".";
    if (access(folder.c_str(), W_OK | X_OK) != 0 && !pathExists(path + "-wal"))
        throw StorageError(path + ": cannot record runs in it: its folder " + folder.string() +
                           " is not writable (SQLite keeps its journal files beside it)");
}

// --- connections

void configure(sqlite::Database& db) {
    sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
    db.exec("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL", "read it");
}

sqlite::Database connectWith(const std::string& file, int flags, const std::string& path) {
    sqlite::Database db(file, flags, path);
    configure(db);
    // Opening is lazy: reading the schema is what finds a damaged file.
    db.queryInt("SELECT count(*) FROM sqlite_master", "read its schema");
    return db;
}

/// A connection to an existing project, checked to be readable.
sqlite::Database connect(const std::string& path, bool readOnlyFile) {
    // A writable file gets a read-write connection even for Access::Read: the last connection to
    // close then checkpoints and removes the -wal and -shm files (a read-only one leaves them),
    // and an older schema can be upgraded. Readers set query_only.
    if (!readOnlyFile)
        return connectWith(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, path);
    // A read-only file: nothing writes it, so without a -wal file the main file is the whole
    // project and an immutable connection reads it without creating -wal/-shm files. With one
    // (a writer that crashed, then the file was made read-only) the log must be read.
    const std::string immutable = uriOf(path, "immutable=1");
    const int immutableFlags = SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX;
    if (!pathExists(path + "-wal"))
        return connectWith(immutable, immutableFlags, path);
    try {
        return connectWith(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, path);
    } catch (const StorageError&) {
        // Typically the -shm file cannot be created or written.
        return connectWith(immutable, immutableFlags, path);
    }
}

std::set<std::string> tableNames(sqlite::Database& db) {
    sqlite::Statement query(db, "SELECT name FROM sqlite_master WHERE type = 'table'");
    std::set<std::string> names;
    while (query.step())
        names.insert(query.text(0));
    return names;
}

void requireTables(sqlite::Database& db) {
    const auto present = tableNames(db);
    for (const auto& table : projectTables())
        if (!present.count(table))
            throw StorageError(db.label() + " is corrupt: it lacks the table '" + table + "' of project schema " +
                               std::to_string(currentSchemaVersion()));
}

/// What SQLite sees (the header checks read the main file only, the log may be newer).
int checkIdentity(sqlite::Database& db) {
    const auto id = static_cast<uint32_t>(db.queryInt("PRAGMA application_id", "read its application id"));
    if (id != kApplicationId)
        throw StorageError(db.label() + " is an SQLite database but not an mppdl project");
    const int version = userVersion(db);
    if (version > currentSchemaVersion())
        refuseNewer(db.label(), version, writtenBy(db));
    return version;
}

void recordWriter(sqlite::Database& db, int from, int /*to*/) {
    if (from == 0) {
        db.exec("PRAGMA application_id = " + std::to_string(static_cast<int32_t>(kApplicationId)),
                "mark it as an mppdl project");
        sqlite::Statement created(db, "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)");
        created.bindAll("created_by", versionString()).run();
        created.bindAll("created_at", isoNow()).run();
    }
    sqlite::Statement(db, "INSERT OR REPLACE INTO meta (key, value) VALUES ('written_by', ?)")
        .bindAll(versionString())
        .run();
}

/// Brings an older schema forward; a read-only file cannot be.
void upgrade(sqlite::Database& db, int version, bool readOnlyFile) {
    if (version < currentSchemaVersion()) {
        if (readOnlyFile)
            throw StorageError(db.label() + " has project schema " + std::to_string(version) + ", older than schema " +
                               std::to_string(currentSchemaVersion()) +
                               " of this mppdl, and is read-only: make it writable so that it can be upgraded");
        migrate(db, projectMigrations(), recordWriter);
    }
    requireTables(db);
}

// --- creating

std::string temporaryName(const std::string& path) {
    static std::atomic<unsigned> counter{0};
    const fs::path p(path);
    const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
    // Hidden, and short enough for NAME_MAX whatever the project's name.
    const std::string name = "." + p.filename().string().substr(0, 120) + ".creating-" + std::to_string(getpid()) +
                             "-" + std::to_string(counter++) + "-" + std::to_string(stamp);
    return (p.parent_path() / name).string();
}

/// Removes a file this process made, with the journal files SQLite may have left beside it.
void removeWithSidecars(const std::string& file) {
    for (const char* suffix : {"", "-wal", "-shm", "-journal"})
        ::unlink((file + suffix).c_str());
}

void syncFile(const std::string& path, bool directory) {
    const int fd = ::open(path.c_str(), (directory ? O_RDONLY | O_DIRECTORY : O_RDONLY) | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

/// Writes a complete, empty project to `file` (which must not exist yet).
void buildProject(const std::string& file, const std::string& path) {
    // O_EXCL: the name is ours alone, even if a leftover of a crashed creator had the same name.
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0)
        throw StorageError(path + ": cannot create it: cannot create " + file + ": " + errnoText());
    ::close(fd);

    sqlite::Database db(file, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, path);
    sqlite3_busy_timeout(db.handle(), kBusyTimeoutMs);
    {
        sqlite::Statement journal(db, "PRAGMA journal_mode = WAL");
        if (!journal.step() || journal.text(0) != "wal")
            throw StorageError(path + ": cannot create it: the file system does not support SQLite's WAL journal");
    }
    configure(db);
    migrate(db, projectMigrations(), recordWriter);
    // Closing the last connection checkpoints the log into the file and removes it.
    db.close();
    syncFile(file, false);
}

/// Puts `file` at `path` unless something is there already; false when something is.
bool placeWithoutReplacing(const std::string& file, const std::string& path) {
    if (::link(file.c_str(), path.c_str()) == 0) {
        ::unlink(file.c_str());
        return true;
    }
    if (errno == EEXIST)
        return false;
    // Some file systems have no hard links; a rename that refuses to replace is as good.
    const int linkError = errno;
    if (::renameat2(AT_FDCWD, file.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE) == 0)
        return true;
    if (errno == EEXIST)
        return false;
    throw StorageError(path + ": cannot create it: cannot move the new project into place: " +
                       std::strerror(linkError) + " (link), " + errnoText() + " (rename)");
}

// --- rows

std::string jsonText(const json& value) { return value.dump(); }

json parseJson(const std::string& path, const std::string& text, const std::string& what) {
    try {
        return json::parse(text);
    } catch (const json::exception& e) {
        throw StorageError(path + ": " + what + " is not valid JSON: " + e.what());
    }
}

std::vector<std::string> stringList(const std::string& path, const std::string& text, const std::string& what) {
    const auto value = parseJson(path, text, what);
    std::vector<std::string> out;
    if (!value.is_array())
        throw StorageError(path + ": " + what + " is not a JSON array");
    for (const auto& item : value) {
        if (!item.is_string())
            throw StorageError(path + ": " + what + " holds a non-string item");
        out.push_back(item.get<std::string>());
    }
    return out;
}

/// JSON numbers; null (NaN or infinity when written) reads as NaN.
std::vector<double> numberList(const std::string& path, const json& value, const std::string& what) {
    std::vector<double> out;
    if (!value.is_array())
        throw StorageError(path + ": " + what + " is not a JSON array");
    for (const auto& item : value) {
        if (item.is_number())
            out.push_back(item.get<double>());
        else if (item.is_null())
            out.push_back(std::numeric_limits<double>::quiet_NaN());
        else
            throw StorageError(path + ": " + what + " holds a non-number item");
    }
    return out;
}

std::vector<int64_t> integerList(const std::string& path, const json& value, const std::string& what) {
    std::vector<int64_t> out;
    if (!value.is_array())
        throw StorageError(path + ": " + what + " is not a JSON array");
    for (const auto& item : value) {
        if (!item.is_number_integer())
            throw StorageError(path + ": " + what + " holds a non-integer item");
        out.push_back(item.get<int64_t>());
    }
    return out;
}

/// Whether two architecture specs are the same: as JSON values when both parse (so layout and key
/// order do not make a new version), else as text.
bool sameSpec(const std::string& a, const std::string& b) {
    if (a == b)
        return true;
    const auto ja = json::parse(a, nullptr, false);
    const auto jb = json::parse(b, nullptr, false);
    return !ja.is_discarded() && !jb.is_discarded() && ja == jb;
}

constexpr const char* kDatasetColumns =
    "SELECT id, name, kind, location, options, schema, class_names, statistics, created_at FROM datasets";

DatasetRecord readDataset(const sqlite::Statement& row, const std::string& path) {
    DatasetRecord d;
    d.id = row.integer(0);
    d.name = row.text(1);
    d.kind = row.text(2);
    d.location = row.text(3);
    d.options = row.text(4);
    d.schema = row.text(5);
    d.classNames = stringList(path, row.text(6), "the class names of dataset " + std::to_string(d.id));
    d.statistics = row.text(7);
    d.createdAt = row.text(8);
    return d;
}

constexpr const char* kVersionColumns =
    "SELECT v.id, a.name, v.version, v.spec, v.note, v.created_at,"
    " (SELECT count(*) FROM runs r WHERE r.architecture_version_id = v.id)"
    " FROM architecture_versions v JOIN architectures a ON a.id = v.architecture_id";

ArchitectureVersion readVersion(const sqlite::Statement& row) {
    ArchitectureVersion v;
    v.id = row.integer(0);
    v.name = row.text(1);
    v.version = static_cast<int>(row.integer(2));
    v.spec = row.text(3);
    v.note = row.text(4);
    v.createdAt = row.text(5);
    v.runs = row.integer(6);
    return v;
}

constexpr const char* kRunColumns =
    "SELECT r.id, r.name, r.dataset_id, r.architecture_version_id, a.name, v.version, r.strategy, r.segments,"
    " r.config, r.state, r.host, r.pid, r.versions, r.model_info, r.created_at, r.started_at, r.ended_at,"
    " r.heartbeat, r.epochs, r.epochs_done, r.best_epoch, r.best_val_accuracy, r.test_accuracy, r.seconds,"
    " r.error_kind, r.error_message, r.warm_start_run, r.warm_start_epoch"
    " FROM runs r JOIN architecture_versions v ON v.id = r.architecture_version_id"
    " JOIN architectures a ON a.id = v.architecture_id";

/// The state a stored `running` run really has: its process may be gone without a word.
RunState liveState(RunState stored, const std::string& host, int64_t pid, double heartbeat,
                   const std::string& thisHost) {
    if (stored != RunState::Running)
        return stored;
    if (!host.empty() && host == thisHost)
        return processExists(pid) ? RunState::Running : RunState::Interrupted;
    return unixNow() - heartbeat > kHeartbeatTimeoutSeconds ? RunState::Interrupted : RunState::Running;
}

RunState storedState(const std::string& path, const std::string& name) {
    try {
        return parseRunState(name);
    } catch (const StorageError& e) {
        throw StorageError(path + ": " + e.what());
    }
}

RunRecord readRun(const sqlite::Statement& row, const std::string& path, const std::string& thisHost) {
    RunRecord r;
    r.id = row.integer(0);
    r.name = row.text(1);
    r.datasetId = row.optionalInteger(2).value_or(0);
    r.architectureVersionId = row.integer(3);
    r.architectureName = row.text(4);
    r.architectureVersion = static_cast<int>(row.integer(5));
    r.strategy = row.text(6);
    r.segments = static_cast<int>(row.integer(7));
    r.config = row.text(8);
    r.host = row.text(10);
    r.pid = row.integer(11);
    r.versions = row.text(12);
    r.modelInfo = row.text(13);
    r.createdAt = row.text(14);
    r.startedAt = row.text(15);
    r.endedAt = row.text(16);
    r.heartbeat = row.real(17);
    r.epochs = static_cast<int>(row.integer(18));
    r.epochsDone = static_cast<int>(row.integer(19));
    r.bestEpoch = static_cast<int>(row.integer(20));
    r.bestValAccuracy = row.optionalReal(21);
    r.testAccuracy = row.optionalReal(22);
    r.seconds = row.real(23);
    r.errorKind = row.text(24);
    r.errorMessage = row.text(25);
    r.warmStartRun = row.optionalInteger(26);
    if (const auto epoch = row.optionalInteger(27))
        r.warmStartEpoch = static_cast<int>(*epoch);
    r.state = liveState(storedState(path, row.text(9)), r.host, r.pid, r.heartbeat, thisHost);
    return r;
}

std::vector<RunRecord> readRuns(sqlite::Statement& query, const std::string& path, const std::string& thisHost) {
    std::vector<RunRecord> runs;
    while (query.step())
        runs.push_back(readRun(query, path, thisHost));
    return runs;
}

// A checkpoint's blobs are stored behind a tag and their CRC-32 (little-endian), checked whenever
// they are read: a damaged byte is a storage error, never a model of garbage weights. Blobs written
// before the tag existed have none and are taken as they are.
constexpr char kChecksumTag[8] = {'m', 'p', 'd', 'l', 'c', 'r', 'c', '1'};
constexpr size_t kChecksumHeader = sizeof kChecksumTag + 4;

uint32_t crcOf(const char* data, size_t size) {
    uLong crc = crc32(0L, Z_NULL, 0);
    // zlib takes at most 4 GB at a time.
    for (size_t done = 0; done < size;) {
        const auto n = static_cast<uInt>(std::min<size_t>(size - done, size_t(1) << 30));
        crc = crc32(crc, reinterpret_cast<const Bytef*>(data + done), n);
        done += n;
    }
    return static_cast<uint32_t>(crc);
}

std::string withChecksum(const std::string& blob) {
    const uint32_t crc = crcOf(blob.data(), blob.size());
    std::string out(kChecksumTag, sizeof kChecksumTag);
    for (int i = 0; i < 4; ++i)
        out += static_cast<char>((crc >> (8 * i)) & 0xff);
    return out + blob;
}

bool hasChecksum(const std::string& blob) {
    return blob.size() >= kChecksumHeader && std::memcmp(blob.data(), kChecksumTag, sizeof kChecksumTag) == 0;
}

/// The blob without its checksum header, checked; `what` names it in the error.
std::string checkedBlob(std::string blob, const std::string& what) {
    if (!hasChecksum(blob))
        return blob; // written before checksums
    uint32_t stored = 0;
    for (int i = 0; i < 4; ++i)
        stored |= uint32_t(static_cast<unsigned char>(blob[sizeof kChecksumTag + size_t(i)])) << (8 * i);
    if (crcOf(blob.data() + kChecksumHeader, blob.size() - kChecksumHeader) != stored)
        throw StorageError(what + " is damaged: its bytes fail their checksum (CRC-32); it cannot be used");
    return blob.substr(kChecksumHeader);
}

Checkpoint readCheckpoint(const sqlite::Statement& row, const std::string& label, int64_t runId) {
    Checkpoint c;
    c.epoch = static_cast<int>(row.integer(0));
    c.valAccuracy = row.optionalReal(1);
    c.wallSeconds = row.real(2);
    const std::string what = label + ": the checkpoint of run " + std::to_string(runId) + ", epoch " +
                             std::to_string(c.epoch);
    c.weights = checkedBlob(row.blob(3), what + " (weights)");
    c.state = checkedBlob(row.blob(4), what + " (resume state)");
    if (c.weights.empty())
        throw StorageError(what + " holds no weights");
    return c;
}

/// The epoch with the highest validation accuracy (the earliest of equals); 0 when none has one.
/// `rows` are (epoch, accuracy) in epoch order.
int bestEpochOf(const std::vector<std::pair<int, std::optional<double>>>& rows) {
    int best = 0;
    double bestAccuracy = -std::numeric_limits<double>::infinity();
    for (const auto& [epoch, accuracy] : rows)
        if (accuracy && *accuracy > bestAccuracy) {
            best = epoch;
            bestAccuracy = *accuracy;
        }
    return best;
}

bool allDigits(const std::string& text) {
    return !text.empty() && text.size() <= 18 &&
           std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); });
}

/// The project files this process holds SQLite connections to, by inode. A POSIX lock belongs to
/// a process and a file, and closing any descriptor of the file releases all of the process's
/// locks on it, SQLite's included (sqlite.org/howtocorrupt.html, 2.2.1): another process could
/// then checkpoint and delete the -wal and -shm files this one still uses, and its reads come back
/// "malformed". So the raw header check, which opens and closes the file, runs only while no
/// connection of this process has the file open (its connections share their locks correctly).
class OpenProjects {
public:
    class Registration {
    public:
        Registration() = default;
        Registration(dev_t device, ino_t inode) : m_key{device, inode}, m_active(true) {}
        Registration(Registration&& o) noexcept : m_key(o.m_key), m_active(std::exchange(o.m_active, false)) {}
        Registration& operator=(Registration&& o) noexcept {
            release();
            m_key = o.m_key;
            m_active = std::exchange(o.m_active, false);
            return *this;
        }
        ~Registration() { release(); }

    private:
        void release() {
            if (!m_active)
                return;
            std::lock_guard<std::mutex> lock(mutex());
            if (--counts()[m_key] == 0)
                counts().erase(m_key);
            m_active = false;
        }
        std::pair<dev_t, ino_t> m_key{};
        bool m_active = false;
    };

    /// Registers a connection about to open `path`; `examine` (the header check) runs first when
    /// no other connection of this process has the file open.
    static Registration enter(const std::string& path, const std::function<void()>& examine) {
        std::lock_guard<std::mutex> lock(mutex());
        struct stat st {};
        if (stat(path.c_str(), &st) != 0 || counts().count({st.st_dev, st.st_ino}) == 0)
            examine(); // throws for a missing or unfit file
        if (stat(path.c_str(), &st) != 0)
            throw StorageError(path + ": no such project file");
        ++counts()[{st.st_dev, st.st_ino}];
        return Registration(st.st_dev, st.st_ino);
    }

private:
    static std::mutex& mutex() {
        static std::mutex m;
        return m;
    }
    static std::map<std::pair<dev_t, ino_t>, int>& counts() {
        static std::map<std::pair<dev_t, ino_t>, int> c;
        return c;
    }
};

} // namespace

struct Project::Impl {
    std::string path;
    /// Declared before the connection: released after it closes.
    OpenProjects::Registration registration;
    sqlite::Database db;
    bool writable = false;
    int schemaVersion = 0;
    std::string host = hostName();

    void requireWritable(const std::string& what) const {
        if (!writable)
            throw StorageError(path + " is open for reading only: cannot " + what);
    }

    /// Throws unless run `id` exists.
    void requireRun(int64_t id) {
        sqlite::Statement query(db, "SELECT 1 FROM runs WHERE id = ?");
        if (!query.bindAll(id).step())
            throw StorageError(path + ": no run with id " + std::to_string(id));
    }

    /// Runs an UPDATE of one run; throws when there is no such run.
    template <class... Args>
    void updateRun(int64_t id, const std::string& sql, const Args&... args) {
        sqlite::Statement update(db, sql);
        update.bindAll(args..., id).run();
        if (db.changes() == 0)
            throw StorageError(path + ": no run with id " + std::to_string(id));
    }

    /// Epoch and validation accuracy of the run's kept checkpoints, in epoch order.
    std::vector<std::pair<int, std::optional<double>>> checkpointAccuracies(int64_t runId) {
        sqlite::Statement query(db, "SELECT epoch, val_accuracy FROM checkpoints WHERE run_id = ? ORDER BY epoch");
        query.bindAll(runId);
        std::vector<std::pair<int, std::optional<double>>> rows;
        while (query.step())
            rows.emplace_back(static_cast<int>(query.integer(0)), query.optionalReal(1));
        return rows;
    }

    std::string uniqueDatasetName(const std::string& base) {
        sqlite::Statement taken(db, "SELECT 1 FROM datasets WHERE name = ?");
        std::string name = base;
        for (int n = 2; taken.bindAll(name).step(); ++n) {
            taken.reset();
            name = base + "-" + std::to_string(n);
        }
        taken.reset();
        return name;
    }
};

Project::Project(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
Project::Project(Project&&) noexcept = default;
Project& Project::operator=(Project&&) noexcept = default;
Project::~Project() = default;

namespace {

Project::Impl& implOf(const std::unique_ptr<Project::Impl>& impl) {
    if (!impl)
        throw InternalError("use of a moved-from mppdl::store::Project");
    return *impl;
}

} // namespace

Project Project::open(const std::string& path, Access access) {
    auto registration = OpenProjects::enter(path, [&] { examineHeader(path); });
    const bool readOnlyFile = isReadOnlyFile(path);
    if (access == Access::Write) {
        if (readOnlyFile)
            throw StorageError(path + " is read-only: cannot record runs in it");
        requireWritableFolder(path);
    }
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->registration = std::move(registration);
    impl->db = connect(path, readOnlyFile);
    upgrade(impl->db, checkIdentity(impl->db), readOnlyFile);
    impl->schemaVersion = userVersion(impl->db);
    impl->writable = access == Access::Write;
    if (!impl->writable && !readOnlyFile)
        impl->db.exec("PRAGMA query_only = ON", "configure the connection for reading");
    return Project(std::move(impl));
}

namespace {

/// Makes the new file `path` with `build(temporary)` beside it, then links it into place: the file
/// appears complete or not at all, and never replaces one that exists. `doing` says what for
/// refusals ("creating a project").
void writeNewFile(const std::string& path, const std::string& doing,
                  const std::function<void(const std::string& temporary)>& build) {
    if (pathExists(path))
        throw StorageError(path + " already exists: not " + doing + " over it");
    const auto folder = fs::path(path).parent_path();
    if (!folder.empty() && !fs::is_directory(folder))
        throw StorageError(path + ": " + doing + " there: no such folder " + folder.string());
    const std::string temporary = temporaryName(path);
    try {
        build(temporary);
        if (!placeWithoutReplacing(temporary, path))
            throw StorageError(path + " already exists: not " + doing + " over it");
    } catch (...) {
        removeWithSidecars(temporary);
        throw;
    }
    syncFile(folder.empty() ? "." : folder.string(), true);
}

} // namespace

Project Project::create(const std::string& path) {
    writeNewFile(path, "creating a project", [&](const std::string& temporary) { buildProject(temporary, path); });
    return open(path, Access::Write);
}

Project Project::openOrCreate(const std::string& path) {
    if (pathExists(path))
        return open(path, Access::Write);
    try {
        return create(path);
    } catch (const StorageError&) {
        // Another process may have created it in the meantime: then use theirs.
        if (pathExists(path))
            return open(path, Access::Write);
        throw;
    }
}

const std::string& Project::path() const { return implOf(m_impl).path; }

int Project::schemaVersion() const { return implOf(m_impl).schemaVersion; }

bool Project::writable() const { return implOf(m_impl).writable; }

void Project::saveCopy(const std::string& path) const {
    auto& self = implOf(m_impl);
    // VACUUM INTO reads one snapshot (the WAL included) into a fresh file: consistent while runs write.
    writeNewFile(path, "saving the project", [&](const std::string& temporary) {
        sqlite::Statement(self.db, "VACUUM INTO ?").bind(1, temporary).step();
    });
}

std::string Project::integrityCheck() const {
    auto& self = implOf(m_impl);
    sqlite::Statement check(self.db, "PRAGMA integrity_check");
    std::string findings;
    while (check.step())
        findings += (findings.empty() ? "" : "\n") + check.text(0);
    return findings;
}

// --- datasets

int64_t Project::registerDataset(const DatasetRecord& record) {
    auto& self = implOf(m_impl);
    self.requireWritable("register a dataset");
    sqlite::Transaction transaction(self.db);
    const std::string classNames = jsonText(record.classNames);

    sqlite::Statement find(self.db, "SELECT id FROM datasets WHERE kind = ? AND location = ? AND options = ?");
    const auto existing = find.bindAll(record.kind, record.location, record.options).step()
                              ? std::optional<int64_t>(find.integer(0))
                              : std::nullopt;
    find.reset();
    int64_t id = 0;
    if (existing) {
        id = *existing;
        sqlite::Statement(self.db, "UPDATE datasets SET schema = ?, class_names = ?, statistics = ? WHERE id = ?")
            .bindAll(record.schema, classNames, record.statistics, id)
            .run();
    } else {
        const auto name = self.uniqueDatasetName(record.name.empty() ? record.kind : record.name);
        sqlite::Statement(self.db,
                          "INSERT INTO datasets (name, kind, location, options, schema, class_names, statistics,"
                          " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bindAll(name, record.kind, record.location, record.options, record.schema, classNames, record.statistics,
                     isoNow())
            .run();
        id = self.db.lastInsertId();
    }
    transaction.commit();
    return id;
}

std::vector<DatasetRecord> Project::datasets() const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kDatasetColumns) + " ORDER BY id");
    std::vector<DatasetRecord> out;
    while (query.step())
        out.push_back(readDataset(query, self.path));
    return out;
}

std::optional<DatasetRecord> Project::dataset(int64_t id) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kDatasetColumns) + " WHERE id = ?");
    if (!query.bindAll(id).step())
        return std::nullopt;
    return readDataset(query, self.path);
}

// --- architectures

ArchitectureVersion Project::addArchitecture(const std::string& name, const std::string& spec, const std::string& note,
                                             bool* created) {
    auto& self = implOf(m_impl);
    self.requireWritable("add an architecture");
    if (name.empty())
        throw StorageError(self.path + ": cannot add an architecture without a name");
    sqlite::Transaction transaction(self.db);

    sqlite::Statement findName(self.db, "SELECT id FROM architectures WHERE name = ?");
    int64_t architectureId = 0;
    if (findName.bindAll(name).step()) {
        architectureId = findName.integer(0);
    } else {
        sqlite::Statement(self.db, "INSERT INTO architectures (name, created_at) VALUES (?, ?)")
            .bindAll(name, isoNow())
            .run();
        architectureId = self.db.lastInsertId();
    }
    findName.reset();

    sqlite::Statement latest(self.db, "SELECT id, version, spec FROM architecture_versions"
                                      " WHERE architecture_id = ? ORDER BY version DESC LIMIT 1");
    int64_t versionId = 0;
    int latestVersion = 0;
    if (latest.bindAll(architectureId).step()) {
        latestVersion = static_cast<int>(latest.integer(1));
        if (sameSpec(latest.text(2), spec))
            versionId = latest.integer(0);
    }
    latest.reset();
    if (created)
        *created = versionId == 0;
    if (versionId == 0) {
        sqlite::Statement(self.db, "INSERT INTO architecture_versions (architecture_id, version, spec, note,"
                                   " created_at) VALUES (?, ?, ?, ?, ?)")
            .bindAll(architectureId, latestVersion + 1, spec, note, isoNow())
            .run();
        versionId = self.db.lastInsertId();
    }
    transaction.commit();
    return *architectureById(versionId);
}

std::vector<ArchitectureSummary> Project::architectures() const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, "SELECT a.name, count(v.id), max(v.version),"
                                     " (SELECT count(*) FROM runs r JOIN architecture_versions w"
                                     "  ON w.id = r.architecture_version_id WHERE w.architecture_id = a.id),"
                                     " (SELECT created_at FROM architecture_versions w WHERE w.architecture_id = a.id"
                                     "  ORDER BY w.version DESC LIMIT 1)"
                                     " FROM architectures a JOIN architecture_versions v ON v.architecture_id = a.id"
                                     " GROUP BY a.id ORDER BY a.name");
    std::vector<ArchitectureSummary> out;
    while (query.step()) {
        ArchitectureSummary s;
        s.name = query.text(0);
        s.versions = static_cast<int>(query.integer(1));
        s.latest = static_cast<int>(query.integer(2));
        s.runs = query.integer(3);
        s.updatedAt = query.text(4);
        out.push_back(s);
    }
    return out;
}

std::vector<ArchitectureVersion> Project::architectureVersions(const std::string& name) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kVersionColumns) + " WHERE a.name = ? ORDER BY v.version");
    query.bindAll(name);
    std::vector<ArchitectureVersion> out;
    while (query.step())
        out.push_back(readVersion(query));
    return out;
}

std::optional<ArchitectureVersion> Project::architecture(const std::string& name, int version) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kVersionColumns) + " WHERE a.name = ?1 AND (?2 = 0 OR v.version = ?2)"
                                                                    " ORDER BY v.version DESC LIMIT 1");
    if (!query.bindAll(name, version).step())
        return std::nullopt;
    return readVersion(query);
}

std::optional<ArchitectureVersion> Project::architectureById(int64_t id) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kVersionColumns) + " WHERE v.id = ?");
    if (!query.bindAll(id).step())
        return std::nullopt;
    return readVersion(query);
}

// --- runs

int64_t Project::createRun(const NewRun& run) {
    auto& self = implOf(m_impl);
    self.requireWritable("record a run");
    sqlite::Transaction transaction(self.db);

    sqlite::Statement architecture(self.db, "SELECT a.name FROM architecture_versions v"
                                            " JOIN architectures a ON a.id = v.architecture_id WHERE v.id = ?");
    if (!architecture.bindAll(run.architectureVersionId).step())
        throw StorageError(self.path + ": cannot record a run: no architecture version with id " +
                           std::to_string(run.architectureVersionId));
    const std::string architectureName = architecture.text(0);
    architecture.reset();
    if (run.datasetId != 0 && !dataset(run.datasetId))
        throw StorageError(self.path + ": cannot record a run: no dataset with id " + std::to_string(run.datasetId));
    if (run.warmStartRun)
        self.requireRun(*run.warmStartRun);

    const auto datasetId = run.datasetId != 0 ? std::optional<int64_t>(run.datasetId) : std::nullopt;
    sqlite::Statement(self.db,
                      "INSERT INTO runs (name, dataset_id, architecture_version_id, strategy, segments, config,"
                      " state, versions, created_at, epochs, warm_start_run, warm_start_epoch)"
                      " VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)")
        .bindAll(run.name, datasetId, run.architectureVersionId, run.strategy, run.segments, run.config, run.versions,
                 isoNow(), run.epochs, run.warmStartRun, run.warmStartEpoch)
        .run();
    const int64_t id = self.db.lastInsertId();
    // The default name needs the id, known only after the insert.
    if (run.name.empty())
        self.updateRun(id, "UPDATE runs SET name = ? WHERE id = ?", architectureName + "-" + std::to_string(id));
    transaction.commit();
    return id;
}

void Project::startRun(int64_t runId) {
    auto& self = implOf(m_impl);
    self.requireWritable("start a run");
    sqlite::Transaction transaction(self.db);
    const auto current = run(runId);
    if (!current)
        throw StorageError(self.path + ": no run with id " + std::to_string(runId));
    // Two processes continuing one run would interleave their metrics and checkpoints.
    if (current->state == RunState::Running && !(current->host == self.host && current->pid == getpid()))
        throw StorageError(self.path + ": run " + std::to_string(runId) + " (" + current->name +
                           ") is already running, as process " + std::to_string(current->pid) + " on " + current->host);
    const double now = unixNow();
    // A resumed run keeps the time it first started.
    self.updateRun(runId,
                   "UPDATE runs SET state = 'running', host = ?, pid = ?, started_at = coalesce(started_at, ?),"
                   " ended_at = NULL, error_kind = '', error_message = '', heartbeat = ? WHERE id = ?",
                   self.host, static_cast<int64_t>(getpid()), isoTime(now), now);
    transaction.commit();
}

void Project::setModelInfo(int64_t runId, const std::string& json) {
    auto& self = implOf(m_impl);
    self.requireWritable("record a run's model information");
    sqlite::Transaction transaction(self.db);
    self.updateRun(runId, "UPDATE runs SET model_info = ? WHERE id = ?", json);
    transaction.commit();
}

void Project::updateProgress(int64_t runId, const RunProgress& progress) {
    auto& self = implOf(m_impl);
    self.requireWritable("record a run's progress");
    sqlite::Transaction transaction(self.db);
    self.updateRun(runId,
                   "UPDATE runs SET epochs_done = ?, best_epoch = ?, best_val_accuracy = ?, seconds = ?,"
                   " heartbeat = ? WHERE id = ?",
                   progress.epochsDone, progress.bestEpoch, progress.bestValAccuracy, progress.seconds, unixNow());
    transaction.commit();
}

void Project::endRun(int64_t runId, RunState state, const std::string& errorKind, const std::string& errorMessage) {
    auto& self = implOf(m_impl);
    self.requireWritable("end a run");
    if (state == RunState::Queued || state == RunState::Running)
        throw StorageError(self.path + ": cannot end run " + std::to_string(runId) + " as " + toString(state) +
                           ": a run ends finished, failed, cancelled or interrupted");
    sqlite::Transaction transaction(self.db);
    const double now = unixNow();
    self.updateRun(runId,
                   "UPDATE runs SET state = ?, ended_at = ?, heartbeat = ?, error_kind = ?, error_message = ?"
                   " WHERE id = ?",
                   toString(state), isoTime(now), now, errorKind, errorMessage);
    transaction.commit();
}

void Project::setTestAccuracy(int64_t runId, double accuracy) {
    auto& self = implOf(m_impl);
    self.requireWritable("record a run's test accuracy");
    sqlite::Transaction transaction(self.db);
    self.updateRun(runId, "UPDATE runs SET test_accuracy = ? WHERE id = ?", accuracy);
    transaction.commit();
}

int Project::reconcileInterrupted() {
    auto& self = implOf(m_impl);
    self.requireWritable("mark interrupted runs");
    auto gone = [&] {
        sqlite::Statement query(self.db, "SELECT id, host, pid, heartbeat FROM runs WHERE state = 'running'");
        std::vector<std::pair<int64_t, double>> found; // id, last heartbeat
        while (query.step())
            if (liveState(RunState::Running, query.text(1), query.integer(2), query.real(3), self.host) ==
                RunState::Interrupted)
                found.emplace_back(query.integer(0), query.real(3));
        return found;
    };
    // Usually nothing is gone: then this only reads, and never waits for a training thread's write
    // (the workbench calls it every few seconds on its GUI thread).
    if (gone().empty())
        return 0;
    sqlite::Transaction transaction(self.db);
    const auto marked = gone();
    // The last heartbeat is the best guess of when the process died.
    sqlite::Statement mark(self.db, "UPDATE runs SET state = 'interrupted', ended_at = ? WHERE id = ?");
    for (const auto& [id, heartbeat] : marked)
        mark.bindAll(isoTime(heartbeat > 0 ? heartbeat : unixNow()), id).run();
    transaction.commit();
    return static_cast<int>(marked.size());
}

std::vector<RunRecord> Project::runs() const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kRunColumns) + " ORDER BY r.id");
    return readRuns(query, self.path, self.host);
}

std::optional<RunRecord> Project::run(int64_t id) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, std::string(kRunColumns) + " WHERE r.id = ?");
    query.bindAll(id);
    auto found = readRuns(query, self.path, self.host);
    if (found.empty())
        return std::nullopt;
    return found.front();
}

std::optional<RunRecord> Project::findRun(const std::string& idOrName) const {
    auto& self = implOf(m_impl);
    if (allDigits(idOrName))
        if (auto byId = run(std::stoll(idOrName)))
            return byId;
    sqlite::Statement query(self.db, std::string(kRunColumns) + " WHERE r.name = ? ORDER BY r.id");
    query.bindAll(idOrName);
    auto found = readRuns(query, self.path, self.host);
    if (found.empty())
        return std::nullopt;
    if (found.size() > 1) {
        std::string ids;
        for (const auto& r : found)
            ids += (ids.empty() ? "" : ", ") + std::to_string(r.id);
        throw StorageError(self.path + ": " + std::to_string(found.size()) + " runs are named '" + idOrName +
                           "' (ids " + ids + "): name one by its id");
    }
    return found.front();
}

// --- metric series

void Project::appendMetrics(int64_t runId, const std::vector<MetricPoint>& points) {
    auto& self = implOf(m_impl);
    self.requireWritable("record metrics");
    sqlite::Transaction transaction(self.db);
    self.updateRun(runId, "UPDATE runs SET heartbeat = ? WHERE id = ?", unixNow());
    sqlite::Statement insert(self.db, "INSERT INTO metrics (run_id, segment, epoch, step, kind, name, value,"
                                      " wall_seconds) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    for (const auto& p : points)
        insert.bindAll(runId, p.segment, p.epoch, p.step, p.kind, p.name, p.value, p.wallSeconds).run();
    transaction.commit();
}

std::vector<MetricPoint> Project::metrics(int64_t runId, const std::string& kind) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, "SELECT segment, epoch, step, kind, name, value, wall_seconds FROM metrics"
                                     " WHERE run_id = ?1 AND (?2 = '' OR kind = ?2) ORDER BY step, name, rowid");
    query.bindAll(runId, kind);
    std::vector<MetricPoint> out;
    while (query.step()) {
        MetricPoint p;
        p.segment = static_cast<int>(query.integer(0));
        p.epoch = static_cast<int>(query.integer(1));
        p.step = query.integer(2);
        p.kind = query.text(3);
        p.name = query.text(4);
        p.value = query.real(5);
        p.wallSeconds = query.real(6);
        out.push_back(p);
    }
    return out;
}

void Project::truncateMetrics(int64_t runId, int epoch) {
    auto& self = implOf(m_impl);
    self.requireWritable("drop metrics");
    sqlite::Transaction transaction(self.db);
    sqlite::Statement(self.db, "DELETE FROM metrics WHERE run_id = ? AND epoch > ?").bindAll(runId, epoch).run();
    transaction.commit();
}

// --- checkpoints

void Project::saveCheckpoint(int64_t runId, const Checkpoint& checkpoint, int keepLast) {
    auto& self = implOf(m_impl);
    self.requireWritable("save a checkpoint");
    sqlite::Transaction transaction(self.db);
    self.requireRun(runId);
    sqlite::Statement insert(self.db, "INSERT OR REPLACE INTO checkpoints (run_id, epoch, val_accuracy, wall_seconds,"
                                      " weights, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
    insert.bindAll(runId, checkpoint.epoch, checkpoint.valAccuracy, checkpoint.wallSeconds);
    if (checkpoint.weights.empty())
        throw InternalError("a checkpoint without weights (run " + std::to_string(runId) + ", epoch " +
                            std::to_string(checkpoint.epoch) + ")");
    // SQLite keeps a value of at most SQLITE_LIMIT_LENGTH bytes (10^9 by default): a larger model
    // is refused here, saying so, rather than with SQLite's "string or blob too big".
    const int64_t limit = sqlite3_limit(self.db.handle(), SQLITE_LIMIT_LENGTH, -1);
    for (const auto* blob : {&checkpoint.weights, &checkpoint.state})
        if (int64_t(blob->size() + kChecksumHeader) > limit)
            throw StorageError(self.db.label() + ": the checkpoint of run " + std::to_string(runId) + ", epoch " +
                               std::to_string(checkpoint.epoch) + " (" +
                               (blob == &checkpoint.weights ? "weights" : "resume state") + ") is " +
                               std::to_string(blob->size()) + " bytes, over the " + std::to_string(limit) +
                               " bytes SQLite keeps in one value: a model this large cannot be kept in a project "
                               "file (train with --no-project --save FILE)");
    insert.bindBlob(5, withChecksum(checkpoint.weights));
    if (checkpoint.state.empty())
        insert.bind(6, std::nullopt);
    else
        insert.bindBlob(6, withChecksum(checkpoint.state));
    insert.bind(7, isoNow()).run();

    // Retention. At least the newest is kept: it is what a resume continues from.
    const auto rows = self.checkpointAccuracies(runId);
    const size_t keep = static_cast<size_t>(std::max(1, keepLast));
    const int best = bestEpochOf(rows);
    sqlite::Statement drop(self.db, "DELETE FROM checkpoints WHERE run_id = ? AND epoch = ?");
    sqlite::Statement weightsOnly(self.db, "UPDATE checkpoints SET state = NULL WHERE run_id = ? AND epoch = ?");
    for (size_t i = 0; i + keep < rows.size(); ++i) {
        const int epoch = rows[i].first;
        (epoch == best ? weightsOnly : drop).bindAll(runId, epoch).run();
    }
    transaction.commit();
}

std::vector<CheckpointInfo> Project::checkpoints(int64_t runId) const {
    auto& self = implOf(m_impl);
    // The blobs' own sizes, without their checksum header ('mpdlcrc1' and the CRC).
    const std::string header = "(CASE WHEN substr(%1, 1, 8) = X'6d70646c63726331' THEN 12 ELSE 0 END)";
    const auto payload = [&](const std::string& column) {
        std::string h = header;
        for (size_t at; (at = h.find("%1")) != std::string::npos;)
            h.replace(at, 2, column);
        return "length(" + column + ") - " + h;
    };
    sqlite::Statement query(self.db, "SELECT epoch, val_accuracy, wall_seconds, " + payload("weights") + ", coalesce(" +
                                         payload("state") +
                                         ", 0), created_at FROM checkpoints WHERE run_id = ? ORDER BY epoch");
    query.bindAll(runId);
    std::vector<CheckpointInfo> out;
    while (query.step()) {
        CheckpointInfo c;
        c.epoch = static_cast<int>(query.integer(0));
        c.valAccuracy = query.optionalReal(1);
        c.wallSeconds = query.real(2);
        c.weightBytes = query.integer(3);
        c.stateBytes = query.integer(4);
        c.createdAt = query.text(5);
        out.push_back(c);
    }
    return out;
}

std::optional<Checkpoint> Project::checkpoint(int64_t runId, int epoch) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, "SELECT epoch, val_accuracy, wall_seconds, weights, state FROM checkpoints"
                                     " WHERE run_id = ? AND epoch = ?");
    if (!query.bindAll(runId, epoch).step())
        return std::nullopt;
    return readCheckpoint(query, self.db.label(), runId);
}

std::optional<Checkpoint> Project::lastResumable(int64_t runId) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, "SELECT epoch, val_accuracy, wall_seconds, weights, state FROM checkpoints"
                                     " WHERE run_id = ? AND state IS NOT NULL ORDER BY epoch DESC LIMIT 1");
    if (!query.bindAll(runId).step())
        return std::nullopt;
    return readCheckpoint(query, self.db.label(), runId);
}

CheckpointCheck Project::checkCheckpoints() const {
    auto& self = implOf(m_impl);
    CheckpointCheck out;
    sqlite::Statement query(self.db, "SELECT epoch, val_accuracy, wall_seconds, weights, state, run_id FROM "
                                     "checkpoints ORDER BY run_id, epoch");
    while (query.step()) {
        const int64_t runId = query.integer(5);
        ++out.checked;
        const auto weights = query.blob(3);
        out.bytes += int64_t(weights.size()) + int64_t(query.blob(4).size());
        if (!hasChecksum(weights))
            ++out.unchecked;
        try {
            readCheckpoint(query, self.db.label(), runId);
        } catch (const StorageError& e) {
            out.problems.push_back(e.what());
        }
    }
    return out;
}

int Project::bestCheckpointEpoch(int64_t runId) const {
    return bestEpochOf(implOf(m_impl).checkpointAccuracies(runId));
}

int Project::lastCheckpointEpoch(int64_t runId) const {
    const auto rows = implOf(m_impl).checkpointAccuracies(runId);
    return rows.empty() ? 0 : rows.back().first;
}

// --- evaluations

int64_t Project::saveEvaluation(int64_t runId, int epoch, const Evaluation& evaluation) {
    auto& self = implOf(m_impl);
    self.requireWritable("save an evaluation");
    sqlite::Transaction transaction(self.db);
    self.requireRun(runId);
    const json perClass = {{"accuracy", evaluation.perClassAccuracy}, {"count", evaluation.perClassCount}};
    sqlite::Statement(self.db, "INSERT INTO evaluations (run_id, epoch, split, samples, loss, accuracy, per_class,"
                               " confusion, class_names, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        .bindAll(runId, epoch, evaluation.split, evaluation.samples, evaluation.loss, evaluation.accuracy,
                 jsonText(perClass), jsonText(evaluation.confusion), jsonText(evaluation.classNames), isoNow())
        .run();
    const int64_t id = self.db.lastInsertId();
    transaction.commit();
    return id;
}

std::vector<EvaluationRecord> Project::evaluations(int64_t runId) const {
    auto& self = implOf(m_impl);
    sqlite::Statement query(self.db, "SELECT id, epoch, split, samples, loss, accuracy, per_class, confusion,"
                                     " class_names, created_at FROM evaluations WHERE run_id = ? ORDER BY id");
    query.bindAll(runId);
    std::vector<EvaluationRecord> out;
    while (query.step()) {
        EvaluationRecord r;
        r.id = query.integer(0);
        r.epoch = static_cast<int>(query.integer(1));
        const std::string where = "evaluation " + std::to_string(r.id);
        auto& e = r.evaluation;
        e.split = query.text(2);
        e.samples = query.integer(3);
        e.loss = query.real(4);
        e.accuracy = query.real(5);
        const auto perClass = parseJson(self.path, query.text(6), "the per-class results of " + where);
        if (!perClass.is_object())
            throw StorageError(self.path + ": the per-class results of " + where + " are not a JSON object");
        e.perClassAccuracy = numberList(self.path, perClass.value("accuracy", json::array()),
                                        "the per-class accuracy of " + where);
        e.perClassCount = integerList(self.path, perClass.value("count", json::array()),
                                      "the per-class counts of " + where);
        e.confusion = integerList(self.path, parseJson(self.path, query.text(7), "the confusion of " + where),
                                  "the confusion of " + where);
        e.classNames = stringList(self.path, query.text(8), "the class names of " + where);
        r.createdAt = query.text(9);
        out.push_back(r);
    }
    return out;
}

} // namespace mppdl::store
