// mppdl runs, show, export-metrics, arch list|add|versions|import|export: reading and curating a project file.

#include "cli_project.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_chart.h"
#include "mppdl/core/text_table.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/keras.h"

#include <nlohmann/json.hpp>

#ifdef MPPDL_WITH_POSTGRES
#endif

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

namespace fs = std::filesystem;

namespace mppdl::cli {

namespace {

constexpr const char* kDefaultProject = "project.mppdl";

std::string percentOrDash(const std::optional<double>& fraction) { return fraction ? percentText(*fraction) : "-"; }

/// "2026-11-23T10:15:02Z" -> "2026-11-23 10:15".
std::string shortTime(const std::string& iso) {
    if (iso.size() < 16)
        return iso.empty() ? "-" : iso;
    return iso.substr(0, 10) + " " + iso.substr(11, 5);
}

/// "  key      value" lines with the values aligned: a record, not a table (no header, no rule).
struct KeyValues {
    std::vector<std::pair<std::string, std::string>> rows;
    std::string text;
    void addRow(std::pair<std::string, std::string> row) {
        rows.push_back(std::move(row));
        size_t width = 0;
        for (const auto& r : rows)
            width = std::max(width, r.first.size());
        text.clear();
        for (const auto& r : rows)
            text += "  " + r.first + std::string(width + 2 - r.first.size(), ' ') + r.second + "\n";
    }
};

} // namespace

std::string projectPath(const std::string& flag, bool forWriting) {
    if (!flag.empty())
        return flag;
    if (const char* env = std::getenv("MPPDL_PROJECT"); env && *env)
        return env;
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(".", ec))
        if (entry.path().extension() == ".mppdl" && entry.is_regular_file(ec))
            found.push_back(entry.path().filename().string());
    std::sort(found.begin(), found.end());
    if (found.size() == 1)
        return found.front();
    if (found.size() > 1) {
        std::string names;
        for (const auto& f : found)
            names += (names.empty() ? "" : ", ") + f;
        throw ConfigError("several projects in this directory (" + names + "): choose one with --project FILE");
    }
    if (forWriting)
        return kDefaultProject;
    throw ConfigError("no project (*.mppdl) in this directory: pass --project FILE or set MPPDL_PROJECT "
                      "('mppdl train' creates ./" +
                      std::string(kDefaultProject) + " on first use)");
}

store::Project openProject(const std::string& flag, store::Access access, bool* created) {
    const auto path = projectPath(flag, access == store::Access::Write);
    if (created)
        *created = false;
    if (access == store::Access::Read)
        return store::Project::open(path, access);
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        auto project = store::Project::create(path);
        if (created)
            *created = true;
        else
            std::cerr << "mppdl: created project " << path << std::endl;
        return project;
    }
    return store::Project::open(path, access);
}

namespace {

// ---------------------------------------------------------------- runs

/// mppdl project check: SQLite's integrity check, the schema version, every checkpoint's checksums.
/// Exit 0 when all is well; the storage error's code, after listing every finding, otherwise.
int checkProject(const std::string& projectFlag, bool json) {
    const auto project = openProject(projectFlag, store::Access::Read);
    const std::string integrity = project.integrityCheck();
    const bool intact = integrity == "ok";
    const auto checkpoints = project.checkCheckpoints();
    const bool good = intact && checkpoints.problems.empty();
    if (json) {
        std::cout << nlohmann::json{{"project", project.path()},
                                    {"schema_version", project.schemaVersion()},
                                    {"current_schema_version", store::currentSchemaVersion()},
                                    {"integrity", integrity},
                                    {"checkpoints", checkpoints.checked},
                                    {"checkpoint_bytes", checkpoints.bytes},
                                    {"checkpoints_without_checksum", checkpoints.unchecked},
                                    {"problems", checkpoints.problems},
                                    {"ok", good}}
                         .dump()
                  << std::endl;
    } else {
        std::cout << project.path() << ": schema version " << project.schemaVersion()
                  << (project.schemaVersion() == store::currentSchemaVersion() ? " (current)" : "") << "\n"
                  << "integrity: " << (intact ? "ok (SQLite's integrity_check)" : integrity) << "\n"
                  << "checkpoints: " << checkpoints.checked << " read, " << humanBytes(double(checkpoints.bytes));
        if (checkpoints.unchecked > 0)
            std::cout << ", " << checkpoints.unchecked << " written before checkpoints had checksums";
        std::cout << (checkpoints.problems.empty() ? ", every checksum good" : "") << "\n";
        for (const auto& problem : checkpoints.problems)
            std::cout << "  damaged: " << problem << "\n";
        std::cout << std::flush;
    }
    if (good)
        return 0;
    std::cerr << "mppdl: " << project.path() << " is damaged" << (intact ? "" : " (SQLite's integrity check failed)")
              << ": " << checkpoints.problems.size() << " checkpoint" << (checkpoints.problems.size() == 1 ? "" : "s")
              << " cannot be used" << std::endl;
    return exitCode(ErrorKind::Storage);
}

int listRuns(const std::string& projectFlag, bool json) {
    const auto project = openProject(projectFlag, store::Access::Read);
    const auto runs = project.runs();
    if (json) {
        auto out = nlohmann::json::array();
        for (const auto& r : runs) {
            nlohmann::json j = {{"id", r.id},
                                {"name", r.name},
                                {"state", store::toString(r.state)},
                                {"strategy", r.strategy},
                                {"segments", r.segments},
                                {"architecture", r.architectureName},
                                {"architecture_version", r.architectureVersion},
                                {"epochs", r.epochs},
                                {"epochs_done", r.epochsDone},
                                {"best_epoch", r.bestEpoch},
                                {"seconds", r.seconds},
                                {"started_at", r.startedAt},
                                {"ended_at", r.endedAt}};
            j["best_val_accuracy"] = r.bestValAccuracy ? nlohmann::json(*r.bestValAccuracy) : nlohmann::json();
            j["test_accuracy"] = r.testAccuracy ? nlohmann::json(*r.testAccuracy) : nlohmann::json();
            out.push_back(j);
        }
        std::cout << out.dump() << std::endl;
        return 0;
    }
    if (runs.empty()) {
        std::cout << project.path() << ": no runs yet (mppdl train --project " << project.path() << " ...)\n";
        return 0;
    }
    using A = TextTable::Align;
    TextTable table({"id", "name", "state", "strategy", "seg", "architecture", "epochs", "best val acc", "test acc",
                     "time", "started"},
                    {A::Right, A::Left, A::Left, A::Left, A::Right, A::Left, A::Right, A::Right, A::Right, A::Right,
                     A::Left});
    for (const auto& r : runs) {
        std::string best = percentOrDash(r.bestValAccuracy);
        if (r.bestValAccuracy && r.bestEpoch > 0)
            best += " (" + std::to_string(r.bestEpoch) + ")";
        table.addRow({std::to_string(r.id), r.name, store::toString(r.state), r.strategy, std::to_string(r.segments),
                      r.architectureName + "@" + std::to_string(r.architectureVersion),
                      std::to_string(r.epochsDone) + "/" + std::to_string(r.epochs), best,
                      percentOrDash(r.testAccuracy), r.seconds > 0 ? humanDuration(r.seconds) : "-",
                      shortTime(r.startedAt)});
    }
    std::cout << table.render();
    return 0;
}

// ---------------------------------------------------------------- show

/// One row per epoch of the merged model: metric name -> value.
std::map<int, std::map<std::string, double>> epochTable(const std::vector<store::MetricPoint>& points) {
    std::map<int, std::map<std::string, double>> rows;
    for (const auto& p : points)
        if (p.segment < 0)
            rows[p.epoch][p.name] = p.value;
    return rows;
}

std::string chart(const std::map<int, std::map<std::string, double>>& rows, const std::string& title,
                  const std::vector<std::pair<std::string, std::string>>& series, bool unicode) {
    std::vector<ChartSeries> lines;
    const char32_t markers[] = {U'●', U'○', U'▲', U'△'};
    const char32_t asciiMarkers[] = {U'*', U'o', U'+', U'x'};
    for (size_t i = 0; i < series.size(); ++i) {
        ChartSeries s;
        s.label = series[i].second;
        s.marker = unicode ? markers[i % 4] : asciiMarkers[i % 4];
        for (const auto& [epoch, metrics] : rows) {
            const auto it = metrics.find(series[i].first);
            if (it == metrics.end())
                continue;
            s.x.push_back(epoch);
            s.y.push_back(it->second);
        }
        if (!s.x.empty())
            lines.push_back(std::move(s));
    }
    ChartOptions options;
    options.title = title;
    options.unicode = unicode;
    options.height = 10;
    return renderChart(lines, options);
}

void printConfig(const store::RunRecord& r, const store::Project& project) {
    nlohmann::json c = nlohmann::json::parse(r.config, nullptr, false);
    if (c.is_discarded())
        c = nlohmann::json::object();
    auto get = [&](const nlohmann::json::json_pointer& p) -> std::string {
        if (!c.contains(p))
            return "-";
        const auto& v = c.at(p);
        if (v.is_string())
            return v.get<std::string>();
        return v.dump();
    };
    using P = nlohmann::json::json_pointer;
    std::cout << "run " << r.id << " '" << r.name << "' in " << project.path() << "\n";
    KeyValues t;
    const std::string state = store::toString(r.state);
    std::string why;
    if (!r.errorMessage.empty())
        why = " (" + (r.errorKind.empty() || r.errorKind == state ? "" : r.errorKind + " error: ") + r.errorMessage +
              ")";
    t.addRow({"state", state + why});
    t.addRow({"architecture", r.architectureName + " version " + std::to_string(r.architectureVersion)});
    std::string data = get(P("/data/location"));
    if (r.datasetId)
        if (const auto d = project.dataset(r.datasetId))
            data = d->name + " (" + d->kind + ", " + d->location + ")";
    t.addRow({"data", data});
    std::string split = "validation " + get(P("/data/validation_fraction")) + ", normalize " +
                        get(P("/data/normalization"));
    if (get(P("/data/source/limit")) != "0" && get(P("/data/source/limit")) != "-")
        split += ", first " + get(P("/data/source/limit")) + " rows";
    t.addRow({"split", split});
    if (get(P("/rows_kept/mode")) != "-") {
        const std::string why = get(P("/rows_kept/why")), cache = get(P("/rows_kept/cache"));
        t.addRow({"rows kept", get(P("/rows_kept/mode")) + (why.empty() ? "" : ": " + why) +
                                   (cache.empty() ? "" : "; cache " + cache)});
    }
    t.addRow(
        {"strategy", r.strategy + ", " + std::to_string(r.segments) + (r.segments == 1 ? " segment" : " segments")});
    if (get(P("/search/name")) != "-")
        t.addRow({"search", get(P("/search/name")) + " (" + get(P("/search/search")) + ", configuration " +
                                std::to_string(std::stoll(get(P("/search/index"))) + 1) + " of " +
                                get(P("/search/of")) + "; mppdl tune --show " + get(P("/search/name")) + ")"});
    std::string optimizer = get(P("/optimizer/name")) + " lr " + get(P("/optimizer/lr"));
    if (get(P("/optimizer/momentum")) != "0.0" && get(P("/optimizer/momentum")) != "-")
        optimizer += " momentum " + get(P("/optimizer/momentum"));
    if (get(P("/optimizer/weight_decay")) != "0.0" && get(P("/optimizer/weight_decay")) != "-")
        optimizer += " weight decay " + get(P("/optimizer/weight_decay"));
    t.addRow({"optimizer", optimizer});
    t.addRow({"schedule", get(P("/schedule/name"))});
    t.addRow({"training", (get(P("/epochs")) == "1" ? "1 epoch" : get(P("/epochs")) + " epochs") + ", batch " +
                              get(P("/batch_size")) + ", seed " + get(P("/seed")) + ", device " + get(P("/device"))});
    if (r.warmStartRun)
        t.addRow({"warm start", "run " + std::to_string(*r.warmStartRun) +
                                    (r.warmStartEpoch ? ", epoch " + std::to_string(*r.warmStartEpoch) : "")});
    t.addRow({"host", r.host + (r.pid ? " (pid " + std::to_string(r.pid) + ")" : "")});
    t.addRow({"started", r.startedAt.empty() ? "-" : r.startedAt});
    t.addRow({"ended", r.endedAt.empty() ? "-" : r.endedAt});
    t.addRow({"time", humanDuration(r.seconds)});
    t.addRow({"versions", r.versions});
    std::cout << t.text;
}

/// The last epoch as each segment saw it: its rows, its own loss and accuracy, its speed, and how
/// far its replica had drifted from the merged model when they were averaged.
void printSegments(const std::vector<store::MetricPoint>& points) {
    int last = 0;
    std::map<int, std::map<std::string, double>> bySegment;
    for (const auto& p : points)
        if (p.segment >= 0)
            last = std::max(last, p.epoch);
    for (const auto& p : points)
        if (p.segment >= 0 && p.epoch == last)
            bySegment[p.segment][p.name] = p.value;
    if (bySegment.empty())
        return;
    using A = TextTable::Align;
    TextTable t({"segment", "rows", "train loss", "train acc", "img/s", "time", "divergence"},
                {A::Right, A::Right, A::Right, A::Right, A::Right, A::Right, A::Right});
    auto value = [](const std::map<std::string, double>& m, const char* name) {
        const auto it = m.find(name);
        return it == m.end() ? std::nan("") : it->second;
    };
    for (const auto& [segment, m] : bySegment)
        t.addRow({std::to_string(segment), groupThousands(std::llround(value(m, "rows"))),
                  fixedText(value(m, "train_loss"), 4), percentText(value(m, "train_accuracy")),
                  groupThousands(std::llround(value(m, "images_per_sec"))), humanDuration(value(m, "segment_seconds")),
                  fixedText(value(m, "divergence"), 4)});
    std::cout << "\nsegments in epoch " << last << " (divergence: L2 distance of the replica's weights from the "
              << "merged model at the merge)\n"
              << t.render();
}

/// What each process read and its peak memory (recorded when the run finished).
void printRanks(const std::vector<store::MetricPoint>& points) {
    std::map<int, std::map<std::string, double>> ranks;
    for (const auto& p : points)
        ranks[p.segment][p.name] = p.value;
    if (ranks.empty())
        return;
    using A = TextTable::Align;
    TextTable t({"process", "segments", "rows read", "MB read", "peak RSS MB"},
                {A::Right, A::Right, A::Right, A::Right, A::Right});
    const double mb = 1024.0 * 1024.0;
    double rows = 0;
    for (auto& [rank, m] : ranks) {
        rows += m["rows_read"];
        t.addRow({std::to_string(rank), fixedText(m["segments"], 0), groupThousands(int64_t(m["rows_read"])),
                  fixedText(m["bytes_read"] / mb, 1), fixedText(m["peak_rss_bytes"] / mb, 1)});
    }
    std::cout << "\nprocesses (" << groupThousands(int64_t(rows)) << " rows read in all)\n" << t.render();
}

int showRun(const std::string& projectFlag, const std::string& ref, bool ascii) {
    const auto project = openProject(projectFlag, store::Access::Read);
    const auto r = findRun(project, ref);
    printConfig(r, project);

    const auto epochPoints = project.metrics(r.id, "epoch");
    const auto rows = epochTable(epochPoints);
    if (!rows.empty()) {
        using A = TextTable::Align;
        TextTable t({"epoch", "train loss", "train acc", "val loss", "val acc", "lr", "img/s", "time"},
                    {A::Right, A::Right, A::Right, A::Right, A::Right, A::Right, A::Right, A::Right});
        auto cell = [](const std::map<std::string, double>& m, const char* name, int digits, bool percent = false) {
            const auto it = m.find(name);
            if (it == m.end())
                return std::string("-");
            return percent ? percentText(it->second) : fixedText(it->second, digits);
        };
        for (const auto& [epoch, m] : rows) {
            const auto seconds = m.find("epoch_seconds");
            t.addRow({std::to_string(epoch) + (epoch == r.bestEpoch ? "*" : ""), cell(m, "train_loss", 4),
                      cell(m, "train_accuracy", 2, true), cell(m, "val_loss", 4), cell(m, "val_accuracy", 2, true),
                      cell(m, "lr", 5), cell(m, "images_per_sec", 0),
                      seconds == m.end() ? "-" : humanDuration(seconds->second)});
        }
        std::cout << "\n" << t.render();
        if (r.bestEpoch > 0)
            std::cout << "* best epoch by validation accuracy\n";
        std::cout << "\n"
                  << chart(rows, "loss", {{"train_loss", "train"}, {"val_loss", "validation"}}, !ascii) << "\n"
                  << chart(rows, "accuracy", {{"train_accuracy", "train"}, {"val_accuracy", "validation"}}, !ascii);
    } else {
        std::cout << "\nno epoch has finished yet\n";
    }
    printSegments(epochPoints);
    printRanks(project.metrics(r.id, "rank"));

    const auto kept = project.checkpoints(r.id);
    if (!kept.empty()) {
        const int best = project.bestCheckpointEpoch(r.id), last = project.lastCheckpointEpoch(r.id);
        std::string list;
        for (const auto& c : kept) {
            list += (list.empty() ? "" : ", ") + std::to_string(c.epoch);
            std::vector<std::string> tags;
            if (c.epoch == best)
                tags.push_back("best");
            if (c.epoch == last)
                tags.push_back("last");
            if (!tags.empty()) {
                list += " (";
                for (size_t i = 0; i < tags.size(); ++i)
                    list += (i ? ", " : "") + tags[i];
                list += ")";
            }
        }
        std::cout << "\nweights kept for epochs " << list << ": use " << r.id << ":best, " << r.id << ":last or "
                  << r.id << ":EPOCH with --warm-start and eval --run\n";
    }
    for (const auto& e : project.evaluations(r.id)) {
        std::cout << "\n(epoch " << e.epoch << ") ";
        printEvaluation(e.evaluation);
    }
    if (r.state == store::RunState::Interrupted || r.state == store::RunState::Cancelled)
        std::cout << "\nthe run stopped after epoch " << r.epochsDone << ": mppdl resume " << r.id << " continues it\n";
    return 0;
}

// ---------------------------------------------------------------- export-metrics

int exportMetrics(const std::string& projectFlag, const std::string& ref, const std::string& csvPath,
                  const std::string& kind) {
    const auto project = openProject(projectFlag, store::Access::Read);
    const auto r = findRun(project, ref);
    const auto points = project.metrics(r.id, kind == "all" ? std::string() : kind);
    // Wide: one row per recorded point in time, one column per metric (as TensorBoard's and
    // DIGITS' CSV downloads); empty cells where a metric was not recorded at that point.
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const auto& p : points)
        if (seen.insert(p.name).second)
            names.push_back(p.name);
    struct Key {
        int segment;
        int epoch;
        int64_t step;
        std::string kind;
        bool operator<(const Key& o) const {
            return std::tie(step, epoch, kind, segment) < std::tie(o.step, o.epoch, o.kind, o.segment);
        }
    };
    std::map<Key, std::pair<double, std::map<std::string, double>>> rows;
    for (const auto& p : points) {
        auto& row = rows[{p.segment, p.epoch, p.step, p.kind}];
        row.first = p.wallSeconds;
        row.second[p.name] = p.value;
    }
    const std::string tmp = csvPath + ".tmp";
    {
        std::ofstream out(tmp);
        if (!out)
            throw StorageError(csvPath + ": cannot write (" + std::strerror(errno) + ")");
        out << "run,segment,epoch,step,kind,wall_seconds";
        for (const auto& n : names)
            out << ',' << n;
        out << '\n';
        out.precision(10);
        for (const auto& [key, row] : rows) {
            out << r.id << ',' << (key.segment < 0 ? std::string("merged") : std::to_string(key.segment)) << ','
                << key.epoch << ',' << key.step << ',' << key.kind << ',' << row.first;
            for (const auto& n : names) {
                out << ',';
                if (const auto it = row.second.find(n); it != row.second.end())
                    out << it->second;
            }
            out << '\n';
        }
        if (!out.flush())
            throw StorageError(csvPath + ": cannot write");
    }
    std::error_code ec;
    fs::rename(tmp, csvPath, ec);
    if (ec) {
        fs::remove(tmp, ec);
        throw StorageError(csvPath + ": cannot write (" + ec.message() + ")");
    }
    std::cerr << "wrote " << rows.size() << " rows x " << names.size() << " metrics of run " << r.id << " to "
              << csvPath << std::endl;
    return 0;
}

// ---------------------------------------------------------------- arch list|add|versions|import|export

int archList(const std::string& projectFlag) {
    const auto project = openProject(projectFlag, store::Access::Read);
    const auto list = project.architectures();
    if (list.empty()) {
        std::cout << project.path() << ": no architectures yet (mppdl arch add FILE, or train with --arch)\n";
        return 0;
    }
    using A = TextTable::Align;
    TextTable t({"name", "versions", "latest", "parameters", "runs", "updated"},
                {A::Left, A::Right, A::Right, A::Right, A::Right, A::Left});
    for (const auto& a : list) {
        std::string params = "-";
        if (const auto latest = project.architecture(a.name)) {
            try {
                params = groupThousands(model::analyze(model::parseArchitecture(latest->spec, a.name)).totalParams);
            } catch (const Error&) {
                params = "?";
            }
        }
        t.addRow({a.name, std::to_string(a.versions), std::to_string(a.latest), params, std::to_string(a.runs),
                  shortTime(a.updatedAt)});
    }
    std::cout << t.render();
    return 0;
}

int archAdd(const std::string& projectFlag, const std::string& file, const std::string& name, const std::string& note) {
    std::error_code ec;
    if (!fs::is_regular_file(file, ec))
        throw ConfigError(file + ": no such architecture file");
    auto architecture = validated(model::loadArchitecture(file));
    if (!name.empty())
        architecture.name = name;
    auto project = openProject(projectFlag, store::Access::Write);
    bool created = false;
    const auto v = project.addArchitecture(
        architecture.name, model::toJson(architecture),
        note.empty() ? "from " + fs::absolute(file).lexically_normal().string() : note, &created);
    if (created)
        std::cout << "added " << v.name << " version " << v.version << " to " << project.path() << " (use --arch "
                  << v.name << "@" << v.version << ")\n";
    else
        std::cout << "unchanged: " << v.name << " version " << v.version << " in " << project.path()
                  << " has the same layers\n";
    return 0;
}

int archVersions(const std::string& projectFlag, const std::string& name) {
    const auto project = openProject(projectFlag, store::Access::Read);
    const auto versions = project.architectureVersions(name);
    if (versions.empty()) {
        std::string names;
        for (const auto& a : project.architectures())
            names += (names.empty() ? "" : ", ") + a.name;
        throw ConfigError("no architecture '" + name + "' in " + project.path() +
                          (names.empty() ? std::string() : " (it has: " + names + ")"));
    }
    using A = TextTable::Align;
    TextTable t({"version", "layers", "parameters", "runs", "created", "note"},
                {A::Right, A::Right, A::Right, A::Right, A::Left, A::Left});
    for (const auto& v : versions) {
        std::string layers = "?", params = "?";
        try {
            const auto arch = model::parseArchitecture(v.spec, name + "@" + std::to_string(v.version));
            layers = std::to_string(arch.layers.size());
            params = groupThousands(model::analyze(arch).totalParams);
        } catch (const Error&) {
        }
        t.addRow({std::to_string(v.version), layers, params, std::to_string(v.runs), shortTime(v.createdAt), v.note});
    }
    std::cout << name << " in " << project.path() << "\n" << t.render();
    return 0;
}

struct ImportOptions {
    session::ArchitectureImport from;
    std::string format = "keras-json";
    std::string note;
};

int archImport(const std::string& projectFlag, const ImportOptions& o) {
    if (o.format != "keras-json")
        throw ConfigError("unknown --format '" + o.format + "'; mppdl imports keras-json");
    const auto imported = session::importArchitecture(o.from);
    const auto& architecture = imported.architecture;
    const auto& source = imported.source;
    auto project = openProject(projectFlag, store::Access::Write);
    bool created = false;
    const auto v = session::addImportedArchitecture(project, imported, o.note.empty() ? source : o.note, &created);
    const auto analysis = model::analyze(architecture);
    if (created)
        std::cout << "imported " << v.name << " version " << v.version << " (" << architecture.layers.size()
                  << " layers, " << groupThousands(analysis.totalParams) << " parameters) into " << project.path()
                  << " (use --arch " << v.name << "@" << v.version << ")\n";
    else
        std::cout << "unchanged: " << v.name << " version " << v.version << " in " << project.path()
                  << " has the same layers\n";
    return 0;
}

} // namespace

ProjectArchitecture architectureFor(const std::string& projectFlag, const std::string& ref) {
    // A file or a bundled name needs no project.
    if (ref.find('@') == std::string::npos && projectFlag.empty()) {
        bool opened = false;
        try {
            auto project = openProject(projectFlag, store::Access::Read);
            opened = true;
            return projectArchitecture(project, ref, false);
        } catch (const Error&) {
            if (opened)
                throw;
        }
        ProjectArchitecture found;
        found.architecture = validated(model::loadArchitecture(resolveArchitecture(ref)));
        return found;
    }
    auto project = openProject(projectFlag, store::Access::Read);
    return projectArchitecture(project, ref, false);
}

namespace {

int archExport(const std::string& projectFlag, const std::string& ref, const std::string& format,
               const std::string& output) {
    if (format != "keras-json")
        throw ConfigError("unknown --format '" + format + "'; mppdl exports keras-json");
    const auto found = architectureFor(projectFlag, ref);
    const std::string text = model::toKerasJson(found.architecture);
    if (output.empty() || output == "-") {
        std::cout << text;
        return 0;
    }
    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    if (!(out << text) || !out.flush())
        throw DataError(output + ": cannot write");
    std::cerr << "wrote " << found.architecture.name
              << (found.version.version > 0 ? "@" + std::to_string(found.version.version) : std::string())
              << " as Keras JSON to " << output << std::endl;
    return 0;
}

} // namespace

void registerProjectCommands(CLI::App& app, Command& selected) {
    auto projectFlag = std::make_shared<std::string>();
    auto addProject = [projectFlag](CLI::App* c) {
        c->add_option("--project", *projectFlag,
                      "project file (default: $MPPDL_PROJECT, else the one *.mppdl in this directory)");
    };

    auto* projectCommand = app.add_subcommand("project", "look after a project file");
    projectCommand->require_subcommand(1);
    auto* check = projectCommand->add_subcommand(
        "check", "check a project file: SQLite's integrity check, its schema version, every checkpoint's checksum");
    auto checkFile = std::make_shared<std::string>();
    auto checkJson = std::make_shared<bool>(false);
    check->add_option("FILE", *checkFile, "the project file (default: as --project)");
    addProject(check);
    check->add_flag("--json", *checkJson, "one JSON object");
    check->callback([&selected, projectFlag, checkFile, checkJson] {
        selected = [projectFlag, checkFile, checkJson] {
            return checkProject(checkFile->empty() ? *projectFlag : *checkFile, *checkJson);
        };
    });

    auto* runs = app.add_subcommand("runs", "the runs recorded in a project: state, best accuracy, time");
    addProject(runs);
    auto runsJson = std::make_shared<bool>(false);
    runs->add_flag("--json", *runsJson, "one JSON array");
    runs->callback([&selected, projectFlag, runsJson] {
        selected = [projectFlag, runsJson] { return listRuns(*projectFlag, *runsJson); };
    });

    auto* show = app.add_subcommand("show", "a run's configuration, metrics per epoch with charts, and results");
    addProject(show);
    auto showRef = std::make_shared<std::string>();
    auto ascii = std::make_shared<bool>(false);
    show->add_option("RUN", *showRef, "run id or name")->required();
    show->add_flag("--ascii", *ascii, "draw the charts with ASCII characters only");
    show->callback([&selected, projectFlag, showRef, ascii] {
        selected = [projectFlag, showRef, ascii] { return showRun(*projectFlag, *showRef, *ascii); };
    });

    auto* exportCmd = app.add_subcommand("export-metrics", "write a run's metric series to a CSV file");
    addProject(exportCmd);
    auto exportRef = std::make_shared<std::string>();
    auto csv = std::make_shared<std::string>();
    auto kind = std::make_shared<std::string>("all");
    exportCmd->add_option("RUN", *exportRef, "run id or name")->required();
    exportCmd->add_option("--csv", *csv, "output file: one row per recorded point, one column per metric")->required();
    exportCmd->add_option("--kind", *kind, "all|epoch|progress|test")
        ->check(CLI::IsMember({"all", "epoch", "progress", "test", "rank"}))
        ->capture_default_str();
    exportCmd->callback([&selected, projectFlag, exportRef, csv, kind] {
        selected = [projectFlag, exportRef, csv, kind] { return exportMetrics(*projectFlag, *exportRef, *csv, *kind); };
    });

    // The project's half of `mppdl arch` (the inspect commands registered the parent).
    auto* arch = app.get_subcommand("arch");
    auto* list = arch->add_subcommand("list", "the architectures in a project, with their versions and runs");
    addProject(list);
    list->callback([&selected, projectFlag] { selected = [projectFlag] { return archList(*projectFlag); }; });

    auto* add = arch->add_subcommand("add", "add an architecture file to a project as its next version");
    addProject(add);
    auto file = std::make_shared<std::string>();
    auto name = std::make_shared<std::string>();
    auto note = std::make_shared<std::string>();
    add->add_option("FILE", *file, "architecture JSON file")->required();
    add->add_option("--name", *name, "store under this name (default: the file's \"name\")");
    add->add_option("--note", *note, "what changed in this version");
    add->callback([&selected, projectFlag, file, name, note] {
        selected = [projectFlag, file, name, note] { return archAdd(*projectFlag, *file, *name, *note); };
    });

    auto* importCommand = arch->add_subcommand(
        "import", "add a Keras model JSON (a file, or a MADlib model architecture table row) as an architecture");
    addProject(importCommand);
    auto importOptions = std::make_shared<ImportOptions>();
    importCommand->add_option("FILE", importOptions->from.file, "Keras JSON file (model.to_json())");
    importCommand->add_option("--format", importOptions->format, "keras-json")
        ->check(CLI::IsMember({"keras-json"}))
        ->capture_default_str();
    importCommand->add_option("--name", importOptions->from.name,
                              "store under this name (default: the Keras model's name)");
    importCommand->add_option("--note", importOptions->note, "what changed in this version");
    importCommand->add_option("--from-table", importOptions->from.table,
                              "read model_arch from a MADlib model architecture table ([SCHEMA.]TABLE)");
    importCommand->add_option("--id", importOptions->from.modelId, "model_id of the row to read (with --from-table)");
    importCommand->add_option("--conn", importOptions->from.connection,
                              std::string("--from-table: ") + kConnectionHelp);
    importCommand->callback([&selected, projectFlag, importOptions] {
        selected = [projectFlag, importOptions] { return archImport(*projectFlag, *importOptions); };
    });

    auto* exportArch = arch->add_subcommand("export", "write a project architecture as Keras model JSON");
    addProject(exportArch);
    auto exportName = std::make_shared<std::string>();
    auto exportFormat = std::make_shared<std::string>("keras-json");
    auto exportOutput = std::make_shared<std::string>();
    exportArch->add_option("NAME", *exportName, "NAME, NAME@VERSION, a file or a bundled architecture")->required();
    exportArch->add_option("--format", *exportFormat, "keras-json")
        ->check(CLI::IsMember({"keras-json"}))
        ->capture_default_str();
    exportArch->add_option("-o,--output", *exportOutput, "write to this file (default: standard output)");
    exportArch->callback([&selected, projectFlag, exportName, exportFormat, exportOutput] {
        selected = [projectFlag, exportName, exportFormat, exportOutput] {
            return archExport(*projectFlag, *exportName, *exportFormat, *exportOutput);
        };
    });

    auto* versions = arch->add_subcommand("versions", "the versions of one architecture in a project");
    addProject(versions);
    auto versionsName = std::make_shared<std::string>();
    versions->add_option("NAME", *versionsName, "architecture name")->required();
    versions->callback([&selected, projectFlag, versionsName] {
        selected = [projectFlag, versionsName] { return archVersions(*projectFlag, *versionsName); };
    });
}

} // namespace mppdl::cli
