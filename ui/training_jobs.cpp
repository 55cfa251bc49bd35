#include "ui/training_jobs.h"

#include "mppdl/core/error.h"
#include "mppdl/session/architectures.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/store/project.h"

#include <atomic>

namespace mppdl::ui {

struct TrainingJobs::Job {
    int id = 0;
    std::string projectPath;
    LaunchRequest request;
    std::atomic<bool> cancel{false};
    std::atomic<qint64> runId{0};
};

namespace {

/// The engine's observer for one job: every batch leaves the training thread as a signal, which Qt
/// queues to the GUI thread; the trainer never waits for the window.
class RunBridge : public RunObserver {
public:
    RunBridge(TrainingJobs& jobs, int job, const std::atomic<qint64>& runId)
        : m_jobs(jobs), m_job(job), m_runId(runId) {}
    void onEvents(const std::vector<RunEvent>& batch) override { Q_EMIT m_jobs.events(m_job, m_runId, batch); }

private:
    TrainingJobs& m_jobs;
    int m_job;
    const std::atomic<qint64>& m_runId;
};

} // namespace

TrainingJobs::TrainingJobs(int concurrent, QObject* parent) : QObject(parent) {
    qRegisterMetaType<std::vector<RunEvent>>();
    m_pool.setMaxThreadCount(std::max(1, concurrent));
    // Connected first, so that other receivers of `ended` already see the job gone.
    connect(this, &TrainingJobs::ended, this, [this](int job) { forget(job); });
}

TrainingJobs::~TrainingJobs() {
    stopAll();
    m_pool.waitForDone();
}

int TrainingJobs::start(const QString& projectPath, const LaunchRequest& request) {
    auto job = std::make_shared<Job>();
    job->id = m_next++;
    job->projectPath = projectPath.toStdString();
    job->request = request;
    m_jobs.insert(job->id, job);
    m_pool.start([this, job] { run(job); });
    return job->id;
}

void TrainingJobs::run(const std::shared_ptr<Job>& job) {
    QString state = "failed", message;
    try {
        if (job->cancel)
            throw CancelledError("stopped before it started");
        auto project = store::Project::open(job->projectPath, store::Access::Write);
        const auto& request = job->request;
        const auto architecture = session::projectArchitecture(project, request.architecture, true);
        RunBridge bridge(*this, job->id, job->runId);
        const auto loaded = train::loadData(request.config, architecture.architecture, bridge);
        if (job->cancel)
            throw CancelledError("stopped while the data loaded");
        session::RunStart start;
        start.name = request.name;
        job->runId = session::createRun(project, request.config, architecture.version, loaded, start);
        Q_EMIT runCreated(job->id, job->runId);
        train::TrainControl control;
        control.cancel = &job->cancel;
        session::trainRecorded(project, job->runId, request.config, architecture.architecture, loaded.prepared, bridge,
                               control);
        state = "finished";
    } catch (const Error& e) {
        state = e.kind() == ErrorKind::Cancelled ? "cancelled" : "failed";
        message = QString::fromUtf8(e.what());
    } catch (const std::exception& e) { // libtorch's c10::Error and the like: the run still ends cleanly
        message = QString::fromUtf8(e.what());
    }
    Q_EMIT ended(job->id, job->runId, state, message);
}

void TrainingJobs::forget(int job) { m_jobs.remove(job); }

bool TrainingJobs::stopRun(qint64 runId) {
    for (const auto& job : m_jobs)
        if (job->runId == runId) {
            job->cancel = true;
            return true;
        }
    return false;
}

void TrainingJobs::stopAll() {
    for (const auto& job : m_jobs)
        job->cancel = true;
}

bool TrainingJobs::waitForAll(int ms) { return m_pool.waitForDone(ms); }

bool TrainingJobs::trains(qint64 runId) const {
    for (const auto& job : m_jobs)
        if (job->runId == runId)
            return true;
    return false;
}

} // namespace mppdl::ui
