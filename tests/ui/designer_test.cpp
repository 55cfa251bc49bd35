// The architecture designer: a small CNN built through its model API and through simulated mouse
// drags (a drop from the palette, a port dragged onto a node), shapes on the edges and totals as
// the validator computes them, a shape error on the node it names, undo and redo, templates,
// import and export (mppdl JSON and Keras JSON), and saving a version into a project file.

#include "ui/architecture_designer.h"
#include "ui/launch_dialog.h"
#include "ui/main_window.h"
#include "ui/project_tree.h"

#include "mppdl/model/architecture.h"
#include "mppdl/store/project.h"

#include <QGraphicsView>
#include <QLineEdit>
#include <QListWidget>
#include <QMessageBox>
#include <QMimeData>
#include <QStandardPaths>
#include <QTabWidget>
#include <QTableWidget>
#include <QTemporaryDir>
#include <QUndoStack>
#include <QtTest>

using namespace mppdl;

class DesignerTest : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase() { QStandardPaths::setTestModeEnabled(true); }

    void buildsACnnThroughTheModelApi() {
        ui::ArchitectureDesigner designer;
        QCOMPARE(designer.architecture().layers.size(), size_t(1)); // a new design starts at its Input
        const QString conv = designer.addLayer("Conv2D");
        QCOMPARE(conv, QString("conv2d_1"));
        QVERIFY(designer.setParam(conv, "filters", "8"));
        const QString relu = designer.addLayer("ReLU");
        designer.addLayer("MaxPool2D");
        designer.addLayer("Flatten");
        const QString dense = designer.addLayer("Dense");
        QVERIFY(designer.setParam(dense, "units", "10"));
        QVERIFY2(designer.analysis().ok(),
                 qPrintable(designer.problemList()->count() ? designer.problemList()->item(0)->text() : ""));
        // conv 1->8 3x3: 8*9+8 = 80; 8x13x13 = 1352 features into 10 units: 13,530.
        QCOMPARE(designer.analysis().totalParams, int64_t(80 + 13530));
        QCOMPARE(designer.edgeLabel(conv, relu), QString("8x26x26"));
        QCOMPARE(designer.edgeLabel("input", conv), QString("1x28x28"));
        QVERIFY(designer.totalsText().startsWith("6 layers, 13,610 parameters"));
        QVERIFY(designer.totalsText().endsWith("output 10"));
        // The selected layer's parameters, with the layer table's defaults beside them.
        designer.selectLayer(conv);
        QCOMPARE(designer.selectedLayer(), conv);
        auto* table = designer.properties();
        QCOMPARE(table->item(0, 1)->text(), conv);
        bool sawFilters = false;
        for (int r = 0; r < table->rowCount(); ++r)
            if (table->item(r, 0)->text() == "filters") {
                QCOMPARE(table->item(r, 1)->text(), QString("8"));
                QCOMPARE(table->item(r, 2)->text(), QString("required"));
                sawFilters = true;
            }
        QVERIFY(sawFilters);

        // Undo walks back one edit at a time; redo walks forward.
        QVERIFY(designer.isModified());
        designer.undoStack()->undo(); // units back to the starting 64
        QCOMPARE(designer.analysis().totalParams, int64_t(80 + 1352 * 64 + 64));
        designer.undoStack()->undo(); // the Dense layer goes
        QCOMPARE(designer.architecture().layers.size(), size_t(5));
        designer.undoStack()->redo();
        designer.undoStack()->redo();
        QCOMPARE(designer.analysis().totalParams, int64_t(80 + 13530));
        QCOMPARE(QString::fromStdString(model::toJson(designer.architecture())).count("\"inputs\""), 5);
    }

    void aShapeErrorAppearsOnTheRightNode() {
        ui::ArchitectureDesigner designer;
        const QString conv = designer.addLayer("Conv2D");
        const QString dense = designer.addLayer("Dense"); // straight after a 3-D output: no Flatten
        QVERIFY(!designer.analysis().ok());
        QVERIFY(designer.problemOf(conv).isEmpty());
        const QString problem = designer.problemOf(dense);
        QVERIFY2(problem.contains("32x26x26"), qPrintable(problem)); // names the shape it got
        QCOMPARE(designer.problemList()->count(), 1);
        QVERIFY(designer.problemList()->item(0)->text().startsWith(dense + ": "));
        QVERIFY(designer.totalsText().startsWith("1 problem(s)"));
        // Putting a Flatten between them mends it.
        const QString flatten = designer.addLayer("Flatten", conv);
        QVERIFY(designer.connectLayers(flatten, dense)); // a Dense has one input: rewired, not doubled
        for (const auto& layer : designer.architecture().layers)
            if (layer.name == dense.toStdString())
                QCOMPARE(layer.inputs, std::vector<std::string>{flatten.toStdString()});
        QVERIFY(designer.analysis().ok());
        QVERIFY(designer.problemOf(dense).isEmpty());
        // A parameter of the wrong kind is named on its layer, with what it takes.
        QVERIFY(designer.setParam(conv, "filters", "many"));
        QVERIFY(designer.problemOf(conv).contains("filters"));
    }

    void mouseDragsAddAndWireLayers() {
        ui::ArchitectureDesigner designer;
        designer.resize(1200, 800);
        designer.show();
        QVERIFY(QTest::qWaitForWindowExposed(&designer));
        auto* viewport = designer.canvas()->viewport();

        // A layer dragged from the palette and dropped on the canvas lands there, unconnected.
        const QPoint dropAt = designer.portPoint("input", true) + QPoint(0, 140);
        QMimeData mime;
        mime.setData("application/x-mppdl-layer-type", "Flatten");
        QDragEnterEvent enter(dropAt, Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(viewport, &enter);
        QVERIFY(enter.isAccepted());
        QDropEvent drop(dropAt, Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        QApplication::sendEvent(viewport, &drop);
        QCOMPARE(designer.architecture().layers.size(), size_t(2));
        QCOMPARE(designer.architecture().layers.back().name, std::string("flatten_1"));
        QVERIFY(designer.problemOf("flatten_1").startsWith("not connected"));

        // Dragging from the input's output port onto the new layer connects them.
        const QPoint from = designer.portPoint("input", true);
        const QPoint to = designer.portPoint("flatten_1", false);
        QVERIFY(from.x() >= 0 && to.x() >= 0);
        QTest::mousePress(viewport, Qt::LeftButton, {}, from);
        QTest::mouseMove(viewport, (from + to) / 2);
        QTest::mouseMove(viewport, to + QPoint(0, 8));
        QTest::mouseRelease(viewport, Qt::LeftButton, {}, to + QPoint(0, 8));
        QCOMPARE(designer.architecture().layers.back().inputs, std::vector<std::string>{"input"});
        QVERIFY(designer.problemOf("flatten_1").isEmpty());
        QCOMPARE(designer.edgeLabel("input", "flatten_1"), QString("1x28x28"));

        // Selecting the new node by a click and pressing Delete removes it: one more undo step.
        const QPoint body = designer.portPoint("flatten_1", false) + QPoint(0, 20);
        QTest::mouseClick(viewport, Qt::LeftButton, {}, body);
        QCOMPARE(designer.selectedLayer(), QString("flatten_1"));
        QTest::keyClick(designer.canvas(), Qt::Key_Delete);
        QCOMPARE(designer.architecture().layers.size(), size_t(1));
        designer.undoStack()->undo();
        QCOMPARE(designer.architecture().layers.size(), size_t(2));
    }

    void templatesImportAndExport() {
        ui::ArchitectureDesigner designer;
        QVERIFY(designer.loadTemplate("lenet5"));
        QCOMPARE(designer.analysis().totalParams, int64_t(61706));
        QVERIFY(!designer.isModified());
        QVERIFY(m_dir.isValid());
        const QString json = m_dir.filePath("lenet.json"), keras = m_dir.filePath("cnn-keras.json");
        QVERIFY(designer.exportFile(json, false));
        QString error;
        QVERIFY(!designer.exportFile(keras, true, &error)); // Keras JSON has no AvgPool2D: named
        QVERIFY2(error.contains("pool1"), qPrintable(error));
        ui::ArchitectureDesigner other;
        QVERIFY(other.importFile(json));
        QCOMPARE(model::toJson(other.architecture()), model::toJson(designer.architecture()));

        QVERIFY(designer.loadTemplate("mlp"));
        const auto params = designer.analysis().totalParams;
        QVERIFY2(designer.exportFile(keras, true, &error), qPrintable(error));
        QVERIFY(other.importFile(keras));
        QCOMPARE(other.analysis().totalParams, params);
        QCOMPARE(other.architecture().layers.size(), designer.architecture().layers.size());

        // Not an architecture: refused with the file named, the design as it was.
        const QString bad = m_dir.filePath("notes.json");
        QFile f(bad);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("{\"layers\": [");
        f.close();
        QVERIFY(!other.importFile(bad, &error));
        QVERIFY2(error.contains(bad), qPrintable(error));
        QCOMPARE(other.analysis().totalParams, params);
        QVERIFY(!other.exportFile(m_dir.filePath("no/such/dir/x.json"), false, &error));
        QVERIFY(error.contains("cannot be written"));
    }

    void savesVersionsIntoTheProjectAndOpensThemFromTheTree() {
        const QString path = m_dir.filePath("designs.mppdl");
        store::Project::create(path.toStdString());
        ui::MainWindow window;
        window.show();
        QVERIFY(window.openProject(path));
        auto* designer = window.showDesigner();
        QVERIFY(designer);
        designer->addLayer("Flatten");
        designer->addLayer("Dense");
        designer->addLayer("Dense", "input"); // a second branch: two outputs, which cannot be saved
        QVERIFY(!window.saveDesign(designer));
        QVERIFY(window.lastError().contains("problem"));
        for (auto* box : window.findChildren<QMessageBox*>())
            box->accept();
        QVERIFY(designer->removeLayer("dense_2"));
        auto* name = designer->findChild<QLineEdit*>("architectureName");
        QVERIFY(name);
        name->setText("tiny-mlp");
        QMetaObject::invokeMethod(name, "editingFinished");
        QCOMPARE(designer->architecture().name, std::string("tiny-mlp"));
        QVERIFY(window.saveDesign(designer));
        QVERIFY(!designer->isModified());
        const auto saved = window.project()->architecture("tiny-mlp");
        QVERIFY(saved);
        QCOMPARE(saved->version, 1);
        QCOMPARE(model::parseArchitecture(saved->spec).layers.size(), size_t(3));

        // Train... saves (an unchanged design is its latest version) and opens the launcher on it.
        auto* launcher = window.trainDesign(designer);
        QVERIFY(launcher);
        QCOMPARE(launcher->request().architecture, std::string("tiny-mlp@1"));
        QCOMPARE(window.project()->architectureVersions("tiny-mlp").size(), size_t(1));
        launcher->reject();

        // The version in the tree opens in a designer of its own.
        auto* item = window.projectTree()->architectureVersionItem(saved->id);
        QVERIFY(item);
        Q_EMIT window.projectTree()->itemActivated(item, 0);
        auto* opened = qobject_cast<ui::ArchitectureDesigner*>(window.tabs()->currentWidget());
        QVERIFY(opened && opened != designer);
        QCOMPARE(opened->architecture().name, std::string("tiny-mlp"));
        QCOMPARE(opened->analysis().totalParams, designer->analysis().totalParams);
    }

private:
    QTemporaryDir m_dir;
};

QTEST_MAIN(DesignerTest)
#include "designer_test.moc"
