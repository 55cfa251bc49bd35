// mppdl tune: model selection (grid, random, Hyperband) over N segments, every configuration a
// run of the project, with a live leaderboard.

#include "cli_common.h"
#include "cli_project.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/tune/search_session.h"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <fstream>
#include <map>
#include <iostream>
#include <memory>
#include <sstream>

namespace mppdl::cli {

namespace {

std::string optionalPercent(const std::optional<double>& v) { return v ? percentText(*v) : std::string("-"); }

/// The leaderboard as a table: best validation accuracy first.
std::string leaderboardTable(const tune::SearchProgress& p, size_t limit = 0) {
    const bool hyperband = p.search == "hyperband";
    std::vector<std::string> header = {"rank",    "run",      "configuration", "epochs",
                                       "val acc", "test acc", "time",          "state"};
    std::vector<TextTable::Align> align = {TextTable::Align::Right, TextTable::Align::Left,  TextTable::Align::Left,
                                           TextTable::Align::Right, TextTable::Align::Right, TextTable::Align::Right,
                                           TextTable::Align::Right, TextTable::Align::Left};
    if (hyperband) {
        header.insert(header.begin() + 3, "bracket");
        align.insert(align.begin() + 3, TextTable::Align::Right);
    }
    TextTable table(header, align);
    const auto rows = p.leaderboard();
    for (size_t k = 0; k < rows.size() && (limit == 0 || k < limit); ++k) {
        const auto& r = rows[k];
        std::vector<std::string> cells = {std::to_string(k + 1),
                                          r.runName,
                                          r.configuration.describe(),
                                          std::to_string(r.status.epochsDone) + "/" +
                                              std::to_string(r.configuration.epochs),
                                          optionalPercent(r.status.valAccuracy),
                                          optionalPercent(r.testAccuracy),
                                          r.status.seconds > 0 ? humanDuration(r.status.seconds) : "-",
                                          r.state};
        if (hyperband)
            cells.insert(cells.begin() + 3, std::to_string(r.bracket));
        table.addRow(cells);
    }
    return table.render();
}

std::string summaryLine(const tune::SearchProgress& p) {
    std::ostringstream s;
    s << "search " << p.name << " (" << p.search << ", " << p.scheduler;
    if (p.scheduler != "sequential")
        s << " over " << p.segments << " segments";
    s << "): " << p.phase << "; " << groupThousands(p.epochsDone) << " of " << groupThousands(p.epochsPlanned)
      << " epochs, " << humanDuration(p.seconds);
    return s.str();
}

nlohmann::json progressJson(const tune::SearchProgress& p, const std::string& event) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : p.leaderboard()) {
        nlohmann::json row{{"run", r.runId},
                           {"name", r.runName},
                           {"configuration", nlohmann::json::parse(r.configuration.toJson())},
                           {"epochs_done", r.status.epochsDone},
                           {"seconds", r.status.seconds},
                           {"state", r.state}};
        row["val_accuracy"] = r.status.valAccuracy ? nlohmann::json(*r.status.valAccuracy) : nlohmann::json(nullptr);
        row["test_accuracy"] = r.testAccuracy ? nlohmann::json(*r.testAccuracy) : nlohmann::json(nullptr);
        if (r.bracket >= 0)
            row["bracket"] = r.bracket;
        rows.push_back(row);
    }
    return {{"event", event},
            {"search", p.name},
            {"kind", p.search},
            {"scheduler", p.scheduler},
            {"segments", p.segments},
            {"phase", p.phase},
            {"epochs_done", p.epochsDone},
            {"epochs_planned", p.epochsPlanned},
            {"seconds", p.seconds},
            {"leaderboard", rows}};
}

/// The live leaderboard: on a terminal redrawn in place on stderr; otherwise a line on stdout
/// whenever a configuration finishes an epoch (logs of a search over SSH stay readable).
class LiveLeaderboard : public tune::SearchObserver {
public:
    LiveLeaderboard(bool json, bool quiet) : m_json(json), m_quiet(quiet), m_tty(isatty(STDERR_FILENO) != 0) {}

    void onProgress(const tune::SearchProgress& p) override {
        if (m_json) {
            if (p.epochsDone != m_lastEpochs || p.phase != m_lastPhase)
                std::cout << progressJson(p, "progress").dump() << std::endl;
        } else if (m_tty && !m_quiet) {
            std::ostringstream frame;
            frame << summaryLine(p) << "\n" << leaderboardTable(p, 12);
            const auto text = frame.str();
            // Move up over the last frame and draw this one over it, clearing each line.
            std::string out;
            for (int i = 0; i < m_drawnLines; ++i)
                out += "\x1b[1A\x1b[2K";
            out += "\r";
            std::istringstream lines(text);
            std::string line;
            int count = 0;
            while (std::getline(lines, line)) {
                out += "\x1b[2K" + line + "\n";
                ++count;
            }
            std::fputs(out.c_str(), stderr);
            std::fflush(stderr);
            m_drawnLines = count;
        } else if (!m_quiet && (p.epochsDone != m_lastEpochs || p.phase != m_lastPhase)) {
            if (p.phase != m_lastPhase && p.phase != "done") // the end prints its own summary
                std::cout << summaryLine(p) << std::endl;
            for (const auto& r : p.rows) {
                auto& seen = m_epochsSeen[r.runId];
                if (r.status.epochsDone > seen)
                    std::cout << "  " << r.runName << "  " << r.configuration.describe() << "  epoch "
                              << r.status.epochsDone << "/" << r.configuration.epochs << "  val "
                              << optionalPercent(r.status.valAccuracy) << "  " << humanDuration(r.status.seconds)
                              << std::endl;
                seen = r.status.epochsDone;
            }
        }
        m_lastEpochs = p.epochsDone;
        m_lastPhase = p.phase;
    }

    /// Takes the last frame off the terminal: the final leaderboard follows on stdout.
    void finish() {
        std::string out;
        for (int i = 0; i < m_drawnLines; ++i)
            out += "\x1b[1A\x1b[2K";
        std::fputs(out.c_str(), stderr);
        std::fflush(stderr);
        m_drawnLines = 0;
    }

private:
    bool m_json, m_quiet, m_tty;
    int m_drawnLines = 0;
    int64_t m_lastEpochs = -1;
    std::string m_lastPhase;
    std::map<int64_t, int> m_epochsSeen;
};

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    if (!in)
        throw ConfigError(path + ": cannot read the search space file");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

struct TuneFlags {
    SourceFlags source;
    std::string space;
    tune::SearchRequest request;
    std::string normalization = data::toString(train::DataConfig{}.normalization);
    std::string project;
    std::string resume;
    std::string show;
    bool plan = false;
    bool json = false;
    bool quiet = false;
    CLI::Option* threadsOption = nullptr;

    void add(CLI::App& c) {
        source.add(c, false);
        c.add_option("--space", space, "the search space, a JSON file (its keys: mppdl tune --help)");
        c.add_option("--search", request.search,
                     "how configurations are chosen: " + joinChoiceNames(tune::searchChoices(), "|"))
            ->capture_default_str();
        c.add_option("--samples", request.samples,
                     "random search: how many configurations (default: the space's "
                     "\"samples\", else 8)")
            ->check(CLI::Range(1, 100000));
        c.add_option("--scheduler", request.schedule.scheduler,
                     "how configurations share the segments: " + joinChoiceNames(tune::schedulerChoices(), "|"))
            ->capture_default_str();
        c.add_option("--segments", request.schedule.segments, "segments (workers) the search runs on")
            ->capture_default_str()
            ->check(CLI::Range(1, 1024));
        c.add_option("--distribute-by", request.schedule.distribution,
                     "mop: how rows are dealt to the segments' shards")
            ->capture_default_str();
        c.add_option("--name", request.name,
                     "the search's name; its runs are NAME-01, NAME-02, ... (default search-N)");
        c.add_option("--val-fraction", request.base.data.validationFraction,
                     "fraction of the training rows held out for validation (the leaderboard's ranking)")
            ->capture_default_str();
        c.add_option("--normalize", normalization,
                     "feature normalization: " + joinChoiceNames(data::normalizationChoices(), "|"))
            ->capture_default_str();
        c.add_option("--schedule", request.base.schedule.name,
                     "every configuration's learning-rate schedule: " + joinChoiceNames(train::scheduleChoices(), "|"))
            ->capture_default_str();
        c.add_option("--step-size", request.base.schedule.stepSize, "step schedule: epochs between decays")
            ->capture_default_str();
        c.add_option("--gamma", request.base.schedule.gamma, "step schedule: decay factor")->capture_default_str();
        c.add_option("--min-lr", request.base.schedule.minLr, "cosine schedule: final learning rate")
            ->capture_default_str();
        c.add_option("--seed", request.base.seed,
                     "seed of the split, the shards and every configuration's initial weights and data order")
            ->capture_default_str();
        c.add_option("--device", request.base.device, "cpu, cuda or cuda:N: where every segment trains")
            ->capture_default_str();
        threadsOption = c.add_option("--threads", request.base.threads,
                                     "CPU threads, shared out among the segments (0 = all CPUs)")
                            ->capture_default_str();
        c.add_option("--project", project,
                     "project file (default: $MPPDL_PROJECT, else the one *.mppdl here, else "
                     "./project.mppdl, created)");
        c.add_option("--keep-checkpoints", request.keepCheckpoints,
                     "epochs of each run whose weights and resume state are kept")
            ->capture_default_str()
            ->check(CLI::Range(1, 1000000));
        c.add_flag("--plan", plan, "print the configurations (and Hyperband's brackets) without training");
        c.add_option("--resume", resume, "continue the search of this name from its runs' last checkpoints");
        c.add_option("--show", show, "print the leaderboard of the recorded search of this name");
        c.add_flag("--json", json, "print the leaderboard as JSON lines (one as it changes, one at the end)");
        c.add_flag("-q,--quiet", quiet, "only the final leaderboard");
    }

    int run() {
        if (!show.empty())
            return showSearch();
        if (!resume.empty())
            return resumeSearch();
        if (space.empty())
            throw ConfigError("tune needs a search space: --space FILE.json (or --resume NAME, --show NAME)");
        request.spaceJson = readFile(space);
        request.spacePath = space;
        request.schedule.seed = request.base.seed;
        request.schedule.threads = request.base.threads;
        if (plan)
            return printPlan();
        if (source.location.empty())
            throw ConfigError("tune needs a data source: --data LOCATION");
        request.base.data.location = source.location;
        request.base.data.source = source.options();
        request.base.data.normalization = data::parseNormalization(normalization);
        request.schedule.cancel = &cancelFlag();
        auto store = openProject(project, store::Access::Write);
        store.reconcileInterrupted();
        LiveLeaderboard live(json, quiet);
        const auto result = tune::runSearch(store, request, &live);
        live.finish();
        return printResult(result, store.path());
    }

    int printPlan() {
        const auto p = tune::planSearch(request);
        if (json) {
            nlohmann::json j{{"search", request.search}, {"epochs", p.epochs}};
            j["configurations"] = nlohmann::json::array();
            for (size_t i = 0; i < p.configurations.size(); ++i) {
                auto c = nlohmann::json::parse(p.configurations[i].toJson());
                if (!p.bracketOf.empty())
                    c["bracket"] = p.bracketOf[i];
                j["configurations"].push_back(c);
            }
            j["brackets"] = nlohmann::json::array();
            for (const auto& b : p.brackets) {
                nlohmann::json rungs = nlohmann::json::array();
                for (const auto& r : b.rungs)
                    rungs.push_back({{"configurations", r.configurations}, {"epochs", r.epochs}});
                j["brackets"].push_back({{"s", b.s}, {"rungs", rungs}});
            }
            std::cout << j.dump() << std::endl;
            return 0;
        }
        if (!p.brackets.empty()) {
            const auto parsed = tune::parseSearchSpace(request.spaceJson, request.spacePath);
            std::cout << "Hyperband brackets (" << space << "): up to R = " << parsed.maxEpochs
                      << " epochs a configuration, keeping 1/" << parsed.eta << " at each rung\n";
            TextTable brackets({"bracket", "rung", "configurations", "epochs each"},
                               {TextTable::Align::Right, TextTable::Align::Right, TextTable::Align::Right,
                                TextTable::Align::Right});
            for (const auto& b : p.brackets)
                for (size_t i = 0; i < b.rungs.size(); ++i)
                    brackets.addRow({std::to_string(b.s), std::to_string(i), std::to_string(b.rungs[i].configurations),
                                     std::to_string(b.rungs[i].epochs)});
            std::cout << brackets.render() << "\n";
        }
        TextTable table({"#", "configuration", p.brackets.empty() ? "epochs" : "bracket"},
                        {TextTable::Align::Right, TextTable::Align::Left, TextTable::Align::Right});
        for (size_t i = 0; i < p.configurations.size(); ++i)
            table.addRow(
                {std::to_string(i + 1), p.configurations[i].describe(),
                 p.brackets.empty() ? std::to_string(p.configurations[i].epochs) : std::to_string(p.bracketOf[i])});
        std::cout << table.render() << groupThousands(int64_t(p.configurations.size())) << " configurations, "
                  << groupThousands(p.epochs) << " epochs in all (" << request.search << " search)" << std::endl;
        return 0;
    }

    int resumeSearch() {
        auto store = openProject(project, store::Access::Write);
        LiveLeaderboard live(json, quiet);
        const auto result = tune::resumeSearch(store, resume, &live, &cancelFlag(),
                                               threadsOption->count() > 0 ? request.base.threads : -1);
        live.finish();
        return printResult(result, store.path());
    }

    int showSearch() {
        const auto store = openProject(project, store::Access::Read);
        const auto result = tune::recordedSearch(store, show);
        if (json) {
            std::cout << progressJson(result, "search").dump() << std::endl;
            return 0;
        }
        std::cout << summaryLine(result) << "\n" << leaderboardTable(result);
        return 0;
    }

    int printResult(const tune::SearchProgress& result, const std::string& where) {
        if (json) {
            std::cout << progressJson(result, "finished").dump() << std::endl;
            return 0;
        }
        std::cout << summaryLine(result) << "\n" << leaderboardTable(result);
        const auto best = result.leaderboard().front();
        std::cout << "best: " << best.runName << " (" << best.configuration.describe() << "), validation "
                  << optionalPercent(best.status.valAccuracy) << ", test " << optionalPercent(best.testAccuracy)
                  << "; every configuration is a run in " << where << " (mppdl runs, mppdl show " << best.runName << ")"
                  << std::endl;
        return 0;
    }
};

} // namespace

void registerTuneCommands(CLI::App& app, Command& selected) {
    auto flags = std::make_shared<TuneFlags>();
    auto* tune = app.add_subcommand(
        "tune", "model selection: grid, random or Hyperband search over N segments (model hopper or task parallelism), "
                "every configuration a run, with a live leaderboard");
    flags->add(*tune);
    tune->footer([] {
        std::string text = "\nSearch space keys (a JSON object):\n";
        for (const auto& [key, help] : tune::searchSpaceKeys())
            text += "  " + std::string(key) + ": " + help + "\n";
        text += "\nExample: {\"architecture\": [\"mlp\", \"lenet5\"], \"lr\": {\"range\": [0.001, 0.1], \"scale\": "
                "\"log\", \"steps\": 3},\n          \"batch_size\": [32, 128], \"momentum\": 0.9, \"epochs\": 3}\n";
        return text;
    }());
    tune->callback([&selected, flags] { selected = [flags] { return flags->run(); }; });
}

} // namespace mppdl::cli
