#pragma once

#include "mppdl/model/analysis.h"
#include "mppdl/model/architecture.h"

#include <QPointF>
#include <QWidget>

#include <map>
#include <optional>
#include <string>

class QGraphicsScene;
class QGraphicsView;
class QLabel;
class QLineEdit;
class QListWidget;
class QTableWidget;
class QTreeWidget;
class QUndoStack;

namespace mppdl::store {
class Project;
}

namespace mppdl::ui {

class DesignerCanvas;

/// The architecture designer: a palette of the engine's layer types (the layer table, by
/// category), a canvas of layer nodes wired output port (bottom) to input port (top), a property
/// editor for the selected layer, and the validator's verdict as the design is edited: the output
/// shape on every edge, parameter and FLOP totals, and each problem on the node it names (red,
/// with the message) and in a list. Every edit is one undoable step. Layers come from the palette by
/// drag and drop or double-click; a port dragged onto another node connects them. Templates are the
/// bundled architectures; designs are imported and exported as mppdl JSON or Keras JSON and saved as
/// a new version of a project architecture.
class ArchitectureDesigner : public QWidget {
    Q_OBJECT
public:
    explicit ArchitectureDesigner(QWidget* parent = nullptr);
    ~ArchitectureDesigner() override;

    /// Starts over from a design (a template, a file, a project version): every layer's inputs
    /// made explicit, laid out anew, the undo history cleared and the design unmodified.
    void setArchitecture(const model::Architecture& architecture);
    const model::Architecture& architecture() const { return m_arch; }
    /// The validator's verdict on the design as it is now.
    const model::Analysis& analysis() const { return m_analysis; }
    /// Whether the design changed since it was set or last saved.
    bool isModified() const;

    // Edits: each is one undoable step, analyzed at once. They return false (changing nothing)
    // for what cannot be done: an unknown layer, a connection that exists or loops onto itself.
    /// Adds a layer of `type` fed by `after` (empty: the selected layer, else the last layer;
    /// none for an Input). Required parameters start at common values. Returns its name.
    QString addLayer(const QString& type, const QString& after = {}, std::optional<QPointF> at = {});
    /// Adds a layer of `type` at a canvas point, unconnected (a drop from the palette).
    QString dropLayer(const QString& type, QPointF at);
    bool connectLayers(const QString& from, const QString& to);
    bool disconnectLayers(const QString& from, const QString& to);
    bool removeLayer(const QString& name);
    bool renameLayer(const QString& name, const QString& newName);
    /// Sets a parameter from the JSON text typed for it ("32", "[3, 3]", "\"same\""); empty text
    /// removes it, so that its default applies. Text that is not such a value is kept as a string,
    /// and the validator says what the parameter takes.
    bool setParam(const QString& layer, const QString& param, const QString& text);
    /// Lays the layers out in rows by depth from the input.
    void autoLayout();

    void selectLayer(const QString& name);
    QString selectedLayer() const;

    /// The problem shown on a layer's node; empty when it has none.
    QString problemOf(const QString& layer) const;
    /// The shape written on the edge from `from` into `to` ("32x26x26"); empty when none.
    QString edgeLabel(const QString& from, const QString& to) const;
    /// "8 layers, 225,034 parameters, 9.37 MFLOPs per sample, output 10" or the problem count.
    QString totalsText() const;
    /// Where a layer's output or input port is, in the canvas viewport's coordinates (tests drive
    /// the mouse there); (-1, -1) for an unknown layer.
    QPoint portPoint(const QString& layer, bool output) const;
    QGraphicsView* canvas() const;
    QTreeWidget* palette() const { return m_palette; }
    QTableWidget* properties() const { return m_properties; }
    QListWidget* problemList() const { return m_problems; }
    QUndoStack* undoStack() const { return m_undo; }

    /// Loads a bundled architecture (resources/architectures) as the design.
    bool loadTemplate(const QString& name, QString* error = nullptr);
    /// Reads a design from an mppdl JSON or a Keras JSON file (told apart by content).
    bool importFile(const QString& path, QString* error = nullptr);
    /// Writes the design as mppdl JSON, or Keras JSON with `keras`.
    bool exportFile(const QString& path, bool keras, QString* error = nullptr) const;
    /// Adds the design to the project as the next version of its name (the name field). Refused,
    /// with the reason, while the validator finds problems or the name is empty. Returns the version.
    int saveVersion(store::Project& project, const QString& note, QString* error = nullptr);

Q_SIGNALS:
    /// After every edit, undo and redo.
    void changed();
    /// The user asked to save the design as a project version (the window has the project).
    void saveRequested();
    /// The user asked to train the design: saved as a version, then the run launcher on it.
    void trainRequested();
    /// Something went wrong that the window shows (an unreadable file, a refused save).
    void failed(const QString& title, const QString& message);

private:
    friend class DesignerCanvas;
    friend class SnapshotCommand;

    /// Replaces the design as one undoable step named `what`.
    void commit(const model::Architecture& after, const QString& what);
    /// Shows a design (a step, its undo or its redo): analysis, scene, properties.
    void apply(const model::Architecture& architecture);
    void analyze();
    void rebuildScene();
    void updateEdges();
    void fillProperties();
    void onPropertyEdited(int row, int column);
    void nodeMoved(const std::string& name, QPointF position);
    QString uniqueName(const QString& type) const;
    /// Adds a layer of `type` fed by `from` (none when empty), at `at` or below what feeds it.
    QString placeLayer(const QString& type, const std::string& from, std::optional<QPointF> at);
    model::Layer* findLayer(model::Architecture& architecture, const std::string& name) const;

    model::Architecture m_arch;
    model::Analysis m_analysis;
    std::map<std::string, QString> m_problemOf;    ///< layer -> the message on its node
    std::map<std::string, model::Shape> m_shapeOf; ///< layer -> its output shape
    std::map<std::string, QPointF> m_positions;    ///< layer -> node centre in the scene
    std::string m_selected;
    bool m_filling = false; ///< the property table is being filled, not edited

    QUndoStack* m_undo = nullptr;
    QTreeWidget* m_palette = nullptr;
    QGraphicsScene* m_scene = nullptr;
    DesignerCanvas* m_canvas = nullptr;
    QTableWidget* m_properties = nullptr;
    QListWidget* m_problems = nullptr;
    QLabel* m_totals = nullptr;
    QLineEdit* m_name = nullptr;
};

} // namespace mppdl::ui
