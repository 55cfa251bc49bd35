#include "mppdl/session/architectures.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/model/analysis.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>

namespace fs = std::filesystem;

namespace mppdl::session {

namespace {

/// Where resources/ may be, first match wins: $MPPDL_RESOURCES, beside an installed binary
/// (../share/mppdl), the source tree (running from a build directory), the configured prefix.
std::vector<fs::path> resourceDirectories() {
    std::vector<fs::path> dirs;
    if (const char* env = std::getenv("MPPDL_RESOURCES"))
        dirs.emplace_back(env);
    std::error_code ec;
    const auto exe = fs::read_symlink("/proc/self/exe", ec);
    if (!ec)
        dirs.push_back(exe.parent_path().parent_path() / "share" / "mppdl");
    dirs.emplace_back(sourceResourceDirectory());
    dirs.emplace_back(resourceDirectory());
    return dirs;
}

bool allDigits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

} // namespace

std::vector<std::string> bundledArchitectures() {
    std::vector<std::string> names;
    for (const auto& dir : resourceDirectories()) {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(dir / "architectures", ec))
            if (entry.path().extension() == ".json")
                names.push_back(entry.path().stem().string());
        if (!names.empty())
            break;
    }
    std::sort(names.begin(), names.end());
    return names;
}

std::string resolveArchitecture(const std::string& nameOrPath) {
    std::error_code ec;
    if (fs::is_regular_file(nameOrPath, ec))
        return nameOrPath;
    if (nameOrPath.find('/') == std::string::npos) {
        for (const auto& dir : resourceDirectories()) {
            const auto candidate = dir / "architectures" / (nameOrPath + ".json");
            if (fs::is_regular_file(candidate, ec))
                return candidate.string();
        }
    }
    std::string known;
    for (const auto& n : bundledArchitectures())
        known += (known.empty() ? "" : ", ") + n;
    throw ConfigError("'" + nameOrPath + "': no such architecture file, nor a bundled architecture of that name" +
                      (known.empty() ? std::string() : " (bundled: " + known + ")"));
}

model::Architecture validated(model::Architecture architecture) {
    const auto analysis = model::analyze(architecture);
    if (!analysis.ok())
        throw ConfigError("invalid architecture '" + architecture.name + "':\n" + formatProblems(analysis.problems));
    return architecture;
}

ProjectArchitecture projectArchitecture(store::Project& project, const std::string& ref, bool addToProject) {
    // NAME@VERSION: exactly that version of the project's.
    if (const auto at = ref.rfind('@'); at != std::string::npos && allDigits(ref.substr(at + 1))) {
        const auto name = ref.substr(0, at);
        const int version = std::stoi(ref.substr(at + 1));
        const auto found = project.architecture(name, version);
        if (!found) {
            const auto versions = project.architectureVersions(name);
            throw ConfigError("architecture '" + name + "' has no version " + std::to_string(version) +
                              " in " + project.path() +
                              (versions.empty() ? std::string(" (no versions at all: mppdl arch add FILE)")
                                                : " (versions 1-" + std::to_string(versions.back().version) + ")"));
        }
        return {*found, validated(model::parseArchitecture(found->spec, ref))};
    }
    std::error_code ec;
    const bool isFile = fs::is_regular_file(ref, ec);
    if (!isFile) {
        if (const auto latest = project.architecture(ref))
            return {*latest, validated(model::parseArchitecture(latest->spec, ref + "@" + std::to_string(latest->version)))};
    }
    const auto path = resolveArchitecture(ref); // a file, or a bundled one; ConfigError otherwise
    auto architecture = validated(model::loadArchitecture(path));
    const std::string note = isFile ? "from " + fs::absolute(path).lexically_normal().string()
                                    : "bundled with mppdl " + std::string(versionString());
    if (!addToProject) {
        store::ArchitectureVersion unsaved;
        unsaved.name = architecture.name;
        return {unsaved, architecture};
    }
    const auto version = project.addArchitecture(architecture.name, model::toJson(architecture), note);
    return {version, architecture};
}

} // namespace mppdl::session
