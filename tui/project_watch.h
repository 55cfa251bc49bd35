#pragma once

// The project file as the terminal workbench sees it: read on a thread of its own about once a
// second (every read a short SQLite read transaction: in WAL mode it never blocks the process
// that trains), published as immutable snapshots the drawing thread picks up.

#include "mppdl/store/project.h"
#include "mppdl/tune/search_session.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace mppdl::tui {

/// What a run screen shows beyond the run's row.
struct RunDetail {
    std::vector<store::MetricPoint> metrics;
    std::vector<store::CheckpointInfo> checkpoints;
    std::vector<store::EvaluationRecord> evaluations;
};

/// A run's latest throughput, from its last progress or epoch point.
struct RunPace {
    double imagesPerSec = 0; ///< 0: none recorded
    double etaSeconds = -1;  ///< -1: unknown
};

struct Snapshot {
    std::string path;
    std::string error; ///< why the file cannot be read now ("" when it was)
    std::vector<store::RunRecord> runs;
    std::vector<store::DatasetRecord> datasets;
    std::vector<store::ArchitectureSummary> architectures;
    std::map<int64_t, RunDetail> details;       ///< of the runs asked for with ProjectWatch::want()
    std::map<int64_t, RunPace> pace;            ///< of every run
    std::vector<tune::SearchProgress> searches; ///< when asked for with ProjectWatch::wantSearches()
    double readSeconds = 0;                     ///< how long the read took
    uint64_t generation = 0;                    ///< 1, 2, ... one per read

    const store::RunRecord* run(int64_t id) const;
    const RunDetail* detail(int64_t id) const;
};

class ProjectWatch {
public:
    /// Starts reading `path` every `periodSeconds`; the first read is done before it returns.
    explicit ProjectWatch(std::string path, double periodSeconds = 1.0);
    ~ProjectWatch();
    ProjectWatch(const ProjectWatch&) = delete;
    ProjectWatch& operator=(const ProjectWatch&) = delete;

    std::shared_ptr<const Snapshot> latest() const;
    /// The runs whose metrics, checkpoints and evaluations the next reads include.
    void want(std::set<int64_t> runIds);
    /// Whether the next reads include every search's leaderboard.
    void wantSearches(bool wanted);
    /// Reads now rather than at the next period (after a launch, a stop).
    void poke();

private:
    void loop();
    std::shared_ptr<const Snapshot> read(uint64_t generation);

    std::string m_path;
    double m_period;
    mutable std::mutex m_mutex;
    std::condition_variable m_wake;
    std::shared_ptr<const Snapshot> m_latest;
    std::set<int64_t> m_wanted;
    /// Each run's pace as last read, and what its row said then: read again when that changes.
    std::map<int64_t, std::pair<std::string, RunPace>> m_paceCache;
    bool m_stop = false, m_poked = false, m_wantSearches = false;
    std::thread m_thread;
};

} // namespace mppdl::tui
