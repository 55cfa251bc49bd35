#pragma once

// What a run reports and who receives it: below the trainer, the tuner and the project store,
// which all speak these types.

#include "mppdl/core/evaluation.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mppdl {

enum class EventKind {
    Started,    ///< the run began; message holds a one-line summary
    Message,    ///< informational text (data loaded, device chosen)
    Progress,   ///< a throttled update inside an epoch
    Epoch,      ///< an epoch ended; train and validation metrics
    Evaluation, ///< a full evaluation (e.g. on the test split); see `evaluation`
    Finished,   ///< the run ended normally; final metrics
    Failed,     ///< the run ended with an error; message and errorKind say why
    Cancelled,  ///< the run was stopped by the user
};

const char* toString(EventKind kind);

/// A named scalar. Names are snake_case and stable: train_loss, train_accuracy, val_loss,
/// val_accuracy, test_loss, test_accuracy, lr, images_per_sec, epoch_seconds, eta_seconds; a
/// segment's epoch also rows, segment_seconds, divergence and, in the first epoch a process
/// trains, rows_of_class_C for each class C of its shard.
struct Metric {
    std::string name;
    double value = 0;
};

/// What one process of a run read and how much memory it took: a Finished event's `ranks`.
struct RankFigures {
    int rank = 0;
    std::vector<int> segments;
    int64_t rowsRead = 0;     ///< source rows whose features it decoded
    int64_t bytesRead = 0;    ///< their packed feature bytes
    int64_t peakRssBytes = 0; ///< its peak resident size (getrusage's ru_maxrss)
};

/// One thing a run reports. Plain data, cheap to copy, safe to hand to another thread.
struct RunEvent {
    EventKind kind = EventKind::Message;
    int epoch = 0;    ///< 1-based epoch this event belongs to; 0 before the first
    int epochs = 0;   ///< epochs planned
    int64_t step = 0; ///< minibatches done since the run started
    int64_t stepInEpoch = 0;
    int64_t stepsPerEpoch = 0;
    int segment = -1;       ///< -1 for the whole (merged) model; 0.. for a segment's replica
    double wallSeconds = 0; ///< since the run started
    std::vector<Metric> metrics;
    std::string message;
    std::string errorKind; ///< for Failed: "config", "data", ...
    std::shared_ptr<const Evaluation> evaluation;
    std::vector<RankFigures> ranks; ///< Finished: every process of the run, by rank

    /// The metric's value, or `fallback` when the event has none of that name.
    double metric(const std::string& name, double fallback = 0) const;
    bool hasMetric(const std::string& name) const;
};

/// Receives what a run reports. Called on the training thread; must not block (queue the events
/// and return). Batches keep the call rate low: the store writes one transaction per batch.
class RunObserver {
public:
    virtual ~RunObserver() = default;
    virtual void onEvents(const std::vector<RunEvent>& batch) = 0;
};

/// Forwards every batch to several observers, in order.
class ObserverList : public RunObserver {
public:
    void add(RunObserver* observer) { m_observers.push_back(observer); }
    void onEvents(const std::vector<RunEvent>& batch) override {
        for (auto* o : m_observers)
            o->onEvents(batch);
    }

private:
    std::vector<RunObserver*> m_observers;
};

/// Keeps every event; for tests and for callers that want the whole history.
class RecordingObserver : public RunObserver {
public:
    void onEvents(const std::vector<RunEvent>& batch) override {
        m_events.insert(m_events.end(), batch.begin(), batch.end());
    }
    const std::vector<RunEvent>& events() const { return m_events; }

private:
    std::vector<RunEvent> m_events;
};

} // namespace mppdl
