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
}

namespace mppdl::ui {

class CompareView;
class DatasetView;
class ProjectTree;
class RunView;

/// The workbench's window: the project tree on the left, views in tabs, a log pane below, the
/// project and what it holds in the status bar. The project file is the document: every change is
/// written to it at once (SQLite), so there is nothing to save and nothing to lose; Save As writes
/// a copy and continues in it. Runs recorded by other processes appear as they go (re-read every
/// few seconds).
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
    /// A tab comparing the runs (at least two; else a message and nullptr).
    CompareView* compareRuns(const std::vector<int64_t>& runIds);

    store::Project* project() const { return m_project.get(); }
    ProjectTree* projectTree() const { return m_tree; }
    QTabWidget* tabs() const { return m_tabs; }
    QPlainTextEdit* logPane() const { return m_log; }
    /// The message of the last failure shown (for tests and the status bar).
    QString lastError() const { return m_lastError; }
    QStringList recentProjects() const;

protected:
    void closeEvent(QCloseEvent* event) override;

private:
    void buildMenus();
    void log(const QString& message);
    void fail(const QString& title, const QString& message);
    void rememberRecent(const QString& path);
    void fillRecentMenu();
    void updateTitle();
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
    QTimer m_refreshTimer;
    QString m_lastError;
};

} // namespace mppdl::ui
