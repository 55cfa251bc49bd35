// A search's leaderboard in the workbench: a real Hyperband search on Fashion-MNIST rows, recorded
// by the engine as `mppdl tune` records it, opened from the project tree; its rows ranked, its
// early stops shown, its runs opened and compared.

#include "ui/compare_view.h"
#include "ui/main_window.h"
#include "ui/project_tree.h"
#include "ui/run_view.h"
#include "ui/search_view.h"

#include "mppdl/store/project.h"
#include "mppdl/tune/search_session.h"

#include <QFileDialog>
#include <QLabel>
#include <QMessageBox>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QtTest>

#include <qcustomplot.h>

using namespace mppdl;

class SearchViewTest : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(m_dir.isValid());
        m_path = m_dir.filePath("search.mppdl");
        auto project = store::Project::create(m_path.toStdString());
        tune::SearchRequest r;
        r.name = "hb";
        r.search = "hyperband";
        r.spaceJson = R"({"architecture": "mlp", "lr": [0.1, 0.03, 0.01, 0.003], "momentum": 0.9, "max_epochs": 3,
                          "eta": 3, "seed": 1})";
        r.spacePath = "space.json";
        r.schedule.segments = 2;
        r.base.data.location = MPPDL_FASHION_MNIST_DIR_FOR_UI;
        r.base.data.source.limit = 1000;
        r.base.data.validationFraction = 0.2;
        r.base.seed = 2;
        m_result = tune::runSearch(project, r, nullptr);
    }

    void theLeaderboardRanksTheSearchsRuns() {
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        auto* item = window.projectTree()->searchItem("hb");
        QVERIFY(item);
        QCOMPARE(item->text(1), QString("5/5 ended"));
        QVERIFY(item->parent()->text(0).startsWith("Searches (1)"));
        Q_EMIT window.projectTree()->itemActivated(item, 0);
        auto* view = qobject_cast<ui::SearchView*>(window.tabs()->currentWidget());
        QVERIFY(view);
        QCOMPARE(window.tabs()->tabText(window.tabs()->currentIndex()), QString("Search: hb"));
        QCOMPARE(window.showSearch("hb"), view); // brought forward, not opened twice

        auto* table = view->table();
        QCOMPARE(table->rowCount(), 5);
        QVERIFY(!table->isColumnHidden(8)); // Hyperband's bracket
        // Best validation accuracy first, each row its run's.
        const auto board = m_result.leaderboard();
        for (int row = 0; row < 5; ++row) {
            QCOMPARE(table->item(row, 1)->data(Qt::UserRole).toLongLong(), qint64(board[size_t(row)].runId));
            QCOMPARE(table->item(row, 13)->text(), QString::fromStdString(board[size_t(row)].state));
        }
        int stopped = 0;
        for (int row = 0; row < 5; ++row)
            stopped += table->item(row, 13)->text() == "stopped";
        QCOMPARE(stopped, 2); // bracket 1 keeps 1 of its 3
        QVERIFY(view->summary()->text().contains("hyperband search"));
        QVERIFY(view->summary()->text().contains("2 stopped early"));
        QVERIFY(view->summary()->text().contains("11 of 11 epochs"));
        // The curves: one per run, as many points as its epochs.
        QCOMPARE(view->plot()->graphCount(), 5);
        int points = 0;
        for (int g = 0; g < 5; ++g)
            points += view->plot()->graph(g)->dataCount();
        QCOMPARE(points, 11);

        // A row opens its run; Compare takes the selected rows, best first.
        Q_EMIT table->cellDoubleClicked(2, 0);
        auto* run = qobject_cast<ui::RunView*>(window.tabs()->currentWidget());
        QVERIFY(run);
        QCOMPARE(run->runId(), board[2].runId);
        // The run view's Export > Model as ONNX reaches the window: it asks where to write.
        bool asked = false;
        QTimer::singleShot(300, [&] {
            for (auto* w : QApplication::topLevelWidgets())
                if (auto* dialog = qobject_cast<QFileDialog*>(w); dialog && dialog->isVisible()) {
                    asked = true;
                    dialog->reject();
                }
        });
        Q_EMIT run->modelExportRequested(run->runId());
        QVERIFY(asked);
        table->selectRow(3);
        table->selectionModel()->select(table->model()->index(1, 0),
                                        QItemSelectionModel::Select | QItemSelectionModel::Rows);
        QCOMPARE(view->runsToCompare(), (QList<qint64>{board[1].runId, board[3].runId}));
        table->clearSelection();
        QCOMPARE(view->runsToCompare().size(), 3); // none selected: the best three
        Q_EMIT view->compareRequested(view->runsToCompare());
        auto* compare = qobject_cast<ui::CompareView*>(window.tabs()->currentWidget());
        QVERIFY(compare);
        QCOMPARE(compare->runIds(), (std::vector<int64_t>{board[0].runId, board[1].runId, board[2].runId}));
        // The search's place differs between runs; its space (the same for all) is not listed.
        const auto differing = compare->differingRows();
        QVERIFY(differing.contains("config: search.index"));
        for (const auto& row : differing)
            QVERIFY2(!row.startsWith("config: search.space"), qPrintable(row));
    }

    void anUnknownSearchIsAMessage() {
        ui::MainWindow window;
        QVERIFY(window.openProject(m_path));
        QVERIFY(!window.showSearch("nope"));
        QVERIFY(window.lastError().contains("no search named 'nope'"));
        for (auto* box : window.findChildren<QMessageBox*>())
            box->accept();
    }

private:
    QTemporaryDir m_dir;
    QString m_path;
    tune::SearchProgress m_result;
};

QTEST_MAIN(SearchViewTest)
#include "search_test.moc"
