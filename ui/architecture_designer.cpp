#include "ui/architecture_designer.h"

#include "mppdl/core/error.h"
#include "mppdl/model/keras.h"
#include "mppdl/model/layers.h"
#include "mppdl/session/architectures.h"
#include "mppdl/store/project.h"

#include <QComboBox>
#include <QDragEnterEvent>
#include <QFile>
#include <QFileDialog>
#include <QGraphicsPathItem>
#include <QGraphicsScene>
#include <QGraphicsSceneMouseEvent>
#include <QGraphicsSimpleTextItem>
#include <QGraphicsView>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QMimeData>
#include <QPainter>
#include <QPushButton>
#include <QSplitter>
#include <QStyleOptionGraphicsItem>
#include <QTableWidget>
#include <QToolBar>
#include <QTreeWidget>
#include <QUndoStack>
#include <QVBoxLayout>
#include <QWheelEvent>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

namespace mppdl::ui {

namespace {

constexpr double kNodeWidth = 184, kNodeHeight = 44, kPortRadius = 6;
constexpr double kRowGap = 84, kColumnGap = 220;
/// Fit never shrinks the design below this: labels stay readable, a long network scrolls.
constexpr double kMinFitScale = 0.8;
const char* kLayerMime = "application/x-mppdl-layer-type";
/// What an unconnected layer names as its input while the validator looks at the design; the
/// designer says what is wrong in its own words.
const char* kUnconnected = "(not connected)";

QColor categoryColor(const std::string& category) {
    static const std::map<std::string, QColor> colors = {
        {"input", QColor(227, 242, 253)},   {"convolution", QColor(232, 245, 233)},
        {"pooling", QColor(255, 243, 224)}, {"normalization", QColor(243, 229, 245)},
        {"core", QColor(236, 239, 241)},    {"activation", QColor(255, 253, 231)},
        {"merge", QColor(252, 228, 236)}};
    const auto it = colors.find(category);
    return it == colors.end() ? QColor(245, 245, 245) : it->second;
}

/// Starting values of required parameters, so that a layer from the palette is valid at once.
std::optional<model::Param> startingValue(const model::ParamInfo& p) {
    static const std::map<std::string, model::Param> values = {{"units", model::Param(int64_t(64))},
                                                               {"filters", model::Param(int64_t(32))},
                                                               {"kernel_size", model::Param(int64_t(3))},
                                                               {"pool_size", model::Param(int64_t(2))},
                                                               {"rate", model::Param(0.25)},
                                                               {"shape",
                                                                model::Param(std::vector<int64_t>{1, 28, 28})}};
    if (p.defaultValue)
        return std::nullopt;
    const auto it = values.find(p.name);
    if (it != values.end())
        return it->second;
    switch (p.type) {
    case model::ParamType::Int: return model::Param(int64_t(1));
    case model::ParamType::Float: return model::Param(0.0);
    case model::ParamType::Bool: return model::Param(false);
    default: return std::nullopt;
    }
}

/// "filters=32 kernel_size=3": the parameters a layer sets, for its node.
QString paramSummary(const model::Layer& layer) {
    QStringList parts;
    for (const auto& [name, value] : layer.params)
        parts << QString::fromStdString(name + "=" + model::paramText(value));
    return parts.join(" ");
}

class NodeItem;

} // namespace

/// The canvas: nodes and edges; a drag from an output port onto another node connects them, a
/// drop from the palette adds a layer, the wheel zooms, Delete removes what is selected.
class DesignerCanvas : public QGraphicsView {
public:
    DesignerCanvas(ArchitectureDesigner* designer, QGraphicsScene* scene) : QGraphicsView(scene), m_designer(designer) {
        setRenderHint(QPainter::Antialiasing);
        setAcceptDrops(true);
        setDragMode(QGraphicsView::RubberBandDrag);
        setTransformationAnchor(QGraphicsView::AnchorUnderMouse);
        setMinimumSize(360, 300);
    }
    void moved(const std::string& name, QPointF position) { m_designer->nodeMoved(name, position); }
    void zoom(double factor) { scale(factor, factor); }
    void fit() {
        const QRectF bounds = scene()->itemsBoundingRect().adjusted(-40, -40, 40, 40);
        if (bounds.isEmpty())
            return;
        resetTransform();
        fitInView(bounds, Qt::KeepAspectRatio);
        const double fitted = transform().m11();
        resetTransform();
        const double s = std::clamp(fitted, kMinFitScale, 1.0); // small designs at their natural size
        scale(s, s);
        // The input end in view when it does not all fit.
        centerOn(bounds.center().x(), bounds.top() + std::min(bounds.height(), viewport()->height() / s) / 2);
    }

protected:
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    void wheelEvent(QWheelEvent* event) override {
        zoom(std::pow(1.15, event->angleDelta().y() / 120.0));
        event->accept();
    }
    void dragEnterEvent(QDragEnterEvent* event) override {
        if (event->mimeData()->hasFormat(kLayerMime))
            event->acceptProposedAction();
    }
    void dragMoveEvent(QDragMoveEvent* event) override {
        if (event->mimeData()->hasFormat(kLayerMime))
            event->acceptProposedAction();
    }
    void dropEvent(QDropEvent* event) override {
        if (!event->mimeData()->hasFormat(kLayerMime))
            return;
        const QString type = QString::fromUtf8(event->mimeData()->data(kLayerMime));
        m_designer->dropLayer(type, mapToScene(event->position().toPoint()));
        event->acceptProposedAction();
    }

private:
    NodeItem* nodeAt(QPoint point, const NodeItem* except = nullptr) const;

    ArchitectureDesigner* m_designer;
    std::string m_from; ///< the layer a connection is being dragged from
    QGraphicsLineItem* m_line = nullptr;
};

namespace {

class NodeItem : public QGraphicsItem {
public:
    NodeItem(DesignerCanvas* canvas, const model::Layer& layer, QString problem)
        : m_canvas(canvas), m_name(layer.name), m_problem(std::move(problem)) {
        const auto* info = model::findLayerType(layer.type);
        m_takesInputs = !info || info->minInputs > 0;
        m_color = categoryColor(info ? info->category : "");
        m_title = QString::fromStdString(layer.name);
        m_detail = QString::fromStdString(layer.type);
        const QString params = paramSummary(layer);
        if (!params.isEmpty())
            m_detail += "  " + params;
        setFlags(ItemIsMovable | ItemIsSelectable | ItemSendsGeometryChanges);
        setToolTip(m_problem.isEmpty() ? QString::fromStdString(info ? info->description : "unknown layer type")
                                       : m_problem);
        setZValue(1);
    }
    const std::string& name() const { return m_name; }
    const QString& problem() const { return m_problem; }
    QPointF inputPort() const { return mapToScene(0, -kNodeHeight / 2); }
    QPointF outputPort() const { return mapToScene(0, kNodeHeight / 2); }
    bool nearOutputPort(QPointF scenePoint) const {
        return QLineF(scenePoint, outputPort()).length() <= kPortRadius + 4;
    }

    QRectF boundingRect() const override {
        return {-kNodeWidth / 2 - kPortRadius, -kNodeHeight / 2 - kPortRadius, kNodeWidth + 2 * kPortRadius,
                kNodeHeight + 2 * kPortRadius};
    }
    void paint(QPainter* painter, const QStyleOptionGraphicsItem*, QWidget*) override {
        const QRectF box(-kNodeWidth / 2, -kNodeHeight / 2, kNodeWidth, kNodeHeight);
        const bool bad = !m_problem.isEmpty();
        QPen border(bad            ? QColor(198, 40, 40)
                    : isSelected() ? QColor(21, 101, 192)
                                   : QColor(120, 120, 120),
                    bad || isSelected() ? 2.5 : 1.0);
        painter->setPen(border);
        painter->setBrush(bad ? QColor(255, 235, 238) : m_color);
        painter->drawRoundedRect(box, 6, 6);
        QFont bold = painter->font();
        bold.setBold(true);
        painter->setFont(bold);
        painter->setPen(Qt::black);
        const QFontMetrics boldMetrics(bold);
        const QRectF titleBox = box.adjusted(8, 4, -8, -kNodeHeight / 2);
        painter->drawText(titleBox, Qt::AlignLeft | Qt::AlignVCenter,
                          boldMetrics.elidedText(m_title, Qt::ElideRight, int(titleBox.width())));
        QFont plain = bold;
        plain.setBold(false);
        plain.setPointSizeF(plain.pointSizeF() * 0.9);
        painter->setFont(plain);
        painter->setPen(QColor(60, 60, 60));
        const QRectF detailBox = box.adjusted(8, kNodeHeight / 2 - 2, -8, -4);
        painter->drawText(detailBox, Qt::AlignLeft | Qt::AlignVCenter,
                          QFontMetrics(plain).elidedText(m_detail, Qt::ElideRight, int(detailBox.width())));
        // Ports: in at the top, out at the bottom.
        painter->setPen(QPen(QColor(80, 80, 80), 1));
        painter->setBrush(Qt::white);
        if (m_takesInputs)
            painter->drawEllipse(QPointF(0, -kNodeHeight / 2), kPortRadius, kPortRadius);
        painter->setBrush(QColor(21, 101, 192));
        painter->drawEllipse(QPointF(0, kNodeHeight / 2), kPortRadius, kPortRadius);
    }

protected:
    QVariant itemChange(GraphicsItemChange change, const QVariant& value) override {
        if (change == ItemPositionHasChanged)
            m_canvas->moved(m_name, value.toPointF());
        return QGraphicsItem::itemChange(change, value);
    }

private:
    DesignerCanvas* m_canvas;
    std::string m_name;
    QString m_problem, m_title, m_detail;
    QColor m_color;
    bool m_takesInputs = true;
};

/// One input of a layer: a curve from the feeding layer's output port, labelled with the shape
/// that flows along it.
class EdgeItem : public QGraphicsPathItem {
public:
    EdgeItem(std::string from, std::string to, const QString& shape) : m_from(std::move(from)), m_to(std::move(to)) {
        setPen(QPen(QColor(90, 90, 90), 1.6));
        setFlags(ItemIsSelectable);
        setZValue(0);
        m_label = new QGraphicsSimpleTextItem(shape, this);
        m_label->setBrush(QColor(21, 101, 192));
        setToolTip(QString::fromStdString(m_from + " -> " + m_to) + (shape.isEmpty() ? QString() : ": " + shape));
    }
    const std::string& from() const { return m_from; }
    const std::string& to() const { return m_to; }
    QString label() const { return m_label->text(); }
    void route(QPointF a, QPointF b) {
        QPainterPath path(a);
        const double bend = std::max(30.0, std::abs(b.y() - a.y()) / 2);
        path.cubicTo(a + QPointF(0, bend), b - QPointF(0, bend), b);
        setPath(path);
        const QPointF middle = path.pointAtPercent(0.5);
        m_label->setPos(middle + QPointF(6, -m_label->boundingRect().height() / 2));
    }
    QPainterPath shape() const override { // easier to click than the hairline
        QPainterPathStroker stroker;
        stroker.setWidth(10);
        return stroker.createStroke(path());
    }
    void paint(QPainter* painter, const QStyleOptionGraphicsItem* option, QWidget* widget) override {
        setPen(QPen(isSelected() ? QColor(21, 101, 192) : QColor(90, 90, 90), isSelected() ? 3 : 1.6));
        QStyleOptionGraphicsItem plain(*option);
        plain.state &= ~QStyle::State_Selected; // no dashed box around a curve
        QGraphicsPathItem::paint(painter, &plain, widget);
    }

private:
    std::string m_from, m_to;
    QGraphicsSimpleTextItem* m_label;
};

/// The palette: the engine's layer types by category, dragged onto the canvas as their type name.
class PaletteTree : public QTreeWidget {
public:
    using QTreeWidget::QTreeWidget;

protected:
    QStringList mimeTypes() const override { return {kLayerMime}; }
    QMimeData* mimeData(const QList<QTreeWidgetItem*>& items) const override {
        if (items.isEmpty() || items.front()->data(0, Qt::UserRole).toString().isEmpty())
            return nullptr;
        auto* data = new QMimeData;
        data->setData(kLayerMime, items.front()->data(0, Qt::UserRole).toString().toUtf8());
        return data;
    }
};

} // namespace

NodeItem* DesignerCanvas::nodeAt(QPoint point, const NodeItem* except) const {
    for (auto* item : items(point))
        if (auto* node = dynamic_cast<NodeItem*>(item); node && node != except)
            return node;
    return nullptr;
}

void DesignerCanvas::mousePressEvent(QMouseEvent* event) {
    if (event->button() == Qt::LeftButton) {
        const QPointF at = mapToScene(event->position().toPoint());
        auto* node = nodeAt(event->position().toPoint());
        if (node && node->nearOutputPort(at)) {
            m_from = node->name();
            m_line = scene()->addLine(QLineF(node->outputPort(), at), QPen(QColor(21, 101, 192), 2, Qt::DashLine));
            event->accept();
            return;
        }
    }
    QGraphicsView::mousePressEvent(event);
}

void DesignerCanvas::mouseMoveEvent(QMouseEvent* event) {
    if (m_line) {
        m_line->setLine(QLineF(m_line->line().p1(), mapToScene(event->position().toPoint())));
        event->accept();
        return;
    }
    QGraphicsView::mouseMoveEvent(event);
}

void DesignerCanvas::mouseReleaseEvent(QMouseEvent* event) {
    if (m_line) {
        delete m_line;
        m_line = nullptr;
        std::string target;
        for (auto* item : items(event->position().toPoint()))
            if (auto* node = dynamic_cast<NodeItem*>(item); node && node->name() != m_from) {
                target = node->name();
                break;
            }
        const std::string from = std::exchange(m_from, {});
        event->accept();
        if (!target.empty()) // rebuilds the scene: nothing of it is touched after this
            m_designer->connectLayers(QString::fromStdString(from), QString::fromStdString(target));
        return;
    }
    QGraphicsView::mouseReleaseEvent(event);
}

void DesignerCanvas::keyPressEvent(QKeyEvent* event) {
    if (event->key() != Qt::Key_Delete && event->key() != Qt::Key_Backspace)
        return QGraphicsView::keyPressEvent(event);
    std::vector<std::pair<std::string, std::string>> edges;
    std::vector<std::string> nodes;
    for (auto* item : scene()->selectedItems()) {
        if (auto* edge = dynamic_cast<EdgeItem*>(item))
            edges.emplace_back(edge->from(), edge->to());
        if (auto* node = dynamic_cast<NodeItem*>(item))
            nodes.push_back(node->name());
    }
    event->accept();
    for (const auto& [from, to] : edges)
        m_designer->disconnectLayers(QString::fromStdString(from), QString::fromStdString(to));
    for (const auto& name : nodes)
        m_designer->removeLayer(QString::fromStdString(name));
}

/// One edit: the design before and after it.
class SnapshotCommand : public QUndoCommand {
public:
    SnapshotCommand(ArchitectureDesigner* designer, model::Architecture before, model::Architecture after,
                    const QString& text)
        : QUndoCommand(text), m_designer(designer), m_before(std::move(before)), m_after(std::move(after)) {}
    void undo() override { m_designer->apply(m_before); }
    void redo() override { m_designer->apply(m_after); }

private:
    ArchitectureDesigner* m_designer;
    model::Architecture m_before, m_after;
};

ArchitectureDesigner::ArchitectureDesigner(QWidget* parent) : QWidget(parent) {
    m_undo = new QUndoStack(this);
    m_scene = new QGraphicsScene(this);
    m_canvas = new DesignerCanvas(this, m_scene);
    m_canvas->setObjectName("designerCanvas");
    connect(m_scene, &QGraphicsScene::selectionChanged, this, [this] {
        std::string selected;
        for (auto* item : m_scene->selectedItems())
            if (auto* node = dynamic_cast<NodeItem*>(item))
                selected = node->name();
        if (selected != m_selected) {
            m_selected = selected;
            fillProperties();
        }
    });

    // The palette, by category, in the layer table's order.
    m_palette = new PaletteTree(this);
    m_palette->setHeaderLabel(tr("Layers"));
    m_palette->setDragEnabled(true);
    m_palette->setDragDropMode(QAbstractItemView::DragOnly);
    std::map<std::string, QTreeWidgetItem*> categories;
    for (const auto& type : model::layerTypes()) {
        auto*& category = categories[type.category];
        if (!category) {
            category = new QTreeWidgetItem(m_palette, {QString::fromUtf8(type.category)});
            category->setFlags(Qt::ItemIsEnabled);
            category->setExpanded(true);
        }
        auto* item = new QTreeWidgetItem(category, {QString::fromUtf8(type.name)});
        item->setData(0, Qt::UserRole, QString::fromUtf8(type.name));
        item->setToolTip(0, QString::fromUtf8(type.description));
        item->setBackground(0, categoryColor(type.category));
    }
    m_palette->expandAll();
    connect(m_palette, &QTreeWidget::itemDoubleClicked, this, [this](QTreeWidgetItem* item) {
        const QString type = item->data(0, Qt::UserRole).toString();
        if (!type.isEmpty())
            addLayer(type);
    });

    m_properties = new QTableWidget(0, 3, this);
    m_properties->setHorizontalHeaderLabels({tr("parameter"), tr("value (JSON)"), tr("default")});
    m_properties->horizontalHeader()->setSectionResizeMode(0, QHeaderView::ResizeToContents);
    m_properties->horizontalHeader()->setSectionResizeMode(1, QHeaderView::Stretch);
    m_properties->horizontalHeader()->setSectionResizeMode(2, QHeaderView::ResizeToContents);
    m_properties->verticalHeader()->hide();
    connect(m_properties, &QTableWidget::cellChanged, this, &ArchitectureDesigner::onPropertyEdited);
    m_problems = new QListWidget(this);
    m_problems->setObjectName("designerProblems");
    m_problems->setWordWrap(true);
    connect(m_problems, &QListWidget::itemActivated, this,
            [this](QListWidgetItem* item) { selectLayer(item->data(Qt::UserRole).toString()); });
    m_totals = new QLabel(this);
    m_totals->setObjectName("designerTotals");
    m_name = new QLineEdit(this);
    m_name->setObjectName("architectureName");
    m_name->setPlaceholderText(tr("architecture name"));
    m_name->setMaximumWidth(220);
    connect(m_name, &QLineEdit::editingFinished, this, [this] {
        if (m_name->text().toStdString() == m_arch.name)
            return;
        auto after = m_arch;
        after.name = m_name->text().trimmed().toStdString();
        commit(after, tr("Rename the architecture"));
    });

    // The tool bar.
    auto* tools = new QToolBar(this);
    auto* templates = new QComboBox(this);
    templates->setObjectName("templates");
    templates->addItem(tr("Start from a template..."));
    for (const auto& name : session::bundledArchitectures())
        templates->addItem(QString::fromStdString(name));
    connect(templates, &QComboBox::activated, this, [this, templates](int index) {
        if (index <= 0)
            return;
        QString error;
        if (!loadTemplate(templates->itemText(index), &error))
            Q_EMIT failed(tr("Cannot load the template"), error);
        templates->setCurrentIndex(0);
    });
    tools->addWidget(templates);
    tools->addAction(tr("Import..."), this, [this] {
        const auto path = QFileDialog::getOpenFileName(this, tr("Import an architecture"), QString(),
                                                       tr("Architectures (*.json);;All files (*)"));
        QString error;
        if (!path.isEmpty() && !importFile(path, &error))
            Q_EMIT failed(tr("Cannot import the architecture"), error);
    });
    auto exportAs = [this](bool keras) {
        const auto path = QFileDialog::getSaveFileName(this, keras ? tr("Export as Keras JSON") : tr("Export as JSON"),
                                                       QString::fromStdString(m_arch.name) + ".json",
                                                       tr("JSON files (*.json)"));
        QString error;
        if (!path.isEmpty() && !exportFile(path, keras, &error))
            Q_EMIT failed(tr("Cannot export the architecture"), error);
    };
    tools->addAction(tr("Export JSON..."), this, [=] { exportAs(false); });
    tools->addAction(tr("Export Keras..."), this, [=] { exportAs(true); });
    tools->addSeparator();
    auto* undo = m_undo->createUndoAction(this, tr("Undo"));
    undo->setShortcut(QKeySequence::Undo);
    auto* redo = m_undo->createRedoAction(this, tr("Redo"));
    redo->setShortcut(QKeySequence::Redo);
    tools->addAction(undo);
    tools->addAction(redo);
    addAction(undo);
    addAction(redo);
    tools->addAction(tr("Auto-layout"), this, &ArchitectureDesigner::autoLayout);
    tools->addAction(tr("Zoom In"), this, [this] { m_canvas->zoom(1.25); });
    tools->addAction(tr("Zoom Out"), this, [this] { m_canvas->zoom(0.8); });
    tools->addAction(tr("Fit"), this, [this] { m_canvas->fit(); });
    auto* save = new QPushButton(tr("Save as New Version"), this);
    save->setObjectName("saveVersion");
    save->setToolTip(tr("Add the design to the project as the next version of this name"));
    connect(save, &QPushButton::clicked, this, &ArchitectureDesigner::saveRequested);
    auto* train = new QPushButton(tr("Train..."), this);
    train->setObjectName("trainDesign");
    train->setToolTip(tr("Save the design as a version (when it changed) and open the run launcher on it"));
    connect(train, &QPushButton::clicked, this, &ArchitectureDesigner::trainRequested);

    auto* right = new QSplitter(Qt::Vertical, this);
    auto* propertiesBox = new QWidget(this);
    auto* propertiesLayout = new QVBoxLayout(propertiesBox);
    propertiesLayout->setContentsMargins(0, 0, 0, 0);
    propertiesLayout->addWidget(
        new QLabel(tr("<b>Selected layer</b> (click a node; edit a value and press Enter)"), this));
    propertiesLayout->addWidget(m_properties);
    auto* problemsBox = new QWidget(this);
    auto* problemsLayout = new QVBoxLayout(problemsBox);
    problemsLayout->setContentsMargins(0, 0, 0, 0);
    problemsLayout->addWidget(new QLabel(tr("<b>Problems</b>"), this));
    problemsLayout->addWidget(m_problems);
    right->addWidget(propertiesBox);
    right->addWidget(problemsBox);
    auto* split = new QSplitter(Qt::Horizontal, this);
    split->addWidget(m_palette);
    split->addWidget(m_canvas);
    split->addWidget(right);
    split->setStretchFactor(1, 1);
    split->setSizes({150, 760, 320});
    auto* bottom = new QHBoxLayout;
    bottom->addWidget(m_totals, 1);
    bottom->addWidget(new QLabel(tr("Name:"), this));
    bottom->addWidget(m_name);
    bottom->addWidget(save);
    bottom->addWidget(train);
    auto* layout = new QVBoxLayout(this);
    layout->addWidget(tools);
    layout->addWidget(split, 1);
    layout->addLayout(bottom);

    model::Architecture start;
    start.name = "untitled";
    model::Layer input;
    input.name = "input";
    input.type = "Input";
    input.params["shape"] = std::vector<int64_t>{1, 28, 28};
    start.layers.push_back(input);
    setArchitecture(start);
}

ArchitectureDesigner::~ArchitectureDesigner() {
    // The scene's items call back into this widget as they go.
    m_scene->blockSignals(true);
    m_scene->clear();
}

bool ArchitectureDesigner::isModified() const { return !m_undo->isClean(); }

QGraphicsView* ArchitectureDesigner::canvas() const { return m_canvas; }

model::Layer* ArchitectureDesigner::findLayer(model::Architecture& architecture, const std::string& name) const {
    for (auto& layer : architecture.layers)
        if (layer.name == name)
            return &layer;
    return nullptr;
}

void ArchitectureDesigner::setArchitecture(const model::Architecture& architecture) {
    m_arch = architecture;
    // Every connection drawn: a layer that names no inputs is fed by the one written before it.
    for (size_t i = 1; i < m_arch.layers.size(); ++i) {
        auto& layer = m_arch.layers[i];
        const auto* info = model::findLayerType(layer.type);
        if (layer.inputs.empty() && (!info || info->minInputs > 0))
            layer.inputs.push_back(m_arch.layers[i - 1].name);
    }
    m_positions.clear();
    m_selected.clear();
    m_undo->clear();
    apply(m_arch);
    autoLayout();
    m_canvas->fit();
    // A design that comes with problems opens on the first of them.
    for (const auto& p : m_analysis.problems)
        if (findLayer(m_arch, p.where)) {
            selectLayer(QString::fromStdString(p.where));
            break;
        }
}

void ArchitectureDesigner::commit(const model::Architecture& after, const QString& what) {
    m_undo->push(new SnapshotCommand(this, m_arch, after, what)); // push() applies it
}

void ArchitectureDesigner::apply(const model::Architecture& architecture) {
    m_arch = architecture;
    if (!findLayer(m_arch, m_selected))
        m_selected.clear();
    analyze();
    rebuildScene();
    fillProperties();
    if (m_name->text().toStdString() != m_arch.name)
        m_name->setText(QString::fromStdString(m_arch.name));
    Q_EMIT changed();
}

void ArchitectureDesigner::analyze() {
    auto checked = m_arch;
    std::set<std::string> unconnected;
    for (auto& layer : checked.layers) {
        const auto* info = model::findLayerType(layer.type);
        if (layer.inputs.empty() && (!info || info->minInputs > 0)) {
            unconnected.insert(layer.name);
            layer.inputs.push_back(kUnconnected);
        }
    }
    m_analysis = model::analyze(checked);
    m_problemOf.clear();
    m_shapeOf.clear();
    for (const auto& layer : m_analysis.layers)
        m_shapeOf[layer.name] = layer.outputShape;
    m_problems->clear();
    for (const auto& p : m_analysis.problems) {
        QString message = QString::fromStdString(p.message);
        if (unconnected.count(p.where) && message.contains(kUnconnected))
            message = tr("not connected: drag from another layer's output port (bottom) onto it");
        if (!m_problemOf.count(p.where))
            m_problemOf[p.where] = message;
        auto* item = new QListWidgetItem(QString::fromStdString(p.where) + ": " + message, m_problems);
        item->setToolTip(item->text());
        item->setData(Qt::UserRole, QString::fromStdString(p.where));
        item->setForeground(QColor(176, 0, 32));
    }
    m_totals->setText(totalsText());
}

QString ArchitectureDesigner::totalsText() const {
    const int layers = int(m_arch.layers.size());
    if (!m_analysis.ok())
        return tr("%n problem(s) in %1 layers: the design cannot be trained or saved until they are fixed", "",
                  int(m_analysis.problems.size()))
            .arg(layers);
    return tr("%1 layers, %2 parameters, %3 MFLOPs per sample, output %4")
        .arg(layers)
        .arg(QLocale(QLocale::English).toString(qlonglong(m_analysis.totalParams)))
        .arg(double(m_analysis.totalFlops) / 1e6, 0, 'f', 2)
        .arg(QString::fromStdString(model::formatShape(m_analysis.outputShape)));
}

void ArchitectureDesigner::rebuildScene() {
    const QSignalBlocker block(m_scene); // the selection is restored below, not re-announced
    m_scene->clear();
    double lowest = 0;
    for (const auto& [name, at] : m_positions)
        lowest = std::max(lowest, at.y());
    for (const auto& layer : m_arch.layers) {
        auto [it, added] = m_positions.emplace(layer.name, QPointF(0, lowest + kRowGap));
        if (added)
            lowest += kRowGap;
        const auto problem = m_problemOf.find(layer.name);
        auto* node = new NodeItem(m_canvas, layer, problem == m_problemOf.end() ? QString() : problem->second);
        m_scene->addItem(node);
        node->setPos(it->second);
        node->setSelected(layer.name == m_selected);
    }
    for (const auto& layer : m_arch.layers)
        for (const auto& input : layer.inputs) {
            const auto shape = m_shapeOf.find(input);
            m_scene->addItem(new EdgeItem(input, layer.name,
                                          shape == m_shapeOf.end() || shape->second.empty()
                                              ? QString()
                                              : QString::fromStdString(model::formatShape(shape->second))));
        }
    updateEdges();
}

void ArchitectureDesigner::updateEdges() {
    std::map<std::string, NodeItem*> nodes;
    for (auto* item : m_scene->items())
        if (auto* node = dynamic_cast<NodeItem*>(item))
            nodes[node->name()] = node;
    for (auto* item : m_scene->items())
        if (auto* edge = dynamic_cast<EdgeItem*>(item)) {
            const auto from = nodes.find(edge->from()), to = nodes.find(edge->to());
            edge->setVisible(from != nodes.end() && to != nodes.end());
            if (edge->isVisible())
                edge->route(from->second->outputPort(), to->second->inputPort());
        }
}

void ArchitectureDesigner::nodeMoved(const std::string& name, QPointF position) {
    m_positions[name] = position;
    updateEdges();
}

void ArchitectureDesigner::autoLayout() {
    // Depth of each layer: one more than its deepest input (in as many sweeps as there are layers,
    // so that any order and any cycle ends).
    std::map<std::string, int> depth;
    for (const auto& layer : m_arch.layers)
        depth[layer.name] = 0;
    for (size_t sweep = 0; sweep < m_arch.layers.size(); ++sweep) {
        bool moved = false;
        for (const auto& layer : m_arch.layers)
            for (const auto& input : layer.inputs)
                if (depth.count(input) && depth[input] + 1 > depth[layer.name] &&
                    depth[input] + 1 <= int(m_arch.layers.size())) {
                    depth[layer.name] = depth[input] + 1;
                    moved = true;
                }
        if (!moved)
            break;
    }
    std::map<int, std::vector<std::string>> rows;
    for (const auto& layer : m_arch.layers)
        rows[depth[layer.name]].push_back(layer.name);
    for (const auto& [row, names] : rows)
        for (size_t i = 0; i < names.size(); ++i)
            m_positions[names[i]] = QPointF((double(i) - double(names.size() - 1) / 2) * kColumnGap, row * kRowGap);
    rebuildScene();
}

QString ArchitectureDesigner::uniqueName(const QString& type) const {
    const std::string base = type.toLower().toStdString();
    for (int n = 1;; ++n) {
        const std::string name = base + "_" + std::to_string(n);
        if (std::none_of(m_arch.layers.begin(), m_arch.layers.end(),
                         [&](const model::Layer& l) { return l.name == name; }))
            return QString::fromStdString(name);
    }
}

QString ArchitectureDesigner::addLayer(const QString& type, const QString& after, std::optional<QPointF> at) {
    std::string from = after.toStdString();
    if (from.empty())
        from = !m_selected.empty() ? m_selected : m_arch.layers.empty() ? std::string() : m_arch.layers.back().name;
    return placeLayer(type, from, at);
}

QString ArchitectureDesigner::dropLayer(const QString& type, QPointF at) {
    return placeLayer(type, {}, at); // where the user wants it, fed by nothing until wired
}

QString ArchitectureDesigner::placeLayer(const QString& type, const std::string& from, std::optional<QPointF> at) {
    const auto* info = model::findLayerType(type.toStdString());
    if (!info)
        return {};
    model::Layer layer;
    layer.name = uniqueName(type).toStdString();
    layer.type = info->name;
    for (const auto& p : info->params)
        if (const auto value = startingValue(p))
            layer.params[p.name] = *value;
    auto next = m_arch;
    if (info->minInputs > 0 && !from.empty() && findLayer(next, from))
        layer.inputs.push_back(from);
    if (at) {
        m_positions[layer.name] = *at;
    } else if (!layer.inputs.empty() && m_positions.count(from)) {
        // Below what feeds it; beside whatever already stands there.
        QPointF below = m_positions[from] + QPointF(0, kRowGap);
        while (std::any_of(m_positions.begin(), m_positions.end(),
                           [&](const auto& p) { return QLineF(p.second, below).length() < kNodeHeight; }))
            below += QPointF(kColumnGap, 0);
        m_positions[layer.name] = below;
    }
    next.layers.push_back(layer);
    m_selected = layer.name;
    commit(next, tr("Add %1").arg(QString::fromStdString(layer.name)));
    return QString::fromStdString(layer.name);
}

bool ArchitectureDesigner::connectLayers(const QString& from, const QString& to) {
    auto next = m_arch;
    auto* target = findLayer(next, to.toStdString());
    if (!target || !findLayer(next, from.toStdString()) || from == to)
        return false;
    auto& inputs = target->inputs;
    if (std::find(inputs.begin(), inputs.end(), from.toStdString()) != inputs.end())
        return false;
    const auto* info = model::findLayerType(target->type);
    if (info && info->maxInputs == 1)
        inputs.clear(); // a layer of one input is rewired, not given a second one
    inputs.push_back(from.toStdString());
    commit(next, tr("Connect %1 to %2").arg(from, to));
    return true;
}

bool ArchitectureDesigner::disconnectLayers(const QString& from, const QString& to) {
    auto next = m_arch;
    auto* target = findLayer(next, to.toStdString());
    if (!target)
        return false;
    auto& inputs = target->inputs;
    const auto it = std::find(inputs.begin(), inputs.end(), from.toStdString());
    if (it == inputs.end())
        return false;
    inputs.erase(it);
    commit(next, tr("Disconnect %1 from %2").arg(from, to));
    return true;
}

bool ArchitectureDesigner::removeLayer(const QString& name) {
    auto next = m_arch;
    const std::string n = name.toStdString();
    const auto it = std::find_if(next.layers.begin(), next.layers.end(),
                                 [&](const model::Layer& l) { return l.name == n; });
    if (it == next.layers.end())
        return false;
    next.layers.erase(it);
    for (auto& layer : next.layers)
        layer.inputs.erase(std::remove(layer.inputs.begin(), layer.inputs.end(), n), layer.inputs.end());
    if (next.output == n)
        next.output.clear();
    commit(next, tr("Delete %1").arg(name));
    return true;
}

bool ArchitectureDesigner::renameLayer(const QString& name, const QString& newName) {
    const std::string from = name.toStdString(), to = newName.trimmed().toStdString();
    auto next = m_arch;
    auto* layer = findLayer(next, from);
    if (!layer || to.empty() || from == to || findLayer(next, to))
        return false;
    layer->name = to;
    for (auto& other : next.layers)
        std::replace(other.inputs.begin(), other.inputs.end(), from, to);
    if (next.output == from)
        next.output = to;
    if (const auto at = m_positions.find(from); at != m_positions.end()) {
        m_positions[to] = at->second;
        m_positions.erase(at);
    }
    if (m_selected == from)
        m_selected = to;
    commit(next, tr("Rename %1 to %2").arg(name, newName));
    return true;
}

bool ArchitectureDesigner::setParam(const QString& layerName, const QString& param, const QString& text) {
    auto next = m_arch;
    auto* layer = findLayer(next, layerName.toStdString());
    if (!layer)
        return false;
    const std::string key = param.toStdString(), value = text.trimmed().toStdString();
    if (value.empty()) {
        if (!layer->params.erase(key))
            return false;
    } else {
        const auto parsed = model::parseParamText(value);
        const model::Param param = parsed ? *parsed : model::Param(value);
        const auto old = layer->params.find(key);
        if (old != layer->params.end() && old->second == param)
            return false;
        layer->params[key] = param;
    }
    commit(next, tr("Set %1.%2").arg(layerName, param));
    return true;
}

void ArchitectureDesigner::selectLayer(const QString& name) {
    for (auto* item : m_scene->items())
        if (auto* node = dynamic_cast<NodeItem*>(item))
            node->setSelected(node->name() == name.toStdString());
    for (auto* item : m_scene->items())
        if (auto* node = dynamic_cast<NodeItem*>(item); node && node->isSelected())
            m_canvas->ensureVisible(node);
}

QString ArchitectureDesigner::selectedLayer() const { return QString::fromStdString(m_selected); }

void ArchitectureDesigner::fillProperties() {
    m_filling = true;
    m_properties->setRowCount(0);
    model::Layer* layer = findLayer(m_arch, m_selected);
    if (layer) {
        const auto* info = model::findLayerType(layer->type);
        auto addRow = [&](const QString& name, const QString& value, const QString& fallback, const QString& tip,
                          bool editable) {
            const int row = m_properties->rowCount();
            m_properties->insertRow(row);
            auto* key = new QTableWidgetItem(name);
            key->setFlags(Qt::ItemIsEnabled);
            key->setToolTip(tip);
            auto* cell = new QTableWidgetItem(value);
            cell->setToolTip(tip);
            if (!editable)
                cell->setFlags(Qt::ItemIsEnabled);
            auto* def = new QTableWidgetItem(fallback);
            def->setFlags(Qt::ItemIsEnabled);
            def->setForeground(QColor(110, 110, 110));
            m_properties->setItem(row, 0, key);
            m_properties->setItem(row, 1, cell);
            m_properties->setItem(row, 2, def);
        };
        addRow("name", QString::fromStdString(layer->name), {}, tr("unique in the design"), true);
        addRow("type", QString::fromStdString(layer->type), {},
               info ? QString::fromUtf8(info->description) : tr("unknown type"), false);
        QStringList inputs;
        for (const auto& i : layer->inputs)
            inputs << QString::fromStdString(i);
        addRow("inputs", inputs.join(", "), {}, tr("drag from an output port onto this layer to connect"), false);
        const auto shape = m_shapeOf.find(layer->name);
        addRow("output",
               shape == m_shapeOf.end() ? QString("?") : QString::fromStdString(model::formatShape(shape->second)), {},
               tr("the shape this layer puts out, per sample"), false);
        if (info)
            for (const auto& p : info->params) {
                const auto value = layer->params.find(p.name);
                addRow(
                    QString::fromUtf8(p.name),
                    value == layer->params.end() ? QString() : QString::fromStdString(model::paramText(value->second)),
                    p.defaultValue ? QString::fromUtf8(p.defaultValue) : tr("required"),
                    QString::fromUtf8(p.description) + " (" + QString::fromUtf8(model::toString(p.type)) + ")", true);
            }
    }
    m_filling = false;
}

void ArchitectureDesigner::onPropertyEdited(int row, int column) {
    if (m_filling || column != 1)
        return;
    const QString layer = QString::fromStdString(m_selected);
    const QString key = m_properties->item(row, 0)->text();
    const QString value = m_properties->item(row, 1)->text();
    // After the table has finished with the edit: applying it refills the table.
    QMetaObject::invokeMethod(
        this,
        [this, layer, key, value] {
            const bool done = key == "name" ? renameLayer(layer, value) : setParam(layer, key, value);
            if (!done)
                fillProperties(); // show what the layer holds again
        },
        Qt::QueuedConnection);
}

QString ArchitectureDesigner::problemOf(const QString& layer) const {
    const auto it = m_problemOf.find(layer.toStdString());
    return it == m_problemOf.end() ? QString() : it->second;
}

QString ArchitectureDesigner::edgeLabel(const QString& from, const QString& to) const {
    for (auto* item : m_scene->items())
        if (auto* edge = dynamic_cast<EdgeItem*>(item);
            edge && edge->from() == from.toStdString() && edge->to() == to.toStdString())
            return edge->label();
    return {};
}

QPoint ArchitectureDesigner::portPoint(const QString& layer, bool output) const {
    for (auto* item : m_scene->items())
        if (auto* node = dynamic_cast<NodeItem*>(item); node && node->name() == layer.toStdString())
            return m_canvas->mapFromScene(output ? node->outputPort() : node->inputPort());
    return {-1, -1};
}

bool ArchitectureDesigner::loadTemplate(const QString& name, QString* error) {
    try {
        setArchitecture(model::loadArchitecture(session::resolveArchitecture(name.toStdString())));
        return true;
    } catch (const Error& e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
}

bool ArchitectureDesigner::importFile(const QString& path, QString* error) {
    try {
        std::ifstream in(path.toStdString(), std::ios::binary);
        if (!in)
            throw DataError(path.toStdString() + ": cannot be read");
        std::stringstream text;
        text << in.rdbuf();
        // Keras keeps a model as {"class_name": "Sequential", "config": ...}; mppdl's own has "layers".
        const bool keras = text.str().find("\"class_name\"") != std::string::npos &&
                           text.str().find("\"mppdl-architecture\"") == std::string::npos;
        setArchitecture(keras ? model::fromKerasJson(text.str(), path.toStdString())
                              : model::parseArchitecture(text.str(), path.toStdString()));
        return true;
    } catch (const Error& e) {
        if (error)
            *error = QString::fromUtf8(e.what());
        return false;
    }
}

bool ArchitectureDesigner::exportFile(const QString& path, bool keras, QString* error) const {
    auto fail = [&](const QString& why) {
        if (error)
            *error = why;
        return false;
    };
    for (const auto& layer : m_arch.layers)
        if (problemOf(QString::fromStdString(layer.name)).startsWith(tr("not connected")))
            return fail(
                tr("%1 is not connected: connect it or delete it first").arg(QString::fromStdString(layer.name)));
    std::string text;
    try {
        text = keras ? model::toKerasJson(m_arch) : model::toJson(m_arch);
    } catch (const Error& e) {
        return fail(QString::fromUtf8(e.what()));
    }
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate) ||
        file.write(text.data(), qint64(text.size())) != qint64(text.size()))
        return fail(tr("%1: cannot be written (%2)").arg(path, file.errorString()));
    return true;
}

int ArchitectureDesigner::saveVersion(store::Project& project, const QString& note, QString* error) {
    auto fail = [&](const QString& why) {
        if (error)
            *error = why;
        return 0;
    };
    if (m_arch.name.empty())
        return fail(tr("Give the architecture a name first."));
    if (!m_analysis.ok())
        return fail(tr("The design has %n problem(s); fix them first:\n", "", int(m_analysis.problems.size())) +
                    QString::fromStdString(formatProblems(m_analysis.problems)));
    try {
        const auto version = project.addArchitecture(m_arch.name, model::toJson(m_arch), note.toStdString());
        m_undo->setClean();
        return version.version;
    } catch (const Error& e) {
        return fail(QString::fromUtf8(e.what()));
    }
}

} // namespace mppdl::ui
