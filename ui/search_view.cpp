#include "ui/search_view.h"

#include "ui/format.h"

#include "mppdl/core/error.h"
#include "mppdl/store/project.h"
#include "mppdl/tune/search_session.h"

#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPushButton>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <map>

namespace mppdl::ui {

namespace {

enum Column {
    Rank,
    Run,
    Architecture,
    Optimizer,
    Lr,
    Momentum,
    WeightDecay,
    Batch,
    Bracket,
    Epochs,
    Val,
    Test,
    Time,
    State,
    Columns
};

QString number(double v) { return QString::number(v, 'g', 6); }

/// The colour of a row's state: what trains stands out, what Hyperband stopped is grey.
QColor stateColor(const std::string& state) {
    if (state == "training")
        return {30, 110, 200};
    if (state == "stopped" || state == "queued")
        return {130, 130, 130};
    if (state == "failed" || state == "cancelled" || state == "interrupted")
        return {190, 40, 40};
    return {0, 0, 0};
}

} // namespace

SearchView::SearchView(const store::Project& project, const QString& name, QWidget* parent)
    : QWidget(parent), m_name(name) {
    m_summary = new QLabel(this);
    m_summary->setWordWrap(true);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_table = new QTableWidget(this);
    m_table->setColumnCount(Columns);
    m_table->setHorizontalHeaderLabels({tr("#"), tr("run"), tr("architecture"), tr("optimizer"), tr("lr"),
                                        tr("momentum"), tr("weight decay"), tr("batch"), tr("bracket"), tr("epochs"),
                                        tr("val acc"), tr("test acc"), tr("time (s)"), tr("state")});
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::ExtendedSelection);
    m_table->verticalHeader()->setVisible(false);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setStretchLastSection(true);
    connect(m_table, &QTableWidget::cellDoubleClicked, this,
            [this](int row, int) { Q_EMIT runActivated(m_table->item(row, Run)->data(Qt::UserRole).toLongLong()); });
    m_plot = new QCustomPlot(this);
    m_plot->setMinimumSize(400, 220);
    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    m_plot->xAxis->setLabel(tr("epoch"));
    m_plot->yAxis->setLabel(tr("validation accuracy (%)"));

    m_compare = new QPushButton(tr("Compare Selected"), this);
    m_compare->setToolTip(tr("Compare the selected runs' curves and configurations (the best three when none is "
                             "selected)"));
    connect(m_compare, &QPushButton::clicked, this, [this] { Q_EMIT compareRequested(runsToCompare()); });
    auto* open = new QPushButton(tr("Open Run"), this);
    connect(open, &QPushButton::clicked, this, [this] {
        const int row = m_table->currentRow();
        if (row >= 0)
            Q_EMIT runActivated(m_table->item(row, Run)->data(Qt::UserRole).toLongLong());
    });
    auto* buttons = new QHBoxLayout;
    buttons->addWidget(m_summary, 1);
    buttons->addWidget(open);
    buttons->addWidget(m_compare);

    auto* splitter = new QSplitter(Qt::Vertical, this);
    splitter->addWidget(m_table);
    splitter->addWidget(m_plot);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(buttons);
    layout->addWidget(splitter, 1);
    reload(project);
}

void SearchView::reload(const store::Project& project) {
    tune::SearchProgress search;
    try {
        search = tune::recordedSearch(project, m_name.toStdString());
    } catch (const Error& e) {
        m_summary->setText(QString::fromUtf8(e.what()));
        m_table->setRowCount(0);
        return;
    }
    m_runIds.clear();
    for (const auto& r : search.rows)
        m_runIds.push_back(r.runId);
    const auto board = search.leaderboard();
    const bool hyperband = search.search == "hyperband";
    m_table->setColumnHidden(Bracket, !hyperband);

    // Keep the selection across a reload (by run).
    QList<qint64> selected;
    for (const auto& index : m_table->selectionModel()->selectedRows())
        selected << m_table->item(index.row(), Run)->data(Qt::UserRole).toLongLong();
    m_table->setRowCount(int(board.size()));
    int finished = 0, training = 0, stopped = 0;
    for (int row = 0; row < int(board.size()); ++row) {
        const auto& r = board[size_t(row)];
        finished += r.state == "finished";
        training += r.state == "training";
        stopped += r.state == "stopped";
        const auto& c = r.configuration;
        std::vector<QTableWidgetItem*> cells(Columns);
        cells[Rank] = numberItem(QString::number(row + 1));
        cells[Run] = new QTableWidgetItem(QString("%1  %2").arg(r.runId).arg(QString::fromStdString(r.runName)));
        cells[Run]->setData(Qt::UserRole, qint64(r.runId));
        cells[Architecture] = new QTableWidgetItem(QString::fromStdString(c.architecture));
        cells[Optimizer] = new QTableWidgetItem(QString::fromStdString(c.optimizer));
        cells[Lr] = numberItem(number(c.lr));
        cells[Momentum] = numberItem(number(c.momentum));
        cells[WeightDecay] = numberItem(number(c.weightDecay));
        cells[Batch] = numberItem(QString::number(c.batchSize));
        cells[Bracket] = numberItem(r.bracket >= 0 ? QString::number(r.bracket) : QString());
        cells[Epochs] = numberItem(QString("%1/%2").arg(r.status.epochsDone).arg(c.epochs));
        cells[Val] = numberItem(percentText(r.status.valAccuracy, "-"));
        cells[Test] = numberItem(percentText(r.testAccuracy, "-"));
        cells[Time] = numberItem(QString::number(r.status.seconds, 'f', 1));
        cells[State] = new QTableWidgetItem(QString::fromStdString(r.state));
        for (int col = 0; col < Columns; ++col) {
            cells[size_t(col)]->setForeground(stateColor(r.state));
            m_table->setItem(row, col, cells[size_t(col)]);
        }
        if (row == 0 && r.status.valAccuracy) { // the leader
            QFont bold = m_table->font();
            bold.setBold(true);
            for (int col = 0; col < Columns; ++col)
                m_table->item(row, col)->setFont(bold);
        }
        if (selected.contains(qint64(r.runId)))
            m_table->selectRow(row);
    }

    QString text = tr("<b>%1</b>: %2 search, %3")
                       .arg(m_name, QString::fromStdString(search.search), QString::fromStdString(search.scheduler));
    if (search.scheduler != "sequential")
        text += tr(" over %1 segments").arg(search.segments);
    text += tr("; %1 configurations: %2 finished").arg(board.size()).arg(finished);
    if (stopped)
        text += tr(", %1 stopped early").arg(stopped);
    if (training)
        text += tr(", %1 training").arg(training);
    text += tr("; %1 of %2 epochs").arg(search.epochsDone).arg(search.epochsPlanned);
    if (!board.empty() && board.front().status.valAccuracy)
        text += tr("; best %1 (validation %2, test %3)")
                    .arg(QString::fromStdString(board.front().runName), percentText(board.front().status.valAccuracy),
                         percentText(board.front().testAccuracy, "-"));
    m_summary->setText(text);

    // Every run's validation accuracy against the epoch: the leader in colour, the rest grey.
    m_plot->clearGraphs();
    const int64_t leader = board.empty() ? 0 : board.front().runId;
    for (const auto& r : search.rows) {
        auto* graph = m_plot->addGraph();
        const bool best = r.runId == leader;
        graph->setPen(best ? QPen(QColor(214, 39, 40), 2.5) : QPen(QColor(150, 150, 150, 160), 1.2));
        graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssDisc, best ? 5 : 3));
        for (const auto& p : project.metrics(r.runId, "epoch"))
            if (p.segment < 0 && p.name == "val_accuracy")
                graph->addData(double(p.epoch), p.value * 100.0);
        if (best)
            graph->setName(QString::fromStdString(r.runName));
    }
    m_plot->rescaleAxes();
    m_plot->xAxis->scaleRange(1.1, m_plot->xAxis->range().center());
    m_plot->yAxis->scaleRange(1.1, m_plot->yAxis->range().center());
    m_plot->replot();
}

QList<qint64> SearchView::runsToCompare() const {
    QList<qint64> out;
    for (int row = 0; row < m_table->rowCount(); ++row) // table order: best first
        if (m_table->item(row, Run)->isSelected())
            out << m_table->item(row, Run)->data(Qt::UserRole).toLongLong();
    if (out.isEmpty())
        for (int row = 0; row < std::min(3, m_table->rowCount()); ++row)
            out << m_table->item(row, Run)->data(Qt::UserRole).toLongLong();
    return out;
}

} // namespace mppdl::ui
