#include "ui/main_window.h"

#include "ui/architecture_designer.h"
#include "ui/compare_view.h"
#include "ui/dataset_dialog.h"
#include "ui/dataset_preview.h"
#include "ui/dataset_view.h"
#include "ui/launch_dialog.h"
#include "ui/project_tree.h"
#include "ui/run_view.h"
#include "ui/search_view.h"
#include "ui/training_jobs.h"

#include "mppdl/core/error.h"
#include "mppdl/data/preview.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/session/run_model.h"
#ifdef MPPDL_WITH_ONNX
#include "mppdl/interop/onnx.h"
#endif
#include "mppdl/store/project.h"
#include "mppdl/tune/search_session.h"

#include <QAction>
#include <QCloseEvent>
#include <QDateTime>
#include <QDialog>
#include <QDialogButtonBox>
#include <QVBoxLayout>
#include <QDockWidget>
#include <QFileDialog>
#include <QFileInfo>
#include <QLabel>
#include <QMenuBar>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QSettings>
#include <QSplitter>
#include <QStatusBar>
#include <QTabWidget>
#include <QToolBar>

#include <algorithm>

namespace mppdl::ui {

namespace {

constexpr int kMaxRecent = 8;
constexpr int kRefreshMs = 2000;
const char* kProjectFilter = "mppdl projects (*.mppdl);;All files (*)";

/// The log pane: a few lines high at first (the dock starts at its widget's size hint), so that
/// the views get the room.
class LogPane : public QPlainTextEdit {
public:
    using QPlainTextEdit::QPlainTextEdit;
    QSize sizeHint() const override { return {600, 6 * fontMetrics().lineSpacing()}; }
};

} // namespace

MainWindow::MainWindow(QWidget* parent) : QMainWindow(parent) {
    setObjectName("mainWindow");
    m_tree = new ProjectTree(this);
    m_tabs = new QTabWidget(this);
    m_tabs->setTabsClosable(true);
    m_tabs->setDocumentMode(true);
    connect(m_tabs, &QTabWidget::tabCloseRequested, this, [this](int index) {
        QWidget* page = m_tabs->widget(index);
        if (!mayClose(page))
            return;
        m_tabs->removeTab(index);
        page->deleteLater();
    });
    auto* splitter = new QSplitter(this);
    splitter->addWidget(m_tree);
    splitter->addWidget(m_tabs);
    splitter->setStretchFactor(1, 1);
    splitter->setSizes({320, 900});
    setCentralWidget(splitter);

    m_log = new LogPane(this);
    m_log->setReadOnly(true);
    m_log->setMaximumBlockCount(5000);
    auto* logDock = new QDockWidget(tr("Log"), this);
    logDock->setObjectName("logDock");
    logDock->setWidget(m_log);
    addDockWidget(Qt::BottomDockWidgetArea, logDock);

    m_status = new QLabel(tr("No project open"), this);
    statusBar()->addWidget(m_status, 1);

    m_jobs = new TrainingJobs(2, this);
    connect(m_jobs, &TrainingJobs::runCreated, this, [this](int, qint64 runId) { openLiveRun(runId); });
    connect(m_jobs, &TrainingJobs::events, this,
            [this](int, qint64 runId, const std::vector<RunEvent>& batch) { onJobEvents(runId, batch); });
    connect(m_jobs, &TrainingJobs::ended, this, &MainWindow::onJobEnded);

    connect(m_tree, &ProjectTree::runActivated, this, [this](qint64 id) { showRun(id); });
    connect(m_tree, &ProjectTree::datasetActivated, this, [this](qint64 id) { showDataset(id); });
    connect(m_tree, &ProjectTree::architectureVersionActivated, this, [this](qint64 id) { showDesigner(id); });
    connect(m_tree, &ProjectTree::searchActivated, this, [this](const QString& name) { showSearch(name); });
    buildMenus();
    updateTitle();
    resize(1280, 800);
    QSettings settings;
    restoreGeometry(settings.value("window/geometry").toByteArray());
    restoreState(settings.value("window/state").toByteArray());

    m_refreshTimer.setInterval(kRefreshMs);
    connect(&m_refreshTimer, &QTimer::timeout, this, &MainWindow::refresh);
}

MainWindow::~MainWindow() = default;

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(tr("&New Project..."), QKeySequence::New, this, [this] {
        const auto path = QFileDialog::getSaveFileName(this, tr("New project"), "project.mppdl", tr(kProjectFilter));
        if (!path.isEmpty())
            newProject(path);
    });
    file->addAction(tr("&Open Project..."), QKeySequence::Open, this, [this] {
        const auto path = QFileDialog::getOpenFileName(this, tr("Open a project"), QString(), tr(kProjectFilter));
        if (!path.isEmpty())
            openProject(path);
    });
    m_recentMenu = file->addMenu(tr("Open &Recent"));
    file->addSeparator();
    QAction* addData = file->addAction(tr("Add &Dataset..."), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_A), this,
                                       &MainWindow::showDatasetDialog);
    fillRecentMenu();
    file->addAction(tr("Save Project &As..."), QKeySequence::SaveAs, this, [this] {
        if (!m_project)
            return fail(tr("Save As"), tr("No project is open."));
        const auto path = QFileDialog::getSaveFileName(this, tr("Save the project as"), QString(), tr(kProjectFilter));
        if (!path.isEmpty())
            saveProjectAs(path);
    });
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);
    QMenu* designs = menuBar()->addMenu(tr("&Architectures"));
    QAction* newDesign = designs->addAction(tr("&New Architecture"), QKeySequence(Qt::CTRL | Qt::Key_D), this,
                                            [this] { showDesigner(0); });
    QMenu* runs = menuBar()->addMenu(tr("&Runs"));
    QAction* newRun = runs->addAction(tr("&New Run..."), QKeySequence(Qt::CTRL | Qt::Key_R), this,
                                      &MainWindow::showLauncher);
    runs->addAction(tr("&Repeat Selected Run..."), this, [this] {
        const auto selected = m_tree->selectedRunIds();
        if (selected.size() != 1)
            return fail(tr("Repeat a run"), tr("Select one run in the tree, then repeat it."));
        repeatRun(selected.front());
    });
#ifdef MPPDL_WITH_ONNX
    runs->addAction(tr("&Export Selected Run as ONNX..."), QKeySequence(Qt::CTRL | Qt::Key_E), this, [this] {
        const auto selected = m_tree->selectedRunIds();
        if (selected.size() != 1)
            return fail(tr("Export a model"), tr("Select one run in the tree, then export its model."));
        exportRunOnnx(selected.front());
    });
#endif
    runs->addAction(tr("&Stop All Runs"), this, [this] { m_jobs->stopAll(); });
    runs->addSeparator();
    auto* toolbar = addToolBar(tr("Runs"));
    toolbar->setObjectName("runsToolbar");
    toolbar->addAction(addData);
    toolbar->addAction(newDesign);
    toolbar->addAction(newRun);
    runs->addAction(tr("&Compare Selected Runs"), QKeySequence(Qt::CTRL | Qt::Key_K), this,
                    [this] { compareRuns(m_tree->selectedRunIds()); });
    QMenu* view = menuBar()->addMenu(tr("&View"));
    view->addAction(tr("&Refresh"), QKeySequence::Refresh, this, &MainWindow::refresh);
    // Every dock and tool bar can be brought back once closed: each has its entry here.
    view->addSeparator();
    for (auto* dock : findChildren<QDockWidget*>(QString(), Qt::FindDirectChildrenOnly))
        view->addAction(dock->toggleViewAction());
    for (auto* bar : findChildren<QToolBar*>(QString(), Qt::FindDirectChildrenOnly))
        view->addAction(bar->toggleViewAction());
}

void MainWindow::log(const QString& message) {
    m_log->appendPlainText(QDateTime::currentDateTime().toString("HH:mm:ss  ") + message);
}

void MainWindow::fail(const QString& title, const QString& message) {
    m_lastError = message;
    log(title + ": " + message);
    // Window-modal and not blocking: the window keeps repainting and the work stays as it was.
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

bool MainWindow::openProject(const QString& path) {
    std::unique_ptr<store::Project> opened;
    try {
        opened = std::make_unique<store::Project>(store::Project::open(path.toStdString(), store::Access::Write));
    } catch (const StorageError& e) {
        // A read-only file still opens for reading: its runs can be looked at.
        try {
            opened = std::make_unique<store::Project>(store::Project::open(path.toStdString(), store::Access::Read));
            log(tr("%1 opened read-only (%2)").arg(path, QString::fromUtf8(e.what())));
        } catch (const Error& again) {
            fail(tr("Cannot open the project"), QString::fromUtf8(again.what()));
            return false;
        }
    } catch (const Error& e) {
        fail(tr("Cannot open the project"), QString::fromUtf8(e.what()));
        return false;
    }
    // The old project's views go with it, once unsaved designs are let go.
    for (int i = 0; i < m_tabs->count(); ++i)
        if (!mayClose(m_tabs->widget(i)))
            return false;
    while (m_tabs->count() > 0) {
        QWidget* page = m_tabs->widget(0);
        m_tabs->removeTab(0);
        delete page;
    }
    m_project = std::move(opened);
    rememberRecent(QFileInfo(path).absoluteFilePath());
    refresh();
    m_refreshTimer.start();
    const auto* runs = m_tree->group(tr("Runs")); // absent when the refresh failed (and said why)
    log(tr("opened %1: %n run(s)", "", runs ? runs->childCount() : 0).arg(path));
    updateTitle();
    return true;
}

bool MainWindow::newProject(const QString& path) {
    try {
        store::Project::create(path.toStdString());
    } catch (const Error& e) {
        fail(tr("Cannot create the project"), QString::fromUtf8(e.what()));
        return false;
    }
    log(tr("created %1").arg(path));
    return openProject(path);
}

bool MainWindow::saveProjectAs(const QString& path) {
    if (!m_project) {
        fail(tr("Save As"), tr("No project is open."));
        return false;
    }
    try {
        m_project->saveCopy(path.toStdString());
    } catch (const Error& e) {
        fail(tr("Cannot save the project"), QString::fromUtf8(e.what()));
        return false;
    }
    log(tr("saved a copy as %1").arg(path));
    return openProject(path);
}

void MainWindow::refresh() {
    if (!m_project) {
        m_tree->clearProject();
        return;
    }
    try {
        m_project->reconcileInterrupted();
    } catch (const Error&) {
        // A read-only project cannot record it; the runs still read as interrupted.
    }
    try {
        const auto runs = m_project->runs();
        m_tree->load(*m_project, runs);
        auto running = [&](int64_t id) {
            return std::any_of(runs.begin(), runs.end(), [&](const store::RunRecord& r) {
                return r.id == id && r.state == store::RunState::Running;
            });
        };
        for (int i = 0; i < m_tabs->count(); ++i) {
            if (auto* view = qobject_cast<RunView*>(m_tabs->widget(i)))
                view->reload(*m_project); // re-reads only a run that moved on
            if (auto* compare = qobject_cast<CompareView*>(m_tabs->widget(i)))
                if (std::any_of(compare->runIds().begin(), compare->runIds().end(), running))
                    compare->reload(*m_project);
            if (auto* search = qobject_cast<SearchView*>(m_tabs->widget(i))) {
                // Re-read while its runs train, and once more after the last has ended.
                const bool live = std::any_of(search->runIds().begin(), search->runIds().end(), running);
                if (live || search->property("live").toBool())
                    search->reload(*m_project);
                search->setProperty("live", live);
            }
        }
        updateStatus(runs);
    } catch (const Error& e) {
        m_refreshTimer.stop();
        fail(tr("Cannot read the project"), QString::fromUtf8(e.what()));
    }
}

namespace {

/// The tab of a view of type V showing `id`, brought forward; nullptr when none is open.
template <class V>
V* raiseTab(QTabWidget* tabs, int64_t id, int64_t (V::*idOf)() const) {
    for (int i = 0; i < tabs->count(); ++i)
        if (auto* view = qobject_cast<V*>(tabs->widget(i)); view && (view->*idOf)() == id) {
            tabs->setCurrentIndex(i);
            return view;
        }
    return nullptr;
}

} // namespace

template <class V, class Record>
V* MainWindow::showRecord(int64_t id, const std::optional<Record>& record, int64_t (V::*idOf)() const,
                          const QString& what, const QString& title) {
    if (!m_project)
        return nullptr;
    if (auto* open = raiseTab<V>(m_tabs, id, idOf))
        return open;
    if (!record) {
        fail(tr("No such %1").arg(what),
             tr("%1 %2 is not in %3.").arg(what).arg(id).arg(QString::fromStdString(m_project->path())));
        return nullptr;
    }
    auto* view = new V(*m_project, id, m_tabs);
    m_tabs->setCurrentIndex(m_tabs->addTab(view, title));
    return view;
}

RunView* MainWindow::showRun(int64_t runId) {
    const auto run = m_project ? m_project->run(runId) : std::nullopt;
    auto* view = showRecord<RunView>(runId, run, &RunView::runId, tr("run"),
                                     run ? tr("Run %1: %2").arg(runId).arg(QString::fromStdString(run->name))
                                         : QString());
    if (view)
        wire(view);
    return view;
}

DatasetView* MainWindow::showDataset(int64_t datasetId) {
    const auto dataset = m_project ? m_project->dataset(datasetId) : std::nullopt;
    return showRecord<DatasetView>(datasetId, dataset, &DatasetView::datasetId, tr("dataset"),
                                   dataset ? tr("Dataset: %1").arg(QString::fromStdString(dataset->name)) : QString());
}

SearchView* MainWindow::showSearch(const QString& name) {
    if (!m_project)
        return nullptr;
    for (int i = 0; i < m_tabs->count(); ++i)
        if (auto* view = qobject_cast<SearchView*>(m_tabs->widget(i)); view && view->searchName() == name) {
            m_tabs->setCurrentIndex(i);
            return view;
        }
    const auto names = tune::searchNames(*m_project);
    if (std::find(names.begin(), names.end(), name.toStdString()) == names.end()) {
        fail(tr("No such search"),
             tr("%1 has no search named '%2'.").arg(QString::fromStdString(m_project->path()), name));
        return nullptr;
    }
    auto* view = new SearchView(*m_project, name, m_tabs);
    connect(view, &SearchView::runActivated, this, [this](qint64 id) { showRun(id); });
    connect(view, &SearchView::compareRequested, this,
            [this](const QList<qint64>& ids) { compareRuns(std::vector<int64_t>(ids.begin(), ids.end())); });
    m_tabs->setCurrentIndex(m_tabs->addTab(view, tr("Search: %1").arg(name)));
    if (auto* item = m_tree->searchItem(name)) { // where it is in the project
        if (item->parent())
            item->parent()->setExpanded(true);
        m_tree->setCurrentItem(item);
    }
    return view;
}

CompareView* MainWindow::compareRuns(const std::vector<int64_t>& runIds) {
    if (!m_project)
        return nullptr;
    if (runIds.size() < 2) {
        fail(tr("Compare runs"), tr("Select at least two runs in the tree (Ctrl+click), then compare them."));
        return nullptr;
    }
    auto* view = new CompareView(*m_project, runIds, m_tabs);
    QStringList ids;
    for (const auto id : runIds)
        ids << QString::number(id);
    m_tabs->setCurrentIndex(m_tabs->addTab(view, tr("Compare %1").arg(ids.join(", "))));
    log(tr("comparing runs %1").arg(ids.join(", ")));
    return view;
}

void MainWindow::updateStatus(const std::vector<store::RunRecord>& runs) {
    const auto active = std::count_if(runs.begin(), runs.end(),
                                      [](const store::RunRecord& r) { return r.state == store::RunState::Running; });
    QString text = tr("%1  |  %n run(s)", "", int(runs.size())).arg(QString::fromStdString(m_project->path()));
    if (active > 0)
        text += tr(", %1 running").arg(active);
    if (m_jobs->active() > 0)
        text += tr("  |  %n training in this window", "", m_jobs->active());
    if (!m_project->writable())
        text += tr("  |  read-only");
    m_status->setText(text);
}

ArchitectureDesigner* MainWindow::showDesigner(int64_t versionId) {
    std::optional<store::ArchitectureVersion> version;
    if (versionId > 0) {
        version = m_project ? m_project->architectureById(versionId) : std::nullopt;
        if (!version) {
            fail(tr("No such architecture"), tr("Architecture version %1 is not in this project.").arg(versionId));
            return nullptr;
        }
    }
    auto* designer = new ArchitectureDesigner(m_tabs);
    QString title = tr("Design: new");
    if (version) {
        try {
            designer->setArchitecture(
                model::parseArchitecture(version->spec, version->name + "@" + std::to_string(version->version)));
        } catch (const Error& e) {
            delete designer;
            fail(tr("Cannot open the architecture"), QString::fromUtf8(e.what()));
            return nullptr;
        }
        title = tr("Design: %1@%2").arg(QString::fromStdString(version->name)).arg(version->version);
    }
    connect(designer, &ArchitectureDesigner::saveRequested, this, [this, designer] { saveDesign(designer); });
    connect(designer, &ArchitectureDesigner::trainRequested, this, [this, designer] { trainDesign(designer); });
    connect(designer, &ArchitectureDesigner::failed, this, &MainWindow::fail);
    m_tabs->setCurrentIndex(m_tabs->addTab(designer, title));
    return designer;
}

ArchitectureDesigner* MainWindow::openDesign(const QString& reference) {
    if (m_project) {
        const QString name = reference.section('@', 0, 0);
        bool numbered = false;
        const int version = reference.contains('@') ? reference.section('@', 1).toInt(&numbered) : 0;
        if (const auto found = m_project->architecture(name.toStdString(), numbered ? version : 0))
            return showDesigner(found->id);
    }
    auto* designer = showDesigner(0);
    QString error;
    const bool loaded = QFileInfo(reference).isFile() ? designer->importFile(reference, &error)
                                                      : designer->loadTemplate(reference, &error);
    if (!loaded) {
        m_tabs->removeTab(m_tabs->indexOf(designer));
        delete designer;
        fail(tr("Cannot open the architecture"), error);
        return nullptr;
    }
    m_tabs->setTabText(m_tabs->indexOf(designer),
                       tr("Design: %1").arg(QString::fromStdString(designer->architecture().name)));
    return designer;
}

int MainWindow::saveDesign(ArchitectureDesigner* designer) {
    if (!m_project || !m_project->writable()) {
        fail(tr("Save the architecture"), tr("Open a writable project first: architecture versions are kept in it."));
        return 0;
    }
    QString error;
    const int version = designer->saveVersion(*m_project, tr("designed in the workbench"), &error);
    if (version == 0) {
        fail(tr("Cannot save the architecture"), error);
        return 0;
    }
    const QString name = QString::fromStdString(designer->architecture().name);
    log(tr("saved %1 as version %2").arg(name).arg(version));
    m_tabs->setTabText(m_tabs->indexOf(designer), tr("Design: %1@%2").arg(name).arg(version));
    refresh();
    return version;
}

bool MainWindow::mayClose(QWidget* page) {
    auto* designer = qobject_cast<ArchitectureDesigner*>(page);
    if (!designer || !designer->isModified())
        return true;
    m_tabs->setCurrentWidget(designer);
    const auto answer = QMessageBox::question(
        this, tr("Unsaved design"),
        tr("The design %1 has changes that are not saved as a version. Close it and lose them?")
            .arg(QString::fromStdString(designer->architecture().name)),
        QMessageBox::Discard | QMessageBox::Cancel, QMessageBox::Cancel);
    return answer == QMessageBox::Discard;
}

void MainWindow::showMisclassified(int64_t runId, int epoch, int trueClass, int predictedClass) {
    if (!m_project)
        return;
    const std::string path = m_project->path();
    log(tr("run %1: predicting its test split again for the confusion matrix's cell...").arg(runId));
    inBackground<session::ConfusionCellRows>(
        this,
        [=] {
            // A connection of this thread's own; the model and the rows stay on this thread.
            const auto project = store::Project::open(path, store::Access::Read);
            return session::confusionCellRows(project, runId, epoch, trueClass, predictedClass);
        },
        [=](const session::ConfusionCellRows& found) {
            auto name = [&](int c) {
                return c < int(found.classNames.size()) ? QString::fromStdString(found.classNames[size_t(c)])
                                                        : QString::number(c);
            };
            QStringList captions;
            for (size_t i = 0; i < found.rows.size(); ++i)
                captions << QString("#%1  %2%").arg(found.rows[i].row).arg(100.0 * found.probability[i], 0, 'f', 0);
            auto* dialog = new QDialog(this);
            dialog->setObjectName("misclassified");
            dialog->setAttribute(Qt::WA_DeleteOnClose);
            dialog->setWindowTitle(
                tr("Run %1: %2 predicted as %3").arg(runId).arg(name(trueClass), name(predictedClass)));
            auto* text = new QLabel(tr("%1 of the %2 test rows of class %3 are predicted as %4 by epoch %5's model%6. "
                                       "Under each: the row and the probability given to %4.")
                                        .arg(found.matching)
                                        .arg(found.total)
                                        .arg(name(trueClass), name(predictedClass))
                                        .arg(epoch)
                                        .arg(found.matching > int64_t(found.rows.size())
                                                 ? tr(" (the first %1 shown)").arg(found.rows.size())
                                                 : QString()),
                                    dialog);
            text->setObjectName("misclassifiedSummary");
            text->setWordWrap(true);
            auto* samples = new SamplesView(dialog);
            samples->setRows(found.rows, found.classNames, found.sampleShape, captions);
            auto* buttons = new QDialogButtonBox(QDialogButtonBox::Close, dialog);
            connect(buttons, &QDialogButtonBox::rejected, dialog, &QDialog::reject);
            auto* layout = new QVBoxLayout(dialog);
            layout->addWidget(text);
            layout->addWidget(samples, 1);
            layout->addWidget(buttons);
            dialog->resize(720, 520);
            dialog->open();
        },
        [=](const QString& message) { fail(tr("Cannot show the samples"), message); });
}

DatasetDialog* MainWindow::showDatasetDialog() {
    if (!m_project) {
        fail(tr("Add a dataset"), tr("Open or create a project first (File > New Project): datasets are kept in it."));
        return nullptr;
    }
    auto* dialog = new DatasetDialog(this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] { addDataset(dialog->location(), dialog->options()); });
    dialog->open();
    return dialog;
}

void MainWindow::addDataset(const std::string& location, const data::SourceOptions& options) {
    if (!m_project || !m_project->writable())
        return fail(tr("Add a dataset"), tr("Open a writable project first."));
    train::TrainConfig config;
    config.data.location = location;
    config.data.source = options;
    log(tr("reading %1 to add it to the project...").arg(QString::fromStdString(location)));
    inBackground<std::shared_ptr<const data::LoadedSource>>(
        this,
        [location, options] { return std::make_shared<const data::LoadedSource>(data::loadSource(location, options)); },
        [this, config](std::shared_ptr<const data::LoadedSource> source) {
            if (!m_project)
                return;
            try {
                const int64_t id = session::registerDataset(*m_project, config, *source);
                log(tr("dataset %1 recorded: %2 training rows").arg(id).arg(source->train.size()));
                refresh();
                showDataset(id);
                Q_EMIT datasetAdded(id);
            } catch (const Error& e) {
                fail(tr("Cannot add the dataset"), QString::fromUtf8(e.what()));
            }
        },
        [this](const QString& message) { fail(tr("Cannot add the dataset"), message); });
}

LaunchDialog* MainWindow::showLauncher() {
    if (!m_project) {
        fail(tr("New run"), tr("Open or create a project first (File > New Project): runs are recorded in it."));
        return nullptr;
    }
    auto* dialog = new LaunchDialog(*m_project, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    connect(dialog, &QDialog::accepted, this, [this, dialog] { launch(dialog->request()); });
    dialog->open();
    return dialog;
}

LaunchDialog* MainWindow::trainDesign(ArchitectureDesigner* designer) {
    const int version = saveDesign(designer);
    if (version == 0)
        return nullptr;
    auto* launcher = showLauncher();
    if (launcher)
        launcher->setArchitecture(QString::fromStdString(designer->architecture().name) + "@" +
                                  QString::number(version));
    return launcher;
}

bool MainWindow::exportRunOnnx(int64_t runId, const QString& chosenPath) {
    const auto run = m_project ? m_project->run(runId) : std::nullopt;
    if (!run) {
        fail(tr("Export a model"), tr("Run %1 is not in this project.").arg(runId));
        return false;
    }
#ifdef MPPDL_WITH_ONNX
    QString path = chosenPath;
    if (path.isEmpty())
        path = QFileDialog::getSaveFileName(this, tr("Export run %1 as ONNX").arg(runId),
                                            QString::fromStdString(run->name) + ".onnx", tr("ONNX models (*.onnx)"));
    if (path.isEmpty())
        return false;
    struct Written {
        interop::OnnxSummary summary;
        std::string label;
    };
    const std::string project = m_project->path();
    log(tr("run %1: exporting its model to %2...").arg(runId).arg(path));
    inBackground<Written>(
        this,
        [=] {
            // A connection of this thread's own, as mppdl export reads the run.
            const auto store = store::Project::open(project, store::Access::Read);
            const auto weights = session::runWeights(store, std::to_string(runId));
            const auto model = session::runModel(store, weights, "cpu");
            interop::OnnxOptions options;
            options.metadata = {{"mppdl.run", weights.label},
                                {"mppdl.run_id", std::to_string(runId)},
                                {"mppdl.epoch", std::to_string(weights.checkpoint.epoch)}};
            return Written{interop::exportOnnx(model, path.toStdString(), options), weights.label};
        },
        [=](const Written& w) {
            log(tr("wrote %1: %2, ONNX opset %3, %4 nodes, %5 bytes; input \"%6\" (raw values), output \"%7\"")
                    .arg(path, QString::fromStdString(w.label))
                    .arg(w.summary.opset)
                    .arg(w.summary.nodes)
                    .arg(w.summary.fileBytes)
                    .arg(interop::kOnnxInput, interop::kOnnxOutput));
            statusBar()->showMessage(tr("Exported %1").arg(path), 10000);
        },
        [=](const QString& error) { fail(tr("Export a model"), error); });
    return true;
#else
    (void)chosenPath;
    fail(tr("Export a model"), tr("This mppdl was built without ONNX (libonnx-dev was missing at build time)."));
    return false;
#endif
}

bool MainWindow::repeatRun(int64_t runId, bool startNow) {
    const auto run = m_project ? m_project->run(runId) : std::nullopt;
    if (!run) {
        fail(tr("Repeat a run"), tr("Run %1 is not in this project.").arg(runId));
        return false;
    }
    LaunchRequest request;
    try {
        request.config = train::trainConfigFromJson(run->config);
    } catch (const Error& e) {
        fail(tr("Repeat a run"),
             tr("Run %1's settings cannot be read: %2").arg(runId).arg(QString::fromUtf8(e.what())));
        return false;
    }
    request.architecture = run->architectureName + "@" + std::to_string(run->architectureVersion);
    if (startNow)
        return launch(request) > 0;
    auto* dialog = new LaunchDialog(*m_project, this);
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setRequest(request);
    dialog->setWindowTitle(tr("Repeat run %1").arg(runId));
    connect(dialog, &QDialog::accepted, this, [this, dialog] { launch(dialog->request()); });
    dialog->open();
    return true;
}

int MainWindow::launch(const LaunchRequest& request) {
    if (!m_project || !m_project->writable()) {
        fail(tr("New run"),
             m_project
                 ? tr("%1 is read-only: runs cannot be recorded in it.").arg(QString::fromStdString(m_project->path()))
                 : tr("Open or create a project first."));
        return 0;
    }
    const int job = m_jobs->start(QString::fromStdString(m_project->path()), request);
    log(tr("run queued: %1 on %2, %3 x %4 segment(s), %5 epochs")
            .arg(QString::fromStdString(request.architecture), QString::fromStdString(request.config.data.location),
                 QString::fromStdString(request.config.strategy))
            .arg(request.config.segments)
            .arg(request.config.epochs));
    refresh();
    return job;
}

void MainWindow::wire(RunView* view) {
    view->setStoppable(m_jobs->trains(view->runId()));
    connect(view, &RunView::stopRequested, this, &MainWindow::stopRun, Qt::UniqueConnection);
    connect(view, &RunView::samplesRequested, this, &MainWindow::showMisclassified, Qt::UniqueConnection);
    // A member function: Qt makes unique connections only to those (a lambda was refused, with a
    // warning, and the view's Export menu did nothing).
    connect(view, &RunView::modelExportRequested, this, &MainWindow::askToExportRun, Qt::UniqueConnection);
}

void MainWindow::askToExportRun(qint64 runId) { exportRunOnnx(runId); }

void MainWindow::stopRun(qint64 runId) {
    if (m_jobs->stopRun(runId))
        log(tr("run %1: stopping after this minibatch").arg(runId));
}

void MainWindow::openLiveRun(int64_t runId) {
    if (!m_project)
        return;
    refresh();
    for (int i = 0; i < m_tabs->count(); ++i)
        if (auto* open = qobject_cast<RunView*>(m_tabs->widget(i)); open && open->runId() == runId)
            return;
    const auto run = m_project->run(runId);
    auto* view = new RunView(*m_project, runId, m_tabs, true);
    wire(view);
    m_tabs->setCurrentIndex(
        m_tabs->addTab(view, tr("Run %1: %2").arg(runId).arg(run ? QString::fromStdString(run->name) : QString())));
    log(tr("run %1 started").arg(runId));
}

void MainWindow::onJobEvents(int64_t runId, const std::vector<RunEvent>& batch) {
    for (const auto& event : batch)
        if (event.kind == EventKind::Message || event.kind == EventKind::Started)
            log((runId > 0 ? tr("run %1: ").arg(runId) : QString()) + QString::fromStdString(event.message));
    if (runId <= 0)
        return;
    for (int i = 0; i < m_tabs->count(); ++i)
        if (auto* view = qobject_cast<RunView*>(m_tabs->widget(i)); view && view->runId() == runId && view->live())
            view->appendEvents(batch);
}

void MainWindow::onJobEnded(int, int64_t runId, const QString& state, const QString& message) {
    const QString what = runId > 0 ? tr("run %1").arg(runId) : tr("a run");
    if (state == "failed")
        fail(tr("The run failed"), tr("%1 failed: %2").arg(what, message));
    else
        log(tr("%1 %2").arg(what, state));
    refresh();
    for (int i = 0; i < m_tabs->count(); ++i)
        if (auto* view = qobject_cast<RunView*>(m_tabs->widget(i)); view && view->runId() == runId)
            view->setStoppable(false);
}

QStringList MainWindow::recentProjects() const { return QSettings().value("recentProjects").toStringList(); }

void MainWindow::rememberRecent(const QString& path) {
    auto recent = recentProjects();
    recent.removeAll(path);
    recent.prepend(path);
    while (recent.size() > kMaxRecent)
        recent.removeLast();
    QSettings().setValue("recentProjects", recent);
    fillRecentMenu();
}

void MainWindow::fillRecentMenu() {
    m_recentMenu->clear();
    const auto recent = recentProjects();
    for (const auto& path : recent)
        m_recentMenu->addAction(path, this, [this, path] { openProject(path); });
    m_recentMenu->setEnabled(!recent.isEmpty());
}

void MainWindow::updateTitle() {
    setWindowTitle(m_project ? QFileInfo(QString::fromStdString(m_project->path())).fileName() + " - mppdl"
                             : QString("mppdl"));
}

void MainWindow::closeEvent(QCloseEvent* event) {
    for (int i = 0; i < m_tabs->count(); ++i)
        if (!mayClose(m_tabs->widget(i))) {
            event->ignore();
            return;
        }
    if (m_jobs->active() > 0) {
        const auto answer = QMessageBox::question(
            this, tr("Runs are training"),
            tr("%n run(s) still train in this window. Stop them and quit? What they trained so far stays "
               "recorded (mppdl resume continues them).",
               "", m_jobs->active()),
            QMessageBox::Yes | QMessageBox::No, QMessageBox::No);
        if (answer != QMessageBox::Yes) {
            event->ignore();
            return;
        }
        m_jobs->stopAll();
        m_jobs->waitForAll(60000);
    }
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState());
    event->accept();
}

} // namespace mppdl::ui
