#include "tui/project_watch.h"

#include "mppdl/core/error.h"

#include <algorithm>
#include <chrono>

namespace mppdl::tui {

namespace {
RunPace paceOf(const store::RunRecord& run, const std::vector<store::MetricPoint>& points);
}

const store::RunRecord* Snapshot::run(int64_t id) const {
    for (const auto& r : runs)
        if (r.id == id)
            return &r;
    return nullptr;
}

const RunDetail* Snapshot::detail(int64_t id) const {
    const auto it = details.find(id);
    return it == details.end() ? nullptr : &it->second;
}

ProjectWatch::ProjectWatch(std::string path, double periodSeconds) : m_path(std::move(path)), m_period(periodSeconds) {
    m_latest = read(1);
    m_thread = std::thread([this] { loop(); });
}

ProjectWatch::~ProjectWatch() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    m_thread.join();
}

std::shared_ptr<const Snapshot> ProjectWatch::latest() const {
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_latest;
}

void ProjectWatch::want(std::set<int64_t> runIds) {
    bool changed = false;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        changed = runIds != m_wanted;
        m_wanted = std::move(runIds);
        m_poked = m_poked || changed;
    }
    if (changed)
        m_wake.notify_all();
}

void ProjectWatch::wantSearches(bool wanted) {
    bool changed = false;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        changed = wanted != m_wantSearches;
        m_wantSearches = wanted;
        m_poked = m_poked || changed;
    }
    if (changed)
        m_wake.notify_all();
}

void ProjectWatch::poke() {
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_poked = true;
    }
    m_wake.notify_all();
}

void ProjectWatch::loop() {
    uint64_t generation = 1;
    std::unique_lock<std::mutex> lock(m_mutex);
    for (;;) {
        m_wake.wait_for(lock, std::chrono::duration<double>(m_period), [this] { return m_stop || m_poked; });
        if (m_stop)
            return;
        m_poked = false;
        lock.unlock();
        auto snapshot = read(++generation);
        lock.lock();
        m_latest = std::move(snapshot);
    }
}

std::shared_ptr<const Snapshot> ProjectWatch::read(uint64_t generation) {
    const auto start = std::chrono::steady_clock::now();
    auto out = std::make_shared<Snapshot>();
    out->path = m_path;
    out->generation = generation;
    std::set<int64_t> wanted;
    bool searches = false;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        wanted = m_wanted;
        searches = m_wantSearches;
    }
    try {
        // Opened for each read and closed after: a writer's checkpoint is never held back.
        const auto project = store::Project::open(m_path, store::Access::Read);
        out->runs = project.runs();
        out->datasets = project.datasets();
        out->architectures = project.architectures();
        for (const int64_t id : wanted) {
            if (!out->run(id))
                continue;
            RunDetail detail;
            detail.metrics = project.metrics(id);
            detail.checkpoints = project.checkpoints(id);
            detail.evaluations = project.evaluations(id);
            out->details.emplace(id, std::move(detail));
        }
        if (searches)
            for (const auto& name : tune::searchNames(project))
                out->searches.push_back(tune::recordedSearch(project, name));
        for (const auto& r : out->runs) {
            const std::string key = std::string(store::toString(r.state)) + " " + std::to_string(r.epochsDone) + " " +
                                    std::to_string(r.heartbeat) + " " + std::to_string(r.seconds);
            auto& cached = m_paceCache[r.id];
            if (cached.first != key) {
                const auto* detail = out->detail(r.id);
                cached = {key, paceOf(r, detail ? detail->metrics : project.metrics(r.id))};
            }
            out->pace[r.id] = cached.second;
        }
    } catch (const Error& e) {
        out->error = e.what();
        // Keep what was last read, so that the screens do not empty on a passing failure.
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_latest) {
            out->runs = m_latest->runs;
            out->datasets = m_latest->datasets;
            out->architectures = m_latest->architectures;
            out->details = m_latest->details;
            out->searches = m_latest->searches;
        }
    }
    out->readSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

namespace {
RunPace paceOf(const store::RunRecord& run, const std::vector<store::MetricPoint>& points) {
    RunPace pace;
    double epochSeconds = 0, lastEpochWall = -1, lastProgressWall = -1, progressRate = 0, epochRate = 0;
    for (const auto& p : points) {
        if (p.segment >= 0)
            continue;
        if (p.kind == "progress") {
            lastProgressWall = std::max(lastProgressWall, p.wallSeconds);
            if (p.name == "images_per_sec")
                progressRate = p.value;
        } else if (p.kind == "epoch") {
            lastEpochWall = std::max(lastEpochWall, p.wallSeconds);
            if (p.name == "epoch_seconds")
                epochSeconds = p.value;
            if (p.name == "images_per_sec")
                epochRate = p.value;
        }
    }
    pace.imagesPerSec = run.state == store::RunState::Running && progressRate > 0 ? progressRate : epochRate;
    if (pace.imagesPerSec == 0)
        pace.imagesPerSec = progressRate;
    // What is left: the epochs to go at the last epoch's pace, less what the current one has done.
    if (run.state == store::RunState::Running && epochSeconds > 0) {
        const double intoEpoch = lastProgressWall > lastEpochWall ? lastProgressWall - lastEpochWall : 0;
        pace.etaSeconds = std::max(0.0, epochSeconds * double(run.epochs - run.epochsDone) - intoEpoch);
    }
    return pace;
}
} // namespace

} // namespace mppdl::tui
