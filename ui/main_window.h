#pragma once

#include <QMainWindow>
#include <QTimer>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

class QLabel;
class QMenu;
class QPlainTextEdit;
class QTabWidget;

namespace mppdl::store {
class Project;
struct RunRecord;
}
namespace mppdl {
struct RunEvent;
}
namespace mppdl::data {
struct SourceOptions;
}

namespace mppdl::ui {

class ArchitectureDesigner;
class DatasetDialog;
class LaunchDialog;
class CompareView;
class DatasetView;
class ProjectTree;
class RunView;
class SearchView;
class TrainingJobs;
struct LaunchRequest;

/// The workbench's window: the project tree on the left, views in tabs, a log pane below, the
/// project and what it holds in the status bar. The project file is the document: every change is
/// written to it at once (SQLite), so there is nothing to save and nothing to lose; Save As writes
/// a copy and continues in it. Runs recorded by other processes appear as they go (re-read every
/// few seconds). Runs launched here train on the engine's threads (TrainingJobs) and their tabs
/// are fed their events live; closing the window while they train asks whether to stop them.
class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    explicit MainWindow(QWidget* parent = nullptr);
    ~MainWindow() override;

    /// Opens a project in place of the current one. On failure the current one stays open, the
    /// reason is shown in a dialog and the log, and the result is false.
    bool openProject(const QString& path);
    /// Creates a project and opens it; false (with a dialog) when it cannot be created.
    bool newProject(const QString& path);
    /// Writes a copy of the open project to `path` and continues in the copy.
    bool saveProjectAs(const QString& path);
    /// Re-reads the open project into the tree and the open run tabs.
    void refresh();
    /// Opens the run's tab, or brings it forward.
    RunView* showRun(int64_t runId);
    /// Opens the dataset's tab, or brings it forward.
    DatasetView* showDataset(int64_t datasetId);
    /// The leaderboard of a search (mppdl tune --name NAME), or brings it forward; nullptr, with a
    /// message, when the project has no such search.
    SearchView* showSearch(const QString& name);
    /// A tab comparing the runs (at least two; else a message and nullptr).
    CompareView* compareRuns(const std::vector<int64_t>& runIds);
    /// A designer tab on a project architecture version (by row id), or on a new design (0).
    ArchitectureDesigner* showDesigner(int64_t versionId = 0);
    /// A designer tab on NAME[@VERSION] of the project, else a bundled architecture or a file
    /// (imported); nullptr, with a message, when it is none of them.
    ArchitectureDesigner* openDesign(const QString& reference);
    /// Saves the designer's design as the next version of its name in the project (unless it equals
    /// the latest, which it then is). Returns the version; 0, with a message, when it cannot.
    int saveDesign(ArchitectureDesigner* designer);
    /// Saves the design, then opens the run launcher on its version. Returns the launcher, or
    /// nullptr (with a message) when the design cannot be saved.
    LaunchDialog* trainDesign(ArchitectureDesigner* designer);
    /// Opens the run launcher (Runs > New Run) and starts what it describes; returns it.
    LaunchDialog* showLauncher();
    /// A dialog of the test rows of class `trueClass` that run `runId`'s model of `epoch` predicts as
    /// `predictedClass` (a confusion matrix cell), computed in the background: the run's dataset is
    /// read again and its test split predicted.
    void showMisclassified(int64_t runId, int epoch, int trueClass, int predictedClass);
    /// Writes the run's model (its last epoch's weights) as an ONNX file, in the background, as
    /// `mppdl export --run RUN --format onnx` does; asks where when `path` is empty. The log says
    /// what was written; a dialog names what went wrong (no weights, a path that cannot be
    /// written). False when nothing was started (no such run, the question cancelled).
    bool exportRunOnnx(int64_t runId, const QString& path = {});
    /// Opens File > Add Dataset, and adds what it describes; returns the dialog.
    DatasetDialog* showDatasetDialog();
    /// Reads the source in the background, records it in the project (reference, schema and
    /// statistics, never the rows nor a password) and opens its view; a dialog when it cannot.
    void addDataset(const std::string& location, const data::SourceOptions& options);
    /// The launcher filled with a run's recorded settings; with `startNow` it starts at once instead
    /// (mppdl gui --repeat RUN). False, with a message, for a run that is not there.
    bool repeatRun(int64_t runId, bool startNow = false);
    /// Starts training in the open project on the engine's threads; its run opens in a live tab as
    /// soon as its data is loaded. Returns the job's id, or 0 (with a message) without a writable
    /// project.
    int launch(const LaunchRequest& request);
    /// The runs this window trains.
    TrainingJobs* jobs() const { return m_jobs; }

    store::Project* project() const { return m_project.get(); }
    ProjectTree* projectTree() const { return m_tree; }
    QTabWidget* tabs() const { return m_tabs; }
    QPlainTextEdit* logPane() const { return m_log; }
    /// The message of the last failure shown (for tests and the status bar).
    QString lastError() const { return m_lastError; }
    QStringList recentProjects() const;

Q_SIGNALS:
    /// A dataset was recorded in the project (File > Add Dataset).
    void datasetAdded(qint64 datasetId);

protected:
    void closeEvent(QCloseEvent* event) override;

    /// Whether the tab may close: a designer with unsaved changes asks first.
    bool mayClose(QWidget* page);

private:
    void buildMenus();
    void log(const QString& message);
    void fail(const QString& title, const QString& message);
    void rememberRecent(const QString& path);
    void fillRecentMenu();
    void updateTitle();
    void updateStatus(const std::vector<store::RunRecord>& runs);
    /// Opens a run that trains in this window in a tab fed by its events.
    void openLiveRun(int64_t runId);
    void onJobEvents(int64_t runId, const std::vector<RunEvent>& batch);
    void onJobEnded(int job, int64_t runId, const QString& state, const QString& message);
    /// Wires a run view's Stop button to the job training it.
    void wire(RunView* view);
    void stopRun(qint64 runId);
    /// A run view's Export > Model as ONNX: asks where, then exports.
    void askToExportRun(qint64 runId);
    /// Brings forward the tab of the record `id` (a view V with `idOf`), or opens one titled
    /// `title`; a record that is not there (`record` empty) is a message naming `what`.
    template <class V, class Record>
    V* showRecord(int64_t id, const std::optional<Record>& record, int64_t (V::*idOf)() const, const QString& what,
                  const QString& title);

    std::unique_ptr<store::Project> m_project;
    ProjectTree* m_tree = nullptr;
    QTabWidget* m_tabs = nullptr;
    QPlainTextEdit* m_log = nullptr;
    QLabel* m_status = nullptr;
    QMenu* m_recentMenu = nullptr;
    TrainingJobs* m_jobs = nullptr;
    QTimer m_refreshTimer;
    QString m_lastError;
};

} // namespace mppdl::ui
