#include "mppdl/session/architectures.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/keras.h"

#ifdef MPPDL_WITH_POSTGRES
#include "data/pg_connection.h"
#endif

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

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

/// One row of a MADlib model architecture table: its Keras JSON, and its name and description
/// (columns of MADlib 1.17 and later; empty where the table has none or they are NULL).
struct MadlibArchitectureRow {
    std::string keras, name, description;
};

MadlibArchitectureRow kerasFromTable(const ArchitectureImport& from) {
#ifdef MPPDL_WITH_POSTGRES
    const std::string where = "table " + from.table;
    const auto table = data::quoteQualifiedName(from.table, "--from-table");
    data::PgConnection connection(from.connection, where);
    // to_jsonb of the row: columns an older table lacks are NULL, not an error.
    const auto result = connection.query("SELECT model_arch::text, to_jsonb(t)->>'name', to_jsonb(t)->>'description' "
                                         "FROM " +
                                             table + " AS t WHERE model_id = $1",
                                         {std::to_string(from.modelId)});
    if (result.rows() == 0)
        throw ConfigError("no model_id " + std::to_string(from.modelId) + " in " + from.table + " (" +
                          connection.describe() + ")");
    if (result.isNull(0, 0))
        throw ConfigError("model_id " + std::to_string(from.modelId) + " in " + from.table +
                          " has no model_arch (NULL)");
    return {result.text(0, 0), result.isNull(0, 1) ? "" : result.text(0, 1),
            result.isNull(0, 2) ? "" : result.text(0, 2)};
#else
    (void)from;
    throw ConfigError(
        "--from-table needs PostgreSQL support, and this mppdl was built without it (MPPDL_POSTGRES=OFF)");
#endif
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
            throw ConfigError("architecture '" + name + "' has no version " + std::to_string(version) + " in " +
                              project.path() +
                              (versions.empty() ? std::string(" (no versions at all: mppdl arch add FILE)")
                                                : " (versions 1-" + std::to_string(versions.back().version) + ")"));
        }
        return {*found, validated(model::parseArchitecture(found->spec, ref))};
    }
    std::error_code ec;
    const bool isFile = fs::is_regular_file(ref, ec);
    if (!isFile) {
        if (const auto latest = project.architecture(ref))
            return {*latest,
                    validated(model::parseArchitecture(latest->spec, ref + "@" + std::to_string(latest->version)))};
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

ImportedArchitecture importArchitecture(const ArchitectureImport& from) {
    std::string text, origin, source, name, description;
    if (!from.table.empty()) {
        if (!from.file.empty())
            throw ConfigError("give either FILE or --from-table, not both");
        if (from.modelId < 0)
            throw ConfigError("--from-table needs --id N (the model_id of the row)");
        auto row = kerasFromTable(from);
        text = std::move(row.keras);
        origin = from.table + " model_id " + std::to_string(from.modelId);
        source = "from MADlib table " + from.table + ", model_id " + std::to_string(from.modelId);
        // MADlib's name for it; else one of its own per row, so that two rows never share a name.
        name = row.name.empty() ? from.table + "_model_" + std::to_string(from.modelId) : row.name;
        std::replace_if(
            name.begin(), name.end(), [](unsigned char c) { return std::isspace(c) || c == '@' || c == '/'; }, '_');
        description = row.description;
    } else {
        if (from.file.empty())
            throw ConfigError("arch import needs FILE (Keras JSON) or --from-table TABLE --id N");
        std::ifstream in(from.file, std::ios::binary);
        if (!in)
            throw ConfigError(from.file + ": no such Keras JSON file");
        std::ostringstream buffer;
        buffer << in.rdbuf();
        text = buffer.str();
        origin = from.file;
        source = "from Keras JSON " + fs::absolute(from.file).lexically_normal().string();
    }
    ImportedArchitecture imported{validated(model::fromKerasJson(text, origin)), source};
    if (!from.name.empty())
        imported.architecture.name = from.name;
    else if (!name.empty())
        imported.architecture.name = name;
    imported.architecture.description = "Imported " + source + (description.empty() ? "" : ": " + description);
    return imported;
}

store::ArchitectureVersion addImportedArchitecture(store::Project& project, const ImportedArchitecture& imported,
                                                   const std::string& note, bool* created) {
    // The layers as the canonical JSON has them, without the description (which names the source).
    auto layersOf = [](model::Architecture a) {
        a.description.clear();
        return model::toJson(a);
    };
    const auto& architecture = imported.architecture;
    const std::string wanted = layersOf(architecture);
    for (const auto& version : project.architectureVersions(architecture.name)) {
        const auto stored = project.architecture(architecture.name, version.version);
        if (!stored)
            continue;
        try {
            if (layersOf(model::parseArchitecture(stored->spec)) == wanted) {
                if (created)
                    *created = false;
                return *stored;
            }
        } catch (const Error&) { // a damaged version is not the same as this one
        }
    }
    return project.addArchitecture(architecture.name, model::toJson(architecture), note, created);
}

} // namespace mppdl::session
