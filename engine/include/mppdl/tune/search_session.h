#pragma once

// A model selection search recorded in a project: every configuration is a run, trained by a
// TrialSet, with a leaderboard as it goes. What `mppdl tune` and the workbench run. No libtorch.

#include "mppdl/store/project.h"
#include "mppdl/tune/search.h"
#include "mppdl/tune/tuner.h"

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mppdl::tune {

/// "grid", "random", "hyperband": the CLI's help and the GUI read this list.
const std::vector<Choice>& searchChoices();

struct SearchRequest {
    std::string name;      ///< the search's name; its runs are NAME-01, NAME-02, ...; empty: "search-N"
    std::string spaceJson; ///< the search space file's text (recorded with every run, for a resume)
    std::string spacePath; ///< names it in messages
    std::string search = "grid";
    /// Random search: how many configurations (0: the file's "samples", else 8).
    int samples = 0;
    ScheduleOptions schedule;
    /// Everything a configuration does not set: the data, validation fraction, normalization,
    /// seed (the same for every configuration: their initial weights differ only by their
    /// architecture), device and threads.
    train::TrainConfig base;
    int keepCheckpoints = 1;
};

/// One line of a leaderboard.
struct LeaderboardRow {
    size_t index = 0; ///< 0-based position in the search
    int64_t runId = 0;
    std::string runName;
    Configuration configuration;
    TrialStatus status;
    std::optional<double> testAccuracy;
    /// "queued", "training", "stopped" (Hyperband's early stop), "finished", "failed", "cancelled"
    std::string state = "queued";
    int bracket = -1; ///< Hyperband: its bracket s; -1 otherwise
};

/// Everything a search is doing, for a live view and for the end.
struct SearchProgress {
    std::string name;
    std::string search, scheduler;
    int segments = 1;
    std::vector<LeaderboardRow> rows; ///< in search order
    std::string phase;                ///< "rung 2 of 3: 3 configurations to 9 epochs"
    int64_t epochsPlanned = 0;        ///< epochs the whole search trains (Hyperband: with its stops)
    int64_t epochsDone = 0;
    double seconds = 0;
    /// The rows sorted best first: validation accuracy, then epochs, then search order.
    std::vector<LeaderboardRow> leaderboard() const;
};

/// Gets the search's state on the calling thread: when a round starts, about twice a second while
/// it trains, and when it ends. Must return quickly.
class SearchObserver {
public:
    virtual ~SearchObserver() = default;
    virtual void onProgress(const SearchProgress& progress) = 0;
};

/// The configurations and plan a request would train, without training: for `mppdl tune --plan`.
/// ConfigError as runSearch for a bad space or request.
struct SearchPlan {
    std::vector<Configuration> configurations;
    std::vector<Bracket> brackets; ///< Hyperband only
    std::vector<int> bracketOf;    ///< Hyperband: each configuration's bracket s
    int64_t epochs = 0;            ///< epochs the search trains in all
};
SearchPlan planSearch(const SearchRequest& request);

/// Runs a new search in the project. Each configuration's architecture is resolved as
/// `mppdl train --arch` resolves it (a project version, a file, a bundled name). `runObserver`,
/// when given, also gets every run's events (a terminal's or a JSON printer's). CancelledError
/// when `schedule.cancel` is set (the runs are recorded as cancelled and can be resumed).
SearchProgress runSearch(store::Project& project, const SearchRequest& request, SearchObserver* observer,
                         RunObserver* runObserver = nullptr);

/// Continues a search whose process stopped (cancelled, killed): finished and stopped runs stay
/// as they are, the others continue from their last checkpoint (or start again when they had
/// none). `threads` >= 0 overrides the recorded thread count. ConfigError naming the search when
/// the project has no such search or it has nothing left to do.
SearchProgress resumeSearch(store::Project& project, const std::string& name, SearchObserver* observer,
                            const std::atomic<bool>* cancel, int threads = -1, RunObserver* runObserver = nullptr);

/// The searches a project holds (their names, in order of their first run).
std::vector<std::string> searchNames(const store::Project& project);
/// A recorded search's leaderboard as it stands (from its runs), for `mppdl tune --show` and the
/// workbench. ConfigError when there is no such search.
SearchProgress recordedSearch(const store::Project& project, const std::string& name);

} // namespace mppdl::tune
