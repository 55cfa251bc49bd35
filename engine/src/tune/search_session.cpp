#include "mppdl/tune/search_session.h"

#include "mppdl/core/error.h"
#include "mppdl/session/architectures.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/store/recorder.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <map>
#include <sstream>

namespace mppdl::tune {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

/// The search a run belongs to: its config's "search" object, or null.
json searchOf(const store::RunRecord& run) {
    try {
        const auto config = json::parse(run.config);
        if (config.contains("search") && config["search"].is_object())
            return config["search"];
    } catch (const json::exception&) {
    }
    return nullptr;
}

/// The configurations a request trains, and for Hyperband the bracket of each.
SearchPlan plan(const SearchRequest& request, const SearchSpace& space) {
    SearchPlan p;
    if (request.search == "grid") {
        p.configurations = gridConfigurations(space);
    } else if (request.search == "random") {
        const int count = request.samples > 0 ? request.samples : space.samples > 0 ? space.samples : 8;
        p.configurations = randomConfigurations(space, count, space.seed);
    } else if (request.search == "hyperband") {
        p.brackets = hyperbandPlan(space.maxEpochs, space.eta);
        int count = 0;
        for (const auto& b : p.brackets)
            count += b.rungs.front().configurations;
        p.configurations = randomConfigurations(space, count, space.seed);
        size_t at = 0;
        for (const auto& b : p.brackets)
            for (int i = 0; i < b.rungs.front().configurations; ++i, ++at) {
                p.configurations[at].epochs = space.maxEpochs;
                p.bracketOf.push_back(b.s);
            }
    } else {
        throw ConfigError("unknown search '" + request.search + "' (grid, random, hyperband)");
    }
    if (request.search == "hyperband")
        p.epochs = hyperbandEpochs(p.brackets);
    else
        for (const auto& c : p.configurations)
            p.epochs += c.epochs;
    return p;
}

/// The TrainConfig of one configuration: the request's base with the configuration's values.
train::TrainConfig configOf(const train::TrainConfig& base, const Configuration& c) {
    auto config = base;
    config.strategy = "single";
    config.segments = 1;
    config.processes = 1;
    config.optimizer.name = c.optimizer;
    config.optimizer.lr = c.lr;
    config.optimizer.momentum = c.momentum;
    config.optimizer.weightDecay = c.weightDecay;
    config.batchSize = c.batchSize;
    config.epochs = c.epochs;
    return config;
}

/// A run's part in a live search: forwards its events to the project's recorder (and a display),
/// and keeps its leaderboard row and validation accuracy per epoch (Hyperband ranks on them).
class TrialWatch : public RunObserver {
public:
    TrialWatch(LeaderboardRow& row, store::RunRecorder* recorder, RunObserver* display)
        : m_row(row), m_recorder(recorder), m_display(display) {}

    void onEvents(const std::vector<RunEvent>& batch) override {
        if (m_recorder)
            m_recorder->onEvents(batch);
        if (m_display)
            m_display->onEvents(batch);
        for (const auto& e : batch) {
            switch (e.kind) {
            case EventKind::Started: m_row.state = "training"; break;
            case EventKind::Epoch:
                m_row.status.epochsDone = e.epoch;
                m_row.status.seconds = e.wallSeconds;
                if (e.hasMetric("val_accuracy")) {
                    m_row.status.valAccuracy = e.metric("val_accuracy");
                    m_row.status.valLoss = e.metric("val_loss");
                    valAt[e.epoch] = e.metric("val_accuracy");
                }
                break;
            case EventKind::Evaluation:
                if (e.segment < 0 && e.hasMetric("test_accuracy"))
                    m_row.testAccuracy = e.metric("test_accuracy");
                break;
            case EventKind::Finished:
                m_row.state = stopping ? "stopped" : "finished";
                m_row.status.finished = !stopping;
                break;
            case EventKind::Failed: m_row.state = "failed"; break;
            case EventKind::Cancelled: m_row.state = "cancelled"; break;
            default: break;
            }
        }
    }

    std::map<int, double> valAt; ///< validation accuracy after each epoch
    bool stopping = false;       ///< the search is ending this run early

private:
    LeaderboardRow& m_row;
    store::RunRecorder* m_recorder;
    RunObserver* m_display;
};

/// A search in progress: its runs, their trials and the rounds that train them.
struct LiveSearch {
    SearchRequest request;
    SearchSpace space;
    SearchPlan plan;
    SearchProgress progress;
    std::vector<std::unique_ptr<store::RunRecorder>> recorders;
    std::vector<std::unique_ptr<TrialWatch>> watches;
    std::vector<model::Architecture> architectures;
    std::vector<store::ArchitectureVersion> versions;
    std::vector<std::optional<Checkpoint>> resumeFrom;
    std::vector<bool> ended; ///< runs that ended before this process (a resume)
    Clock::time_point start = Clock::now();
    double secondsBefore = 0;
    Clock::time_point lastReport;

    void report(SearchObserver* observer, bool force) {
        progress.seconds = secondsBefore + std::chrono::duration<double>(Clock::now() - start).count();
        progress.epochsDone = 0;
        for (const auto& r : progress.rows)
            progress.epochsDone += r.status.epochsDone;
        if (!observer)
            return;
        if (!force && Clock::now() - lastReport < std::chrono::milliseconds(500))
            return;
        lastReport = Clock::now();
        observer->onProgress(progress);
    }
};

/// Ranks rows by validation accuracy at `epoch` (best first; ties by search order).
std::vector<size_t> rankedAt(const LiveSearch& live, const std::vector<size_t>& members, int epoch) {
    auto ranked = members;
    auto value = [&](size_t i) {
        const auto& at = live.watches[i]->valAt;
        const auto it = at.find(epoch);
        return it == at.end() ? -1.0 : it->second;
    };
    std::stable_sort(ranked.begin(), ranked.end(), [&](size_t a, size_t b) { return value(a) > value(b); });
    return ranked;
}

/// Trains what is left of the search: every round of its plan, skipping what is done.
void execute(store::Project& project, LiveSearch& live, const data::PreparedData& data, SearchObserver* observer) {
    const size_t n = live.plan.configurations.size();
    std::vector<Trial> trials;
    for (size_t i = 0; i < n; ++i) {
        Trial t;
        t.config = configOf(live.request.base, live.plan.configurations[i]);
        t.architecture = live.architectures[i];
        t.observer = live.watches[i].get();
        t.checkpoints = live.recorders[i].get();
        t.resumeFrom = live.resumeFrom[i];
        t.ended = live.ended[i];
        trials.push_back(std::move(t));
    }
    auto schedule = live.request.schedule;
    auto whileWaiting = schedule.whileWaiting;
    schedule.whileWaiting = [&live, observer, whileWaiting] {
        live.report(observer, false);
        if (whileWaiting)
            whileWaiting();
    };
    TrialSet set(std::move(trials), data, schedule);
    auto startRuns = [&](const std::vector<size_t>& which) {
        for (auto i : which)
            if (!live.ended[i] && live.progress.rows[i].state != "training")
                project.startRun(live.progress.rows[i].runId);
    };

    if (live.request.search != "hyperband") {
        std::vector<size_t> all;
        std::vector<int> until;
        for (size_t i = 0; i < n; ++i)
            if (!live.ended[i]) {
                all.push_back(i);
                until.push_back(live.plan.configurations[i].epochs);
            }
        live.progress.phase = std::to_string(all.size()) + " configurations";
        live.report(observer, true);
        startRuns(all);
        set.train(all, until);
        live.progress.phase = "done";
        live.report(observer, true);
        return;
    }

    // Hyperband: round i trains rung i of every bracket at once (as MADlib does), so that the
    // segments have as many configurations to hop between as the plan allows.
    std::map<int, std::vector<size_t>> members; // bracket s -> its configurations in the current rung
    for (size_t i = 0; i < n; ++i)
        members[live.plan.bracketOf[i]].push_back(i);
    size_t rounds = 0;
    for (const auto& b : live.plan.brackets)
        rounds = std::max(rounds, b.rungs.size());
    for (size_t round = 0; round < rounds; ++round) {
        std::vector<size_t> which;
        std::vector<int> until;
        for (const auto& b : live.plan.brackets) {
            if (round >= b.rungs.size())
                continue;
            for (auto i : members[b.s]) {
                which.push_back(i);
                until.push_back(b.rungs[round].epochs);
            }
        }
        std::ostringstream phase;
        phase << "rung " << round + 1 << " of " << rounds << ": " << which.size() << " configurations";
        live.progress.phase = phase.str();
        live.report(observer, true);
        std::vector<size_t> training;
        for (auto i : which)
            if (!live.ended[i])
                training.push_back(i);
        startRuns(training);
        set.train(which, until);
        // Promotions: the best 1/eta of each bracket's rung go on; the others stop here.
        for (const auto& b : live.plan.brackets) {
            if (round + 1 >= b.rungs.size())
                continue;
            const auto ranked = rankedAt(live, members[b.s], b.rungs[round].epochs);
            const size_t keep = size_t(b.rungs[round + 1].configurations);
            for (size_t k = keep; k < ranked.size(); ++k) {
                const size_t i = ranked[k];
                if (live.ended[i])
                    continue;
                std::ostringstream why;
                why << "stopped by Hyperband after rung " << round + 1 << " (" << b.rungs[round].epochs
                    << " epochs): ranked " << k + 1 << " of " << ranked.size() << " in bracket " << b.s
                    << ", which keeps " << keep;
                live.watches[i]->stopping = true;
                set.stop(i, why.str());
                live.ended[i] = true;
            }
            members[b.s].assign(ranked.begin(), ranked.begin() + std::min(keep, ranked.size()));
        }
    }
    live.progress.phase = "done";
    live.report(observer, true);
}

/// The leaderboard rows of a search's runs as recorded.
LeaderboardRow rowOf(const store::RunRecord& run, const json& search) {
    LeaderboardRow row;
    row.index = search.value("index", size_t(0));
    row.runId = run.id;
    row.runName = run.name;
    row.configuration = Configuration::fromJson(search.at("configuration").dump());
    row.bracket = search.value("bracket", -1);
    row.status.epochsDone = run.epochsDone;
    row.status.seconds = run.seconds;
    row.testAccuracy = run.testAccuracy;
    switch (run.state) {
    case store::RunState::Queued: row.state = "queued"; break;
    case store::RunState::Running: row.state = "training"; break;
    case store::RunState::Finished:
        row.status.finished = run.epochsDone >= run.epochs;
        row.state = row.status.finished ? "finished" : "stopped";
        break;
    case store::RunState::Failed: row.state = "failed"; break;
    case store::RunState::Cancelled: row.state = "cancelled"; break;
    case store::RunState::Interrupted: row.state = "interrupted"; break;
    }
    return row;
}

/// The runs of search `name`, in search order, with their "search" objects.
std::vector<std::pair<store::RunRecord, json>> searchRuns(const store::Project& project, const std::string& name) {
    std::vector<std::pair<store::RunRecord, json>> out;
    for (const auto& run : project.runs()) {
        auto s = searchOf(run);
        if (!s.is_null() && s.value("name", "") == name)
            out.emplace_back(run, s);
    }
    if (out.empty()) {
        const auto names = searchNames(project);
        std::string list;
        for (const auto& n : names)
            list += (list.empty() ? "" : ", ") + n;
        throw ConfigError(project.path() + " has no search named '" + name + "'" +
                          (list.empty() ? std::string(" (it has no searches)") : " (its searches: " + list + ")"));
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.second.value("index", 0) < b.second.value("index", 0); });
    return out;
}

/// A metric of the run's epochs as recorded: epoch -> value.
std::map<int, double> recordedEpochs(const store::Project& project, int64_t runId, const std::string& name) {
    std::map<int, double> out;
    for (const auto& p : project.metrics(runId, "epoch"))
        if (p.segment < 0 && p.name == name)
            out[p.epoch] = p.value;
    return out;
}

/// The row's validation figures after its epoch `kept`, and the accuracies up to it (Hyperband
/// ranks on them); later epochs' points are a cancelled epoch's, dropped on a resume.
std::map<int, double> restoreValidation(const store::Project& project, LeaderboardRow& row, int kept) {
    auto accuracy = recordedEpochs(project, row.runId, "val_accuracy");
    const auto loss = recordedEpochs(project, row.runId, "val_loss");
    for (auto it = accuracy.begin(); it != accuracy.end();)
        it = it->first > kept ? accuracy.erase(it) : std::next(it);
    if (accuracy.count(kept))
        row.status.valAccuracy = accuracy.at(kept);
    if (loss.count(kept))
        row.status.valLoss = loss.at(kept);
    return accuracy;
}

void validateRequest(const SearchRequest& request) {
    const auto& choices = schedulerChoices();
    if (std::none_of(choices.begin(), choices.end(),
                     [&](const auto& c) { return request.schedule.scheduler == c.name; }))
        throw ConfigError("unknown scheduler '" + request.schedule.scheduler + "' (mop, task, sequential)");
    if (request.schedule.segments < 1 || request.schedule.segments > 1024)
        throw ConfigError("--segments must be from 1 to 1024, got " + std::to_string(request.schedule.segments));
    if (request.search == "hyperband" && request.base.data.validationFraction <= 0)
        throw ConfigError("Hyperband ranks configurations by validation accuracy: the validation fraction must be "
                          "above 0");
    if (request.samples > 0 && request.search != "random")
        throw ConfigError("--samples is the size of a random search; a " + request.search + " search " +
                          (request.search == "grid" ? "trains every combination" : "draws its brackets' counts"));
}

} // namespace

const std::vector<Choice>& searchChoices() {
    static const std::vector<Choice> choices = {
        {"grid", "every combination of the space's values (a range needs \"steps\")"},
        {"random", "\"samples\" configurations drawn from the space with its seed"},
        {"hyperband", "random configurations in Hyperband's brackets: successive halving on validation accuracy, "
                      "up to \"max_epochs\", keeping 1/\"eta\" at each rung"},
    };
    return choices;
}

std::vector<LeaderboardRow> SearchProgress::leaderboard() const {
    auto sorted = rows;
    std::stable_sort(sorted.begin(), sorted.end(), [](const LeaderboardRow& a, const LeaderboardRow& b) {
        const double va = a.status.valAccuracy.value_or(-1), vb = b.status.valAccuracy.value_or(-1);
        if (va != vb)
            return va > vb;
        return a.status.epochsDone > b.status.epochsDone;
    });
    return sorted;
}

SearchPlan planSearch(const SearchRequest& request) {
    const auto space = parseSearchSpace(request.spaceJson, request.spacePath);
    validateRequest(request);
    return plan(request, space);
}

std::vector<std::string> searchNames(const store::Project& project) {
    std::vector<std::string> names;
    for (const auto& run : project.runs()) {
        const auto s = searchOf(run);
        if (s.is_null())
            continue;
        const auto name = s.value("name", "");
        if (std::find(names.begin(), names.end(), name) == names.end())
            names.push_back(name);
    }
    return names;
}

SearchProgress recordedSearch(const store::Project& project, const std::string& name) {
    const auto runs = searchRuns(project, name);
    SearchProgress p;
    p.name = name;
    const auto& first = runs.front().second;
    p.search = first.value("search", "");
    p.scheduler = first.value("scheduler", "");
    p.segments = first.value("segments", 1);
    p.epochsPlanned = first.value("epochs_planned", int64_t(0));
    for (const auto& [run, search] : runs) {
        auto row = rowOf(run, search);
        restoreValidation(project, row, run.epochsDone);
        p.epochsDone += row.status.epochsDone;
        p.seconds = std::max(p.seconds, run.seconds);
        p.rows.push_back(row);
    }
    p.phase = "recorded";
    return p;
}

SearchProgress runSearch(store::Project& project, const SearchRequest& requested, SearchObserver* observer,
                         RunObserver* runObserver) {
    LiveSearch live;
    live.request = requested;
    live.space = parseSearchSpace(requested.spaceJson, requested.spacePath);
    validateRequest(requested);
    live.plan = plan(requested, live.space);
    const size_t n = live.plan.configurations.size();
    if (live.request.name.empty()) {
        const auto names = searchNames(project);
        for (int k = int(names.size()) + 1;; ++k) {
            const auto candidate = "search-" + std::to_string(k);
            if (std::find(names.begin(), names.end(), candidate) == names.end()) {
                live.request.name = candidate;
                break;
            }
        }
    } else {
        const auto names = searchNames(project);
        if (std::find(names.begin(), names.end(), live.request.name) != names.end())
            throw ConfigError(project.path() + " already has a search named '" + live.request.name +
                              "' (continue it with --resume " + live.request.name + ", or pick another --name)");
    }

    // Every architecture resolved (and validated) before anything is recorded.
    std::map<std::string, session::ProjectArchitecture> resolved;
    for (const auto& c : live.plan.configurations)
        if (!resolved.count(c.architecture))
            resolved.emplace(c.architecture, session::projectArchitecture(project, c.architecture, true));
    for (const auto& c : live.plan.configurations) {
        live.architectures.push_back(resolved.at(c.architecture).architecture);
        live.versions.push_back(resolved.at(c.architecture).version);
    }
    // The data once, for every configuration.
    auto base = live.request.base;
    base.epochs = 1;
    RecordingObserver loading;
    const auto loaded = train::loadData(configOf(base, live.plan.configurations.front()), live.architectures.front(),
                                        runObserver ? *runObserver : loading);

    live.progress.name = live.request.name;
    live.progress.search = live.request.search;
    live.progress.scheduler = live.request.schedule.scheduler;
    live.progress.segments = live.request.schedule.segments;
    live.progress.epochsPlanned = live.plan.epochs;
    const auto spaceJson = json::parse(live.request.spaceJson);
    const int width = int(std::to_string(n).size()) < 2 ? 2 : int(std::to_string(n).size());
    for (size_t i = 0; i < n; ++i) {
        const auto& c = live.plan.configurations[i];
        json search = {{"name", live.request.name},
                       {"index", i},
                       {"of", n},
                       {"search", live.request.search},
                       {"scheduler", live.request.schedule.scheduler},
                       {"segments", live.request.schedule.segments},
                       {"distribution", live.request.schedule.distribution},
                       {"distribution_seed", live.request.schedule.seed},
                       {"samples", live.request.samples},
                       {"keep_checkpoints", live.request.keepCheckpoints},
                       {"epochs_planned", live.plan.epochs},
                       {"space", spaceJson},
                       {"configuration", json::parse(c.toJson())}};
        if (!live.plan.bracketOf.empty())
            search["bracket"] = live.plan.bracketOf[i];
        session::RunStart start;
        std::string number = std::to_string(i + 1);
        number.insert(0, size_t(std::max(0, width - int(number.size()))), '0');
        start.name = live.request.name + "-" + number;
        start.search = search.dump();
        start.strategy = live.request.schedule.scheduler;
        start.segments = live.request.schedule.scheduler == "sequential" ? 1 : live.request.schedule.segments;
        const auto config = configOf(live.request.base, c);
        const int64_t runId = session::createRun(project, config, live.versions[i], loaded, start);
        LeaderboardRow row;
        row.index = i;
        row.runId = runId;
        row.runName = start.name;
        row.configuration = c;
        row.bracket = live.plan.bracketOf.empty() ? -1 : live.plan.bracketOf[i];
        live.progress.rows.push_back(row);
    }
    for (size_t i = 0; i < n; ++i) {
        live.recorders.push_back(
            std::make_unique<store::RunRecorder>(project, live.progress.rows[i].runId, live.request.keepCheckpoints));
        live.watches.push_back(
            std::make_unique<TrialWatch>(live.progress.rows[i], live.recorders.back().get(), runObserver));
    }
    live.resumeFrom.assign(n, std::nullopt);
    live.ended.assign(n, false);
    execute(project, live, loaded.prepared, observer);
    return live.progress;
}

SearchProgress resumeSearch(store::Project& project, const std::string& name, SearchObserver* observer,
                            const std::atomic<bool>* cancel, int threads, RunObserver* runObserver) {
    project.reconcileInterrupted();
    const auto runs = searchRuns(project, name);
    const auto& first = runs.front().second;
    LiveSearch live;
    auto& request = live.request;
    request.name = name;
    request.search = first.value("search", "grid");
    request.samples = first.value("samples", 0);
    request.keepCheckpoints = first.value("keep_checkpoints", 1);
    request.schedule.scheduler = first.value("scheduler", "mop");
    request.schedule.segments = first.value("segments", 1);
    request.schedule.distribution = first.value("distribution", "random");
    request.schedule.seed = first.value("distribution_seed", uint64_t(0));
    request.schedule.cancel = cancel;
    request.spaceJson = first.at("space").dump();
    request.spacePath = "search " + name;
    request.base = train::trainConfigFromJson(runs.front().first.config);
    if (threads >= 0)
        request.base.threads = threads;
    request.schedule.threads = request.base.threads;
    live.space = parseSearchSpace(request.spaceJson, request.spacePath);
    live.plan = plan(request, live.space);
    if (runs.size() != live.plan.configurations.size())
        throw ConfigError("search " + name + " is incomplete: " + std::to_string(runs.size()) + " of its " +
                          std::to_string(live.plan.configurations.size()) + " runs are in " + project.path());

    live.progress.name = name;
    live.progress.search = request.search;
    live.progress.scheduler = request.schedule.scheduler;
    live.progress.segments = request.schedule.segments;
    live.progress.epochsPlanned = live.plan.epochs;
    bool left = false;
    for (const auto& [run, search] : runs) {
        const std::string label = "run " + std::to_string(run.id) + " (" + run.name + ")";
        if (run.state == store::RunState::Running)
            throw ConfigError(label + " of search " + name + " is still running (pid " + std::to_string(run.pid) +
                              " on " + run.host + ")");
        auto row = rowOf(run, search);
        // The recorded configuration is the one to continue (a newer space file changes nothing).
        live.plan.configurations[row.index] = row.configuration;
        const auto version = project.architectureById(run.architectureVersionId);
        if (!version)
            throw StorageError(project.path() + ": " + label + " refers to a missing architecture version");
        live.versions.push_back(*version);
        live.architectures.push_back(
            model::parseArchitecture(version->spec, version->name + "@" + std::to_string(version->version)));
        const bool ended = run.state == store::RunState::Finished;
        live.ended.push_back(ended);
        std::optional<Checkpoint> from;
        if (!ended) {
            left = true;
            from = project.lastResumable(run.id);
            project.truncateMetrics(run.id, from ? from->epoch : 0);
            row.status.epochsDone = from ? from->epoch : 0;
            row.state = "queued";
        }
        live.resumeFrom.push_back(from);
        live.progress.rows.push_back(row);
        live.secondsBefore = std::max(live.secondsBefore, run.seconds);
    }
    if (!left)
        throw ConfigError("search " + name + " has finished: every run of it has ended");

    RecordingObserver loading;
    const auto loaded = train::loadData(configOf(request.base, live.plan.configurations.front()),
                                        live.architectures.front(), runObserver ? *runObserver : loading);
    for (const auto& [run, search] : runs) {
        (void)search;
        const auto info = train::modelInfoJson(loaded.prepared.normalizer, loaded.prepared.train.classNames(), 1);
        if (!run.modelInfo.empty() && json::parse(info) != json::parse(run.modelInfo))
            throw DataError(request.base.data.location + " has changed since search " + name +
                            " started (other class names or feature statistics): it cannot be resumed");
    }
    for (size_t i = 0; i < runs.size(); ++i) {
        live.recorders.push_back(
            std::make_unique<store::RunRecorder>(project, live.progress.rows[i].runId, request.keepCheckpoints));
        live.watches.push_back(
            std::make_unique<TrialWatch>(live.progress.rows[i], live.recorders.back().get(), runObserver));
        auto& row = live.progress.rows[i];
        row.status.valAccuracy.reset();
        row.status.valLoss.reset();
        live.watches.back()->valAt = restoreValidation(project, row, row.status.epochsDone);
    }
    execute(project, live, loaded.prepared, observer);
    return live.progress;
}

} // namespace mppdl::tune
