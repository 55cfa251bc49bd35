#include "mppdl/store/recorder.h"

#include "mppdl/core/error.h"

namespace mppdl::store {


std::vector<MetricPoint> metricPoints(const RunEvent& event) {
    const char* kind = nullptr;
    switch (event.kind) {
    case EventKind::Progress: kind = "progress"; break;
    case EventKind::Epoch: kind = "epoch"; break;
    case EventKind::Evaluation: kind = "test"; break;
    default: return {};
    }
    std::vector<MetricPoint> points;
    points.reserve(event.metrics.size());
    for (const auto& m : event.metrics)
        if (m.name != "eta_seconds")
            points.push_back({event.segment, event.epoch, event.step, kind, m.name, m.value, event.wallSeconds});
    return points;
}

RunRecorder::RunRecorder(Project& project, int64_t runId, int keepCheckpoints, double flushSeconds)
    : m_project(project), m_runId(runId), m_keep(keepCheckpoints), m_flushInterval(flushSeconds),
      m_lastFlush(std::chrono::steady_clock::now()) {
    if (const auto run = project.run(runId)) {
        // A resumed run continues from what it had.
        m_progress.epochsDone = run->epochsDone;
        m_progress.bestEpoch = run->bestEpoch;
        m_progress.bestValAccuracy = run->bestValAccuracy;
        m_progress.seconds = run->seconds;
    }
}

void RunRecorder::onEvents(const std::vector<RunEvent>& batch) {
    const auto start = std::chrono::steady_clock::now();
    for (const auto& event : batch)
        record(event);
    if (!m_ended && std::chrono::steady_clock::now() - m_lastFlush >= m_flushInterval)
        flush();
    m_busy += std::chrono::steady_clock::now() - start;
}

void RunRecorder::record(const RunEvent& event) {
    switch (event.kind) {
    case EventKind::Finished:
        m_progress.seconds = event.wallSeconds;
        // Each process's figures, as points of kind "rank" whose segment column is the rank.
        for (const auto& r : event.ranks)
            for (const auto& [name, value] : {std::pair<const char*, double>{"rows_read", double(r.rowsRead)},
                                              {"bytes_read", double(r.bytesRead)},
                                              {"peak_rss_bytes", double(r.peakRssBytes)},
                                              {"segments", double(r.segments.size())}})
                m_pending.push_back({r.rank, event.epoch, event.step, "rank", name, value, event.wallSeconds});
        end(RunState::Finished, {}, {});
        return;
    case EventKind::Failed: end(RunState::Failed, event.errorKind, event.message); return;
    case EventKind::Cancelled: end(RunState::Cancelled, "cancelled", event.message); return;
    default: break;
    }
    const auto points = metricPoints(event);
    m_pending.insert(m_pending.end(), points.begin(), points.end());
    if (event.kind == EventKind::Epoch && event.segment < 0) {
        m_lastStep = event.step;
        m_progress.epochsDone = event.epoch;
        m_progress.seconds = event.wallSeconds;
        for (const auto& m : event.metrics)
            if (m.name == "val_accuracy" && (!m_progress.bestValAccuracy || m.value > *m_progress.bestValAccuracy)) {
                m_progress.bestValAccuracy = m.value;
                m_progress.bestEpoch = event.epoch;
            }
    }
    if (event.kind == EventKind::Evaluation && event.evaluation) {
        flush();
        m_project.saveEvaluation(m_runId, event.epoch, *event.evaluation);
        m_project.setTestAccuracy(m_runId, event.evaluation->accuracy);
    }
}

void RunRecorder::flush() {
    m_lastFlush = std::chrono::steady_clock::now();
    if (m_pending.empty())
        return;
    m_project.appendMetrics(m_runId, m_pending);
    m_pending.clear();
}

void RunRecorder::onCheckpoint(const Checkpoint& checkpoint) {
    const auto start = std::chrono::steady_clock::now();
    // The epoch's points first: a checkpoint never refers to metrics that were not written.
    flush();
    m_project.saveCheckpoint(m_runId, checkpoint, m_keep);
    m_progress.seconds = checkpoint.wallSeconds;
    m_project.updateProgress(m_runId, m_progress);
    m_busy += std::chrono::steady_clock::now() - start;
    // Stays buffered until the next flush: it is the last thing this epoch costs.
    m_pending.push_back({-1, checkpoint.epoch, m_lastStep, "epoch", "store_seconds",
                         checkpoint.serializeSeconds + m_busy.count(), checkpoint.wallSeconds});
    m_busy = {};
}

void RunRecorder::fail(const std::string& errorKind, const std::string& message) {
    if (!m_ended)
        end(errorKind == "cancelled" ? RunState::Cancelled : RunState::Failed, errorKind, message);
}

void RunRecorder::end(RunState state, const std::string& errorKind, const std::string& message) {
    if (m_ended)
        return;
    m_ended = true;
    try {
        flush();
        m_project.updateProgress(m_runId, m_progress);
        m_project.endRun(m_runId, state, errorKind, message);
    } catch (const Error& e) {
        if (state == RunState::Finished)
            throw; // a finished run that cannot be recorded is this run's failure
        m_endError = e.what();
    }
}

} // namespace mppdl::store
