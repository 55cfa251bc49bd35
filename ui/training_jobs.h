#pragma once

// Training launched from the workbench: each run is a job on the window's pool of engine threads,
// with a project connection of its own; what it reports arrives on the GUI thread as queued signals.

#include "mppdl/core/events.h"
#include "mppdl/train/trainer.h"

#include <QHash>
#include <QObject>
#include <QThreadPool>

#include <memory>
#include <string>
#include <vector>

Q_DECLARE_METATYPE(std::vector<mppdl::RunEvent>)

namespace mppdl::ui {

/// What the run launcher hands over: everything a run needs besides the project.
struct LaunchRequest {
    train::TrainConfig config;
    /// A session::projectArchitecture() reference: NAME@VERSION, a project name, a file or a bundled name.
    std::string architecture;
    std::string name; ///< empty: "<architecture>-<id>"
};

/// The runs this window trains. Each job opens its own connection to the project (SQLite allows one
/// writer beside the window's reader), loads the data, creates the run and trains it with the
/// project's recorder, as `mppdl train --project` does. The engine never waits on the GUI: its
/// events are re-emitted as signals and queued to the GUI thread (the one seam, STYLE.md).
class TrainingJobs : public QObject {
    Q_OBJECT
public:
    /// At most `concurrent` runs train at once; later ones wait in the pool's queue.
    explicit TrainingJobs(int concurrent = 2, QObject* parent = nullptr);
    /// Stops every job after its current minibatch and waits for them.
    ~TrainingJobs() override;

    /// Queues a job training in the project file `projectPath`; returns the job's id (1, 2, ...).
    int start(const QString& projectPath, const LaunchRequest& request);
    /// Asks the job training run `runId` to stop after its current minibatch; false when no job of
    /// this window trains it.
    bool stopRun(qint64 runId);
    /// Asks every job to stop.
    void stopAll();
    /// Waits up to `ms` for every job to end; true when none is left.
    bool waitForAll(int ms);
    /// Jobs queued, loading or training.
    int active() const { return int(m_jobs.size()); }
    /// Whether a job of this window trains the run.
    bool trains(qint64 runId) const;

Q_SIGNALS:
    /// The job's data is loaded and its run recorded (queued): from here on its events name the run.
    void runCreated(int job, qint64 runId);
    /// A batch of the job's events; runId is 0 while the data is still loading.
    void events(int job, qint64 runId, const std::vector<mppdl::RunEvent>& batch);
    /// The job ended: state is "finished", "cancelled" or "failed" (then `message` says why, naming
    /// the file, table or layer). runId is 0 when it failed before its run was recorded.
    void ended(int job, qint64 runId, const QString& state, const QString& message);

private:
    struct Job;
    void run(const std::shared_ptr<Job>& job); ///< on a pool thread
    void forget(int job);

    QThreadPool m_pool;
    QHash<int, std::shared_ptr<Job>> m_jobs; ///< GUI thread only
    int m_next = 1;
};

} // namespace mppdl::ui
