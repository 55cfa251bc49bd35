#pragma once

#include "mppdl/store/project.h"
#include "mppdl/core/checkpoint.h"
#include "mppdl/core/events.h"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::store {

/// The metric points an event carries, as a project records them: a Progress event's as kind
/// "progress", an Epoch's as "epoch", an Evaluation's as "test"; none for other events. ETA is left
/// out: it is derived from the others. The recorder and the workbench's live views read events so.
std::vector<MetricPoint> metricPoints(const RunEvent& event);

/// Records a run into a project as it trains: its metric series (buffered, one transaction per
/// flush, never per point), its checkpoints, its progress and how it ended. Hand it to train() as
/// observer (in an ObserverList beside the terminal's) and as checkpoint sink.
///
/// Each checkpoint adds a `store_seconds` point to its epoch: the time the training thread spent
/// in the store during that epoch (metric writes, serializing and writing the checkpoint), so the
/// cost of recording is measured where it is paid.
///
/// A storage failure while training is rethrown (the run stops with a StorageError rather than
/// train on without a record); once the run has ended, failures to record that are reported by
/// endedWithError() instead, so that the original error is the one the user sees.
class RunRecorder : public RunObserver, public CheckpointSink {
public:
    /// `keepCheckpoints`: the last K epochs kept with resume state (the best is kept besides).
    /// `flushSeconds`: the longest a metric point waits in memory.
    RunRecorder(Project& project, int64_t runId, int keepCheckpoints = 3, double flushSeconds = 2.0);

    void onEvents(const std::vector<RunEvent>& batch) override;
    void onCheckpoint(const Checkpoint& checkpoint) override;

    /// Writes the buffered points now.
    void flush();
    /// Whether a Finished, Failed or Cancelled event was recorded.
    bool ended() const { return m_ended; }
    /// Marks the run failed when it ended by an error that never reached the observer (e.g. the
    /// data could not be loaded); does nothing when the run already ended.
    void fail(const std::string& errorKind, const std::string& message);
    /// A storage error met while recording the end of the run; empty when none.
    const std::string& endedWithError() const { return m_endError; }

private:
    void record(const RunEvent& event);
    void end(RunState state, const std::string& errorKind, const std::string& message);

    Project& m_project;
    int64_t m_runId;
    int m_keep;
    std::chrono::duration<double> m_flushInterval;
    std::chrono::steady_clock::time_point m_lastFlush;
    std::vector<MetricPoint> m_pending;
    RunProgress m_progress;
    std::chrono::duration<double> m_busy{0}; ///< time spent recording since the last checkpoint
    int64_t m_lastStep = 0;                  ///< of the last epoch event: where its checkpoint's cost is filed
    bool m_ended = false;
    std::string m_endError;
};

} // namespace mppdl::store
