// Training from the workbench on real Fashion-MNIST (Debian's dataset-fashion-mnist): the launcher
// offers the engine's own choices and refuses bad settings; a launched run trains on the engine's
// threads while its tab fills with points live and the GUI thread never stalls for 100 ms; Stop ends
// it as cancelled; a run that cannot load its data ends in a dialog and leaves the project as it was.

#include "ui/dataset_preview.h"
#include "ui/launch_dialog.h"
#include "ui/main_window.h"
#include "ui/run_view.h"
#include "ui/training_jobs.h"

#include "mppdl/store/project.h"
#include "mppdl/train/trainer.h"

#include <QComboBox>
#include <QDialogButtonBox>
#include <QElapsedTimer>
#include <QLabel>
#include <QMessageBox>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>

#include <qcustomplot.h>

using namespace mppdl;

namespace {

const QString kFashion = "/usr/share/datasets/fashion-mnist";

/// The longest gap between two ticks of a 10 ms timer on the GUI thread, while it runs.
class StallMeter : public QObject {
public:
    StallMeter() {
        m_timer.setInterval(10);
        QObject::connect(&m_timer, &QTimer::timeout, this,
                         [this] { m_longest = std::max(m_longest, m_clock.restart()); });
        m_clock.start();
        m_timer.start();
    }
    qint64 longestMs() const { return m_longest; }

private:
    QTimer m_timer;
    QElapsedTimer m_clock;
    qint64 m_longest = 0;
};

ui::RunView* liveView(ui::MainWindow& window) {
    for (int i = 0; i < window.tabs()->count(); ++i)
        if (auto* view = qobject_cast<ui::RunView*>(window.tabs()->widget(i)); view && view->live())
            return view;
    return nullptr;
}

int graphPoints(QCustomPlot* plot, const QString& name) {
    for (int g = 0; g < plot->graphCount(); ++g)
        if (plot->graph(g)->name() == name)
            return plot->graph(g)->dataCount();
    return 0;
}

} // namespace

class TrainingTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY2(QFileInfo::exists(kFashion), "Debian's dataset-fashion-mnist is not installed");
    }

    void init() {
        QVERIFY(m_dir.isValid());
        m_path = m_dir.filePath(QString("train-%1.mppdl").arg(++m_count));
        store::Project::create(m_path.toStdString());
    }

    void theLauncherOffersTheEnginesChoicesAndRefusesBadSettings() {
        auto project = store::Project::open(m_path.toStdString(), store::Access::Read);
        ui::LaunchDialog dialog(project);
        // Every strategy of the engine's table is offered.
        QStringList strategies;
        for (auto* box : dialog.findChildren<QComboBox*>())
            if (box->findText("model-averaging") >= 0)
                for (int i = 0; i < box->count(); ++i)
                    strategies << box->itemText(i);
        QCOMPARE(strategies.size(), int(train::strategyChoices().size()));
        // Fashion-MNIST from the package is offered first when the project has no dataset.
        QCOMPARE(QString::fromStdString(dialog.request().config.data.location), kFashion);
        QVERIFY(dialog.problems().isEmpty());
        auto* start = dialog.findChild<QPushButton*>("startButton");
        QVERIFY(start && start->isEnabled());

        dialog.setLocation("");
        QVERIFY(dialog.problems().join(" ").contains("no data source"));
        QVERIFY(!start->isEnabled());
        dialog.setLocation(kFashion);
        dialog.setLearningRate(0);
        QVERIFY2(dialog.problems().join(" ").contains("learning rate"), qPrintable(dialog.problems().join("; ")));
        QVERIFY(!start->isEnabled());
        QVERIFY(dialog.findChild<QLabel*>("launchProblems")->text().contains("learning rate"));
        dialog.setLearningRate(0.05);
        QVERIFY(start->isEnabled());
        dialog.setStrategy("model-averaging", 4);
        dialog.setArchitecture("fmnist_cnn");
        dialog.setEpochs(3);
        const auto request = dialog.request();
        QCOMPARE(request.architecture, std::string("fmnist_cnn"));
        QCOMPARE(request.config.strategy, std::string("model-averaging"));
        QCOMPARE(request.config.segments, 4);
        QCOMPARE(request.config.epochs, 3);
        QVERIFY(dialog.findChild<QLabel*>("launchProblems")->isHidden());
    }

    void aLaunchedRunTrainsLiveWithoutStallingTheWindow() {
        ui::MainWindow window;
        window.show();
        QVERIFY(QTest::qWaitForWindowExposed(&window));
        QVERIFY(window.openProject(m_path));
        ui::LaunchDialog dialog(*window.project());
        // The seed talk's CNN: slow enough on one thread that its curves grow while it trains.
        dialog.setArchitecture("fmnist_cnn");
        dialog.setStrategy("model-averaging", 2);
        dialog.setEpochs(3);
        dialog.setLimit(4000);
        dialog.setLearningRate(0.05);
        QVERIFY2(dialog.problems().isEmpty(), qPrintable(dialog.problems().join("; ")));
        QSignalSpy ended(window.jobs(), &ui::TrainingJobs::ended);
        QVERIFY(window.launch(dialog.request()) > 0);
        QCOMPARE(window.jobs()->active(), 1);

        QTRY_VERIFY_WITH_TIMEOUT(liveView(window) != nullptr, 60000);
        auto* view = liveView(window);
        StallMeter meter; // from here the GUI thread shares the cores with the training threads
        // Points arrive in the plot while it trains, before the run ends.
        QTRY_VERIFY_WITH_TIMEOUT(graphPoints(view->accuracyPlot(), "train (minibatches)") > 0 || !ended.isEmpty(),
                                 60000);
        const bool sawProgressLive = ended.isEmpty();
        QVERIFY(view->stopButton()->isVisible() || !ended.isEmpty());
        QTRY_COMPARE_WITH_TIMEOUT(ended.size(), 1, 120000);
        const qint64 longest = meter.longestMs();
        qInfo("longest GUI-thread stall while training: %lld ms", longest);
        QVERIFY2(longest < 100, qPrintable(QString("the event loop stalled for %1 ms").arg(longest)));
        QVERIFY(sawProgressLive);

        QCOMPARE(ended.at(0).at(2).toString(), QString("finished"));
        const qint64 runId = ended.at(0).at(1).toLongLong();
        QCOMPARE(view->runId(), runId);
        QTRY_VERIFY(view->progressText().startsWith("finished"));
        QVERIFY(!view->stopButton()->isVisible());
        view->redraw();
        QCOMPARE(graphPoints(view->accuracyPlot(), "validation"), 3);
        QCOMPARE(graphPoints(view->lossPlot(), "train"), 3);
        QVERIFY(graphPoints(view->lossPlot(), "train (minibatches)") > 0);
        QCOMPARE(view->segmentTable()->rowCount(), 2);
        QCOMPARE(view->segmentTable()->item(0, 0)->text().toInt() + view->segmentTable()->item(1, 0)->text().toInt(),
                 3600); // 4000 rows less the 10% held out for validation
        // Each shard's class histogram beside its figures: one column per class, adding up to its rows.
        auto* segments = view->segmentTable();
        QCOMPARE(segments->columnCount(), 7 + 10);
        QCOMPARE(segments->horizontalHeaderItem(7 + 9)->text(), QString("Ankle boot"));
        int classRows = 0;
        for (int c = 7; c < 17; ++c)
            classRows += segments->item(1, c)->text().toInt();
        QCOMPARE(classRows, segments->item(1, 0)->text().toInt());
        // Each replica's distance from the merged model at every epoch's merge.
        QCOMPARE(view->divergencePlot()->graphCount(), 2);
        QCOMPARE(view->divergencePlot()->graph(1)->dataCount(), 3);
        QVERIFY(view->divergencePlot()->graph(1)->data()->at(0)->value > 0);
        QCOMPARE(view->confusionTable()->rowCount(), 10); // the test split's evaluation
        view->setAxis(ui::RunView::Axis::WallTime);
        QCOMPARE(view->accuracyPlot()->xAxis->label(), QString("wall time (s)"));

        // The run as the project recorded it: the same one the CLI would read.
        const auto run = window.project()->run(runId);
        QVERIFY(run);
        QCOMPARE(run->state, store::RunState::Finished);
        QCOMPARE(run->epochsDone, 3);
        QCOMPARE(run->segments, 2);
        QVERIFY(run->testAccuracy && *run->testAccuracy > 0.6);
        QCOMPARE(window.jobs()->active(), 0);

        // A confusion matrix cell opens its samples: the run's model predicts the test split again
        // and finds exactly as many as the recorded evaluation counted.
        auto* confusion = view->confusionTable();
        int worstRow = 0, worstColumn = 1, worst = -1;
        for (int t = 0; t < confusion->rowCount(); ++t)
            for (int p = 0; p < confusion->columnCount(); ++p)
                if (t != p && confusion->item(t, p)->text().toInt() > worst) {
                    worst = confusion->item(t, p)->text().toInt();
                    worstRow = t;
                    worstColumn = p;
                }
        QVERIFY(worst > 0);
        view->tabs()->setCurrentIndex(1);
        confusion->setCurrentCell(worstRow, worstColumn);
        confusion->setFocus();
        QTest::keyClick(confusion, Qt::Key_Return);
        QTRY_VERIFY_WITH_TIMEOUT(window.findChild<QDialog*>("misclassified") != nullptr, 60000);
        auto* samples = window.findChild<QDialog*>("misclassified");
        const QString summary = samples->findChild<QLabel*>("misclassifiedSummary")->text();
        QVERIFY2(summary.startsWith(QString("%1 of the 10000 test rows of class %2 are predicted as %3")
                                        .arg(worst)
                                        .arg(confusion->verticalHeaderItem(worstRow)->text(),
                                             confusion->horizontalHeaderItem(worstColumn)->text())),
                 qPrintable(summary));
        QCOMPARE(samples->findChild<ui::SamplesView*>()->imageCount(), std::min(worst, 64));
        samples->close();

        const QString csv = m_dir.filePath("series.csv");
        QVERIFY(view->exportCsv(csv));
        QFile f(csv);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QVERIFY(f.readLine().startsWith("segment,epoch,step,kind,metric,value,wall_seconds"));
        QVERIFY(view->exportPdf(m_dir.filePath("plots.pdf")));
        QVERIFY(QFileInfo(m_dir.filePath("plots.pdf")).size() > 1000);

        // Runs > Export Selected Run as ONNX, in the background: the file is written and the log
        // says so; a path that cannot be written ends in a dialog naming it.
        const QString onnx = m_dir.filePath("run.onnx");
        QVERIFY(window.exportRunOnnx(runId, onnx));
        QTRY_VERIFY_WITH_TIMEOUT(window.logPane()->toPlainText().contains("wrote " + onnx), 30000);
        QVERIFY(QFileInfo(onnx).size() > 100000); // fmnist_cnn's 422k weights are float32 initializers
        QVERIFY(window.logPane()->toPlainText().contains("epoch 3, ONNX opset 13"));
        const QString unwritable = m_dir.filePath("no/such/dir/run.onnx");
        QVERIFY(window.exportRunOnnx(runId, unwritable));
        QTRY_VERIFY_WITH_TIMEOUT(window.lastError().contains(unwritable), 30000);
        QVERIFY(window.lastError().contains("cannot write"));
    }

    void stopEndsTheRunAsCancelled() {
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        ui::LaunchDialog dialog(*window.project());
        dialog.setArchitecture("mlp");
        dialog.setEpochs(500);
        dialog.setLimit(2000);
        QSignalSpy ended(window.jobs(), &ui::TrainingJobs::ended);
        window.launch(dialog.request());
        QTRY_VERIFY_WITH_TIMEOUT(liveView(window) && liveView(window)->pointCount() > 0, 60000);
        auto* view = liveView(window);
        QVERIFY(view->stopButton()->isVisible());
        QTest::mouseClick(view->stopButton(), Qt::LeftButton);
        QTRY_COMPARE_WITH_TIMEOUT(ended.size(), 1, 60000);
        QCOMPARE(ended.at(0).at(2).toString(), QString("cancelled"));
        const auto run = window.project()->run(view->runId());
        QCOMPARE(run->state, store::RunState::Cancelled);
        QVERIFY(run->epochsDone < 500);
        QTRY_VERIFY(view->progressText().startsWith("stopped"));
    }

    void aRunThatCannotLoadItsDataEndsInADialog() {
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        ui::LaunchDialog dialog(*window.project());
        const QString missing = m_dir.filePath("no-such-data.csv");
        dialog.setLocation(missing);
        QSignalSpy ended(window.jobs(), &ui::TrainingJobs::ended);
        window.launch(dialog.request());
        QTRY_COMPARE_WITH_TIMEOUT(ended.size(), 1, 60000);
        QCOMPARE(ended.at(0).at(2).toString(), QString("failed"));
        QVERIFY(ended.at(0).at(3).toString().contains(missing));
        QTRY_VERIFY(!window.findChildren<QMessageBox*>().isEmpty());
        auto* box = window.findChildren<QMessageBox*>().front();
        QVERIFY(box->isVisible());
        QVERIFY(box->text().contains(missing));
        box->accept();
        QVERIFY(window.project()->runs().empty()); // nothing half-recorded
        QCOMPARE(window.project()->integrityCheck(), std::string("ok"));
    }

private:
    QTemporaryDir m_dir;
    QString m_path;
    int m_count = 0;
};

QTEST_MAIN(TrainingTest)
#include "training_test.moc"
