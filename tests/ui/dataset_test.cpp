// Datasets in the workbench on real data: a dataset's view reads its rows again and shows samples
// and how N segments would hold them; File > Add Dataset previews a file as it is chosen, records
// it, and refuses a bad file naming its line; a PostgreSQL table is reached through Test Connection,
// the table browser and the column mapping (against the server packaging/test.sh starts).

#include "ui/dataset_dialog.h"
#include "ui/dataset_preview.h"
#include "ui/dataset_view.h"
#include "ui/main_window.h"

#include "mppdl/data/catalog.h"
#include "mppdl/store/project.h"

#include <QComboBox>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QProcess>
#include <QPushButton>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QTreeWidget>
#include <QtTest>

using namespace mppdl;

namespace {

const QString kFashion = "/usr/share/datasets/fashion-mnist";

QPushButton* addButton(ui::DatasetDialog& dialog) { return dialog.findChild<QPushButton*>("addDataset"); }

/// Records a dataset as a run would have, in the project at `path`; its id.
int64_t recordDataset(const QString& path, const std::string& name, const std::string& kind,
                      const std::string& location, const std::string& options, const std::string& schema,
                      const std::string& statistics) {
    auto project = store::Project::open(path.toStdString(), store::Access::Write);
    store::DatasetRecord d;
    d.name = name;
    d.kind = kind;
    d.location = location;
    d.options = options;
    d.schema = schema;
    d.statistics = statistics;
    return project.registerDataset(d);
}

} // namespace

class DatasetTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QVERIFY(m_dir.isValid());
    }

    void init() {
        m_path = m_dir.filePath(QString("data-%1.mppdl").arg(++m_count));
        store::Project::create(m_path.toStdString());
    }

    void aDatasetViewShowsSamplesAndSegments() {
        const int64_t id = recordDataset(
            m_path, "fashion-mnist", "idx", kFashion.toStdString(), R"({"kind": "auto", "limit": 2000})",
            R"({"dtype": "uint8", "sample_shape": [1, 28, 28], "test_rows": 10000, "train_rows": 2000})",
            R"({"class_counts": [], "channel_mean": [], "channel_std": [], "min": 0, "max": 255})");
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        auto* view = window.showDataset(id);
        QVERIFY(view);
        QTRY_VERIFY_WITH_TIMEOUT(!view->rowsLoading(), 30000);
        QCOMPARE(view->samples()->imageCount(), 32); // every class, in turn
        auto* segments = view->segments();
        segments->setSegments(4, "by-label");
        auto* table = segments->table();
        QCOMPARE(table->rowCount(), 4);
        int total = 0;
        for (int r = 0; r < 4; ++r)
            total += table->item(r, 0)->text().toInt();
        QCOMPARE(total, 2000);
        // By label, each class lives on one segment: class 1 (Trouser) on segment 1 only.
        QVERIFY(table->item(1, 2)->text().toInt() > 0);
        QCOMPARE(table->item(0, 2)->text().toInt(), 0);
        QVERIFY(segments->skewText().startsWith("skew"));
        segments->setSegments(4, "database"); // needs a sharded table read: said, not thrown
        QVERIFY(segments->skewText().contains("segment"));
    }

    // A project's table dataset names its server before anything connects there; reading the
    // rows waits for the user's yes (here to a port nobody listens on: the read then fails).
    void aTableDatasetAsksBeforeConnecting() {
#ifdef MPPDL_WITH_POSTGRES
        const int64_t id = recordDataset(
            m_path, "someone's table", "pg", "pg:public.secrets",
            R"({"connection": "host=127.0.0.1 port=1 dbname=warehouse user=stranger connect_timeout=5"})",
            R"({"dtype": "float32", "sample_shape": [4], "test_rows": 0, "train_rows": 10})",
            R"({"class_counts": [5, 5], "channel_mean": [], "channel_std": [], "min": 0, "max": 1})");
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        auto* view = window.showDataset(id);
        QVERIFY(view);
        QVERIFY(!view->rowsLoading());
        QVERIFY2(view->rowsStatusText().contains("user stranger at 127.0.0.1:1, database warehouse"),
                 qPrintable(view->rowsStatusText()));
        QVERIFY(view->connectButton());
        QVERIFY(view->connectButton()->isVisible());
        view->connectButton()->click();
        QTRY_VERIFY_WITH_TIMEOUT(view->rowsStatusText().contains("cannot be read now"), 30000);
#else
        QSKIP("built without PostgreSQL");
#endif
    }

    // Host, database and user typed into their fields are quoted into the keyword string: a
    // space or a quote in a name stays in that name and adds no keyword.
    void theConnectionFieldsAreQuoted() {
#ifdef MPPDL_WITH_POSTGRES
        ui::DatasetDialog dialog;
        dialog.findChild<QLineEdit*>("host")->setText("db.example.com");
        dialog.findChild<QLineEdit*>("port")->setText("6543");
        dialog.findChild<QLineEdit*>("database")->setText("sales 2024' sslmode=disable");
        dialog.findChild<QLineEdit*>("user")->setText("ann o'neil");
        const std::string connection = dialog.connectionString();
        QCOMPARE(QString::fromStdString(data::describeServer(connection)),
                 QString("user ann o'neil at db.example.com:6543, database sales 2024' sslmode=disable"));
#else
        QSKIP("built without PostgreSQL");
#endif
    }

    void addingAFileDatasetPreviewsAndRecordsIt() {
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        ui::DatasetDialog dialog;
        QVERIFY(!addButton(dialog)->isEnabled());
        dialog.setLimit(1000);
        dialog.setFile(kFashion);
        QSignalSpy previewed(&dialog, &ui::DatasetDialog::previewed);
        QTRY_VERIFY_WITH_TIMEOUT(previewed.size() > 0, 30000);
        QVERIFY2(dialog.previewOk(), qPrintable(dialog.previewStatus()));
        QVERIFY(dialog.previewStatus().contains("1x28x28"));
        QVERIFY(dialog.preview()->imageCount() > 0);
        QVERIFY(addButton(dialog)->isEnabled());

        QSignalSpy added(&window, &ui::MainWindow::datasetAdded);
        window.addDataset(dialog.location(), dialog.options());
        QTRY_COMPARE_WITH_TIMEOUT(added.size(), 1, 30000);
        const auto datasets = window.project()->datasets();
        QCOMPARE(datasets.size(), size_t(1));
        QCOMPARE(datasets[0].kind, std::string("idx"));
        QCOMPARE(datasets[0].location, kFashion.toStdString());
        QVERIFY(datasets[0].schema.find("\"train_rows\":1000") != std::string::npos);
        QVERIFY(qobject_cast<ui::DatasetView*>(window.tabs()->currentWidget()));
    }

    void aBadFileIsRefusedNamingItsLine() {
        const QString csv = m_dir.filePath("points.csv");
        QFile f(csv);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("x,y,label\n1,2,a\n3,oops,b\n");
        f.close();
        ui::DatasetDialog dialog;
        dialog.setFile(csv);
        QSignalSpy previewed(&dialog, &ui::DatasetDialog::previewed);
        QTRY_VERIFY_WITH_TIMEOUT(previewed.size() > 0, 30000);
        QVERIFY(!dialog.previewOk());
        QVERIFY2(dialog.previewStatus().contains(csv + ":3"), qPrintable(dialog.previewStatus()));
        QVERIFY(!addButton(dialog)->isEnabled());
    }

    void aPostgresTableThroughTheConnectionDialog() {
        const QString conn = qEnvironmentVariable("MPPDL_TEST_PG");
        const QString password = qEnvironmentVariable("MPPDL_TEST_PG_PASSWORD");
        if (conn.isEmpty())
            QSKIP("no PostgreSQL server: run through packaging/test.sh");
        // A small table of points in two classes, made with psql as a user would.
        QProcess psql;
        auto env = QProcessEnvironment::systemEnvironment();
        env.insert("PGPASSWORD", password);
        psql.setProcessEnvironment(env);
        psql.start("psql",
                   {conn, "-v", "ON_ERROR_STOP=1", "-q", "-c",
                    "DROP TABLE IF EXISTS ui_points; "
                    "CREATE TABLE ui_points (id int, x real, y real, label text); "
                    "INSERT INTO ui_points SELECT i, i * 0.5, -i, CASE WHEN i % 2 = 0 THEN 'even' ELSE 'odd' END "
                    "FROM generate_series(1, 40) i; ANALYZE ui_points;"});
        QVERIFY(psql.waitForFinished(30000));
        QVERIFY2(psql.exitCode() == 0, psql.readAllStandardError().constData());

        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(m_path));
        ui::DatasetDialog dialog;
        // A wrong password first: said in the dialog, nothing listed.
        dialog.setConnection(conn, "not-the-password");
        QSignalSpy tested(&dialog, &ui::DatasetDialog::connectionTested);
        dialog.testConnection();
        QTRY_VERIFY_WITH_TIMEOUT(tested.size() == 1, 30000);
        QCOMPARE(tested.at(0).at(0).toBool(), false);
        QVERIFY2(dialog.connectionStatus().contains("password"), qPrintable(dialog.connectionStatus()));
        QCOMPARE(dialog.tableList()->topLevelItemCount(), 0);

        dialog.setConnection(conn, password);
        dialog.testConnection();
        QTRY_VERIFY_WITH_TIMEOUT(tested.size() == 2, 30000);
        QVERIFY2(tested.at(1).at(0).toBool(), qPrintable(dialog.connectionStatus()));
        QVERIFY(dialog.connectionStatus().startsWith("PostgreSQL 15"));
        QVERIFY(dialog.chooseTable("public.ui_points"));
        QCOMPARE(dialog.labelColumn()->currentText(), QString("label")); // the engine's default column names
        QCOMPARE(dialog.featureColumns()->count(), 4);
        QTRY_VERIFY_WITH_TIMEOUT(dialog.previewOk(), 30000);
        QCOMPARE(QString::fromStdString(dialog.location()), QString("pg:public.ui_points"));
        QCOMPARE(dialog.preview()->imageCount(), 0);
        QVERIFY2(dialog.previewStatus().contains("the first 40 training rows"), qPrintable(dialog.previewStatus()));
        QCOMPARE(dialog.preview()->rowTable()->rowCount(), 32); // a preview's worth, both classes in turn
        QCOMPARE(dialog.preview()->rowTable()->item(1, 1)->text(), QString("odd"));
        QCOMPARE(dialog.preview()->rowTable()->columnCount(), 2 + 2); // row, class, x, y (id is no feature)

        QSignalSpy added(&window, &ui::MainWindow::datasetAdded);
        window.addDataset(dialog.location(), dialog.options());
        QTRY_COMPARE_WITH_TIMEOUT(added.size(), 1, 30000);
        const auto datasets = window.project()->datasets();
        QCOMPARE(datasets.size(), size_t(1));
        QCOMPARE(datasets[0].location, std::string("pg:public.ui_points"));
        QCOMPARE(datasets[0].classNames, (std::vector<std::string>{"even", "odd"}));
        QVERIFY(datasets[0].options.find(password.toStdString()) == std::string::npos); // never recorded
    }

private:
    QTemporaryDir m_dir;
    QString m_path;
    int m_count = 0;
};

QTEST_MAIN(DatasetTest)
#include "dataset_test.moc"
