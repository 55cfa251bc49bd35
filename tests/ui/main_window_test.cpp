// The main window and the run view on real project files: open a project and see its runs, open a
// run and see its curves, refuse what is not a project without losing the open one, Save As, and
// runs written by another process appearing on refresh.

#include "ui/compare_view.h"
#include "ui/dataset_view.h"
#include "ui/main_window.h"
#include "ui/project_tree.h"
#include "ui/run_view.h"

#include "mppdl/store/project.h"

#include <QAction>
#include <QDockWidget>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTemporaryDir>
#include <QtTest>

#include <qcustomplot.h>

using namespace mppdl;

namespace {

/// A run of `epochs` epochs with merged and per-segment metrics, ended in `state`.
int64_t addRun(store::Project& project, const std::string& name, int epochs, int segments, store::RunState state) {
    const auto arch = project.addArchitecture("tiny", R"({"name": "tiny", "layers": []})", "test");
    store::NewRun run;
    run.name = name;
    run.architectureVersionId = arch.id;
    run.strategy = segments > 1 ? "model-averaging" : "single";
    run.segments = segments;
    run.epochs = epochs;
    run.config = "{}";
    const int64_t id = project.createRun(run);
    project.startRun(id);
    std::vector<store::MetricPoint> points;
    for (int e = 1; e <= epochs; ++e) {
        const double t = double(e) * 1.5;
        for (int s = -1; s < (segments > 1 ? segments : 0); ++s) {
            points.push_back({s, e, e * 100, "epoch", "train_loss", 1.0 / e + 0.01 * s, t});
            points.push_back({s, e, e * 100, "epoch", "train_accuracy", 0.5 + 0.04 * e, t});
        }
        points.push_back({-1, e, e * 100, "epoch", "val_loss", 1.1 / e, t});
        points.push_back({-1, e, e * 100, "epoch", "val_accuracy", 0.48 + 0.04 * e, t});
    }
    project.appendMetrics(id, points);
    project.updateProgress(id, {epochs, epochs, 0.48 + 0.04 * epochs, 1.5 * epochs});
    if (state == store::RunState::Failed)
        project.endRun(id, state, "data", "pg:fashion: the server stopped streaming rows");
    else
        project.endRun(id, state);
    return id;
}

QString text(QTreeWidgetItem* item, int column) { return item ? item->text(column) : QString("(no item)"); }

} // namespace

class MainWindowTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); } // QSettings apart from the user's

    void init() {
        QVERIFY(m_dir.isValid());
        m_path = m_dir.filePath("runs.mppdl");
        QFile::remove(m_path);
        auto project = store::Project::create(m_path.toStdString());
        store::DatasetRecord d;
        d.name = "fashion-mnist";
        d.kind = "idx";
        d.location = "/usr/share/datasets/fashion-mnist";
        d.options = R"({"kind": "auto", "limit": 12000, "label": ""})";
        d.schema = R"({"dtype": "uint8", "sample_shape": [1, 28, 28], "test_rows": 10000, "train_rows": 12000})";
        d.classNames = {"T-shirt/top", "Trouser", "Pullover"};
        d.statistics = R"({"channel_mean": [72.97], "channel_std": [90.22], "class_counts": [4000, 3000, 5000],
                           "max": 255.0, "min": 0.0})";
        m_dataset = project.registerDataset(d);
        m_finished = addRun(project, "fmnist-ma4", 3, 4, store::RunState::Finished);
        m_failed = addRun(project, "broken", 1, 1, store::RunState::Failed);
    }

    void opensAProjectAndListsItsRuns() {
        ui::MainWindow window;
        QVERIFY(window.openProject(m_path));
        QVERIFY(window.windowTitle().startsWith("runs.mppdl"));
        auto* runs = window.projectTree()->group("Runs");
        QVERIFY(runs);
        QCOMPARE(runs->text(0), QString("Runs (2)"));
        QVERIFY(runs->isExpanded());
        auto* finished = window.projectTree()->runItem(m_finished);
        QCOMPARE(text(finished, 0), QString("%1  fmnist-ma4").arg(m_finished));
        QCOMPARE(text(finished, 1), QString("finished"));
        QCOMPARE(text(finished, 2), QString("60.00%")); // best validation accuracy (no test split)
        QCOMPARE(text(window.projectTree()->runItem(m_failed), 1), QString("failed"));
        QCOMPARE(window.projectTree()->group("Architectures")->text(0), QString("Architectures (1)"));
        QVERIFY(window.recentProjects().contains(QFileInfo(m_path).absoluteFilePath()));
    }

    void doubleClickingARunShowsItsCurves() {
        ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QVERIFY(window.openProject(m_path));
        auto* tree = window.projectTree();
        auto* item = tree->runItem(m_finished);
        QVERIFY(item);
        tree->scrollToItem(item);
        const QPoint at = tree->visualItemRect(item).center();
        // A double-click as the window system delivers it: press, release, press, double-click.
        QTest::mouseClick(tree->viewport(), Qt::LeftButton, {}, at);
        QTest::mousePress(tree->viewport(), Qt::LeftButton, {}, at);
        QTest::mouseDClick(tree->viewport(), Qt::LeftButton, {}, at);
        QTRY_COMPARE(window.tabs()->count(), 1);
        auto* view = qobject_cast<ui::RunView*>(window.tabs()->currentWidget());
        QVERIFY(view);
        QCOMPARE(view->runId(), m_finished);
        QVERIFY(view->summaryText().contains("fmnist-ma4"));
        QVERIFY(view->summaryText().contains("model-averaging, 4 segment(s)"));

        // Merged train and validation in the legend; 4 segments drawn under them, one legend entry.
        auto* accuracy = view->accuracyPlot();
        QCOMPARE(accuracy->graphCount(), 4 + 2);
        QCOMPARE(accuracy->legend->itemCount(), 3);
        QCPGraph* validation = nullptr;
        for (int g = 0; g < accuracy->graphCount(); ++g)
            if (accuracy->graph(g)->name() == "validation")
                validation = accuracy->graph(g);
        QVERIFY(validation);
        QCOMPARE(validation->dataCount(), 3);
        QCOMPARE(validation->data()->at(2)->key, 3.0);
        QVERIFY(qAbs(validation->data()->at(2)->value - 60.0) < 1e-9); // percent
        QCOMPARE(accuracy->xAxis->label(), QString("epoch"));
        QCOMPARE(view->lossPlot()->graphCount(), 4 + 2);

        // The same run again brings its tab forward instead of opening another.
        window.showRun(m_failed);
        QCOMPARE(window.tabs()->count(), 2);
        QCOMPARE(window.showRun(m_finished), view);
        QCOMPARE(window.tabs()->count(), 2);
        auto* failedView = qobject_cast<ui::RunView*>(window.tabs()->widget(1));
        QVERIFY(failedView->summaryText().contains("the server stopped streaming rows"));

        const QString png = m_dir.filePath("curves.png");
        QVERIFY(view->exportPng(png));
        QCOMPARE(QImage(png).size(), QSize(1600, 500));
    }

    void whatIsNotAProjectIsRefusedAndTheOpenOneStays() {
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        const QString notes = m_dir.filePath("notes.mppdl");
        {
            QFile f(notes);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("my notes\n");
        }
        QVERIFY(!window.openProject(notes));
        QVERIFY(window.lastError().contains(notes));
        auto boxes = window.findChildren<QMessageBox*>();
        QCOMPARE(boxes.size(), 1);
        QVERIFY(boxes.front()->isVisible());
        QVERIFY(boxes.front()->text().contains(notes));
        boxes.front()->accept();
        QCOMPARE(QString::fromStdString(window.project()->path()), m_path); // still the project it had
        QCOMPARE(window.projectTree()->group("Runs")->text(0), QString("Runs (2)"));
        QFile f(notes);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll(), QByteArray("my notes\n")); // untouched
    }

    void saveAsContinuesInTheCopy() {
        ui::MainWindow window;
        QVERIFY(window.openProject(m_path));
        const QString copy = m_dir.filePath("copy.mppdl");
        QFile::remove(copy);
        QVERIFY(window.saveProjectAs(copy));
        QCOMPARE(QString::fromStdString(window.project()->path()), copy);
        QCOMPARE(window.projectTree()->group("Runs")->text(0), QString("Runs (2)"));
        QVERIFY(!window.saveProjectAs(m_path)); // exists: refused, nothing overwritten
        QVERIFY(window.lastError().contains("already exists"));
    }

    void comparingTwoRunsOverlaysThemAndHighlightsWhatDiffers() {
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        // Selecting one run is not enough to compare.
        window.projectTree()->runItem(m_finished)->setSelected(true);
        QVERIFY(!window.compareRuns(window.projectTree()->selectedRunIds()));
        QVERIFY(window.lastError().contains("at least two runs"));
        for (auto* box : window.findChildren<QMessageBox*>())
            box->accept();
        window.projectTree()->runItem(m_failed)->setSelected(true);
        const auto ids = window.projectTree()->selectedRunIds();
        QCOMPARE(ids, (std::vector<int64_t>{m_finished, m_failed}));
        auto* compare = window.compareRuns(ids);
        QVERIFY(compare);
        QCOMPARE(window.tabs()->currentWidget(), compare);

        // Validation accuracy against wall time: one curve per run, x in seconds.
        auto* plot = compare->plot();
        QCOMPARE(plot->graphCount(), 2);
        QCOMPARE(plot->graph(0)->dataCount(), 3);
        QCOMPARE(plot->graph(1)->dataCount(), 1);
        QCOMPARE(plot->graph(0)->data()->at(1)->key, 3.0); // epoch 2 at 3.0 s
        QCOMPARE(plot->xAxis->label(), QString("wall time (s)"));
        compare->setMetric("train_loss", false);
        QCOMPARE(plot->xAxis->label(), QString("epoch"));
        QCOMPARE(plot->graph(0)->data()->at(1)->key, 2.0);
        QVERIFY(qAbs(plot->graph(0)->data()->at(1)->value - 0.49) < 1e-12); // 1 / 2 - 0.01 (merged)

        // The table: results and configuration side by side, what differs highlighted.
        const auto differing = compare->differingRows();
        QVERIFY(differing.contains("state"));
        QVERIFY(differing.contains("epochs done"));
        QVERIFY(!differing.contains("architecture")); // both tiny v1
        QCOMPARE(compare->table()->columnCount(), 3);
    }

    void aDatasetShowsItsSchemaClassesAndStatistics() {
        ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QVERIFY(window.openProject(m_path));
        auto* item = window.projectTree()->datasetItem(m_dataset);
        QVERIFY(item);
        QCOMPARE(item->text(0), QString("fashion-mnist"));
        // Enter on the selected dataset opens it, as a double-click does.
        window.projectTree()->setFocus();
        window.projectTree()->setCurrentItem(item);
        QTest::keyClick(window.projectTree(), Qt::Key_Return);
        QTRY_COMPARE(window.tabs()->count(), 1);
        auto* view = qobject_cast<ui::DatasetView*>(window.tabs()->currentWidget());
        QVERIFY(view);
        QVERIFY(view->summaryText().contains("samples 1x28x28 uint8"));
        QVERIFY(view->summaryText().contains("3 classes"));
        QVERIFY(view->summaryText().contains("options: limit 12000")); // the defaults are not repeated
        auto* bars = qobject_cast<QCPBars*>(view->histogram()->plottable(0));
        QVERIFY(bars);
        QCOMPARE(bars->data()->size(), 3);
        QCOMPARE(bars->data()->at(2)->value, 5000.0);
        QCOMPARE(view->statistics()->item(0, 1)->text(), QString("72.970"));
        QCOMPARE(view->statistics()->item(1, 2)->text(), QString("255"));
        QCOMPARE(window.showDataset(m_dataset), view); // brought forward, not opened twice
        QCOMPARE(window.tabs()->count(), 1);
    }

    void aClosedDockComesBackFromTheViewMenu() {
        ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        auto* log = window.findChild<QDockWidget*>("logDock");
        QVERIFY(log && log->isVisible());
        log->close();
        QVERIFY(!log->isVisible());
        QAction* entry = nullptr;
        for (auto* menu : window.menuBar()->findChildren<QMenu*>())
            if (menu->title() == "&View")
                for (auto* action : menu->actions())
                    if (action->text() == "Log")
                        entry = action;
        QVERIFY(entry);
        entry->trigger();
        QVERIFY(log->isVisible());
    }

    void runsRecordedElsewhereAppearOnRefresh() {
        ui::MainWindow window;
        QVERIFY(window.openProject(m_path));
        window.projectTree()->group("Runs")->setExpanded(true);
        {
            auto other = store::Project::open(m_path.toStdString(), store::Access::Write); // another process
            addRun(other, "from the terminal", 2, 1, store::RunState::Finished);
        }
        // Two runs chosen to compare, the second current: a refresh keeps both (it ran every ~1.3 s
        // and kept only one).
        auto* tree = window.projectTree();
        tree->runItem(m_finished)->setSelected(true);
        tree->setCurrentItem(tree->runItem(m_failed), 0, QItemSelectionModel::Select);
        QCOMPARE(tree->selectedRunIds(), (std::vector<int64_t>{m_finished, m_failed}));
        window.refresh();
        QCOMPARE(tree->group("Runs")->text(0), QString("Runs (3)"));
        QVERIFY(tree->group("Runs")->isExpanded());
        QCOMPARE(tree->selectedRunIds(), (std::vector<int64_t>{m_finished, m_failed}));
        QCOMPARE(tree->currentItem(), tree->runItem(m_failed));
        QVERIFY(window.compareRuns(tree->selectedRunIds()));
    }

private:
    QTemporaryDir m_dir;
    QString m_path;
    int64_t m_finished = 0, m_failed = 0, m_dataset = 0;
};

QTEST_MAIN(MainWindowTest)
#include "main_window_test.moc"
