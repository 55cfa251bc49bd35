#include "mppdl/data/memory.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <sstream>
#include <vector>

namespace mppdl::data {

int64_t parseByteSize(const std::string& text, const std::string& what) {
    const auto bad = [&] {
        return ConfigError(what + " '" + text + "': expected a size such as 512M, 2G or 300000000 (bytes)");
    };
    size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        throw bad();
    }
    std::string unit = text.substr(used);
    for (auto& c : unit)
        c = char(std::toupper(static_cast<unsigned char>(c)));
    if (unit.size() > 1 && unit.back() == 'B')
        unit.pop_back();
    if (unit.size() > 1 && unit.back() == 'I')
        unit.pop_back();
    static const std::string units = "KMGT";
    double factor = 1;
    if (unit.size() == 1 && unit != "B") {
        const size_t power = units.find(unit[0]);
        if (power == std::string::npos)
            throw bad();
        factor = std::pow(1024.0, double(power + 1));
    } else if (!unit.empty() && unit != "B") {
        throw bad();
    }
    const double bytes = value * factor;
    if (!(bytes >= 1) || bytes > double(std::numeric_limits<int64_t>::max() / 2))
        throw bad();
    return static_cast<int64_t>(bytes);
}

namespace {

/// The number in a cgroup file; -1 when it is missing or "max" (no limit).
int64_t readCgroupNumber(const std::string& path) {
    std::ifstream in(path);
    std::string word;
    if (!(in >> word) || word == "max")
        return -1;
    try {
        return std::stoll(word);
    } catch (const std::exception&) {
        return -1;
    }
}

/// The cgroup's directory and its parents' up to the mount, innermost first.
std::vector<std::string> upwards(const std::string& mount, std::string path) {
    std::vector<std::string> out;
    while (true) {
        out.push_back(mount + path);
        if (path.empty() || path == "/")
            break;
        path = path.substr(0, path.rfind('/'));
    }
    return out;
}

struct Limit {
    int64_t limit = -1, usage = 0;
    std::string file;
};

/// The tightest memory limit on this process's cgroups (v1 and v2), with what its group holds.
Limit cgroupLimit() {
    Limit best;
    std::ifstream groups("/proc/self/cgroup");
    std::string line;
    // A v1 "no limit" is a page-rounded 2^63; anything above 2^60 bytes is no limit.
    constexpr int64_t kUnlimited = int64_t(1) << 60;
    while (std::getline(groups, line)) {
        const size_t a = line.find(':'), b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos)
            continue;
        const std::string controllers = line.substr(a + 1, b - a - 1), path = line.substr(b + 1);
        const bool v1 = controllers == "memory";
        if (!v1 && !controllers.empty())
            continue;
        const std::vector<std::string> mounts = v1 ? std::vector<std::string>{"/sys/fs/cgroup/memory"}
                                                   : std::vector<std::string>{"/sys/fs/cgroup",
                                                                              "/sys/fs/cgroup/unified"};
        for (const auto& mount : mounts)
            for (const auto& dir : upwards(mount, path)) {
                const std::string file = dir + (v1 ? "/memory.limit_in_bytes" : "/memory.max");
                const int64_t limit = readCgroupNumber(file);
                if (limit <= 0 || limit >= kUnlimited || (best.limit >= 0 && limit >= best.limit))
                    continue;
                best.limit = limit;
                best.file = file;
                best.usage = std::max<int64_t>(
                    0, readCgroupNumber(dir + (v1 ? "/memory.usage_in_bytes" : "/memory.current")));
            }
    }
    return best;
}

int64_t systemAvailable() {
    std::ifstream in("/proc/meminfo");
    std::string key;
    int64_t kb = 0;
    std::string unit;
    while (in >> key >> kb >> unit)
        if (key == "MemAvailable:")
            return kb * 1024;
    return -1;
}

} // namespace

MemoryAvailable memoryAvailable() {
    MemoryAvailable out;
    const int64_t system = systemAvailable();
    out.bytes = system > 0 ? system : int64_t(1) << 32;
    out.where = system > 0 ? "the system's available memory" : "an assumed 4 GB (no /proc/meminfo)";
    const Limit cgroup = cgroupLimit();
    if (cgroup.limit > 0 && cgroup.limit - cgroup.usage < out.bytes) {
        out.bytes = std::max<int64_t>(0, cgroup.limit - cgroup.usage);
        out.where = "what is left of the cgroup limit of " + humanBytes(double(cgroup.limit)) + " (" + cgroup.file +
                    ")";
    }
    return out;
}

int64_t preparedBytes(int64_t rows, const std::vector<int64_t>& sampleShape) {
    int64_t elements = 1;
    for (const auto d : sampleShape)
        elements *= d;
    return rows * (elements * int64_t(sizeof(float)) + int64_t(sizeof(int64_t)));
}

int64_t chunkRows(int64_t budget, int64_t rowBytes) {
    const int64_t bytes = std::clamp<int64_t>(budget / 8, int64_t(8) << 20, int64_t(256) << 20);
    return std::max<int64_t>(256, bytes / std::max<int64_t>(1, rowBytes));
}

MemoryBudget memoryBudget(const std::string& flag) {
    MemoryBudget out;
    if (!flag.empty()) {
        out.bytes = parseByteSize(flag);
        out.why = "--memory-budget " + flag;
        return out;
    }
    const auto available = memoryAvailable();
    out.bytes = std::max<int64_t>(1, static_cast<int64_t>(double(available.bytes) * kDefaultBudgetShare));
    std::ostringstream why;
    why << int(kDefaultBudgetShare * 100) << "% of " << available.where << ", " << humanBytes(double(available.bytes));
    out.why = why.str();
    return out;
}

} // namespace mppdl::data
