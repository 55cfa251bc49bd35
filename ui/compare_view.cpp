#include "ui/compare_view.h"

#include "ui/format.h"

#include "mppdl/store/project.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <map>

namespace mppdl::ui {

namespace {

/// Distinct colours for up to ten runs (the tab10 palette), then round again.
QColor runColor(size_t i) {
    static const QColor palette[] = {{31, 119, 180}, {255, 127, 14},  {44, 160, 44},   {214, 39, 40},  {148, 103, 189},
                                     {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
    return palette[i % (sizeof palette / sizeof palette[0])];
}

/// A run's configuration JSON as "key.sub" -> text, for the table.
void flatten(const QJsonValue& value, const QString& prefix, std::map<QString, QString>& out) {
    if (value.isObject()) {
        const auto object = value.toObject();
        for (auto it = object.begin(); it != object.end(); ++it)
            flatten(it.value(), prefix.isEmpty() ? it.key() : prefix + "." + it.key(), out);
    } else if (value.isArray()) {
        out[prefix] = QString::fromUtf8(QJsonDocument(value.toArray()).toJson(QJsonDocument::Compact));
    } else if (value.isDouble()) {
        out[prefix] = QString::number(value.toDouble(), 'g', 8);
    } else if (value.isBool()) {
        out[prefix] = value.toBool() ? "true" : "false";
    } else if (value.isNull()) {
        out[prefix] = "";
    } else {
        out[prefix] = value.toString();
    }
}

} // namespace

CompareView::CompareView(const store::Project& project, std::vector<int64_t> runIds, QWidget* parent)
    : QWidget(parent), m_runIds(std::move(runIds)) {
    m_metric = new QComboBox(this);
    m_metric->addItem(tr("validation accuracy"), "val_accuracy");
    m_metric->addItem(tr("validation loss"), "val_loss");
    m_metric->addItem(tr("train accuracy"), "train_accuracy");
    m_metric->addItem(tr("train loss"), "train_loss");
    m_axis = new QComboBox(this);
    m_axis->addItem(tr("against wall time"), true);
    m_axis->addItem(tr("against epoch"), false);
    connect(m_metric, &QComboBox::currentIndexChanged, this, &CompareView::draw);
    connect(m_axis, &QComboBox::currentIndexChanged, this, &CompareView::draw);

    m_plot = new QCustomPlot(this);
    m_plot->legend->setVisible(true);
    m_plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    m_plot->setMinimumSize(400, 260);
    m_table = new QTableWidget(this);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->verticalHeader()->setVisible(false);

    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("Plot"), this));
    controls->addWidget(m_metric);
    controls->addWidget(m_axis);
    controls->addStretch(1);
    auto* splitter = new QSplitter(Qt::Vertical, this);
    splitter->addWidget(m_plot);
    splitter->addWidget(m_table);
    splitter->setStretchFactor(0, 3);
    splitter->setStretchFactor(1, 2);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(controls);
    layout->addWidget(splitter, 1);
    reload(project);
}

void CompareView::reload(const store::Project& project) {
    m_series.clear();
    m_names.clear();
    // Rows: results first, then every configuration key any of the runs has.
    const QStringList results = {tr("state"),         tr("architecture"), tr("best validation accuracy"),
                                 tr("test accuracy"), tr("epochs done"),  tr("time (s)")};
    std::vector<std::map<QString, QString>> columns;
    std::map<QString, bool> configKeys;
    for (const auto id : m_runIds) {
        std::map<QString, QString> column;
        std::map<QString, std::vector<Point>> series;
        if (const auto run = project.run(id)) {
            m_names.push_back(QString("%1 %2").arg(run->id).arg(QString::fromStdString(run->name)));
            column[results[0]] = QString::fromLatin1(store::toString(run->state));
            column[results[1]] =
                QString("%1 v%2").arg(QString::fromStdString(run->architectureName)).arg(run->architectureVersion);
            column[results[2]] = percentText(run->bestValAccuracy);
            column[results[3]] = percentText(run->testAccuracy);
            column[results[4]] = QString::number(run->epochsDone);
            column[results[5]] = QString::number(run->seconds, 'f', 1);
            std::map<QString, QString> config;
            flatten(QJsonDocument::fromJson(QByteArray::fromStdString(run->config)).object(), {}, config);
            for (const auto& [key, value] : config) {
                // A search's space is the same for all its runs, its configuration repeats the
                // optimizer rows: only the search's name and place stay.
                if (key.startsWith("search.space") || key.startsWith("search.configuration"))
                    continue;
                column["config: " + key] = value;
                configKeys["config: " + key] = true;
            }
            for (const auto& p : project.metrics(id, "epoch"))
                if (p.segment < 0)
                    series[QString::fromStdString(p.name)].push_back({p.epoch, p.wallSeconds, p.value});
        } else {
            m_names.push_back(tr("%1 (not in this project)").arg(id));
        }
        columns.push_back(std::move(column));
        m_series.push_back(std::move(series));
    }
    QStringList rows = results;
    for (const auto& [key, unused] : configKeys)
        rows << key;

    m_table->clear();
    m_table->setRowCount(rows.size());
    m_table->setColumnCount(int(m_runIds.size()) + 1);
    QStringList header{tr("")};
    for (const auto& name : m_names)
        header << name;
    m_table->setHorizontalHeaderLabels(header);
    for (int r = 0; r < rows.size(); ++r) {
        auto* label = new QTableWidgetItem(rows[r]);
        bool differs = false;
        for (size_t c = 0; c < columns.size(); ++c) {
            const auto it = columns[c].find(rows[r]);
            const QString value = it == columns[c].end() ? QString() : it->second;
            m_table->setItem(r, int(c) + 1, new QTableWidgetItem(value));
            const auto first = columns[0].find(rows[r]);
            differs = differs || value != (first == columns[0].end() ? QString() : first->second);
        }
        if (differs) { // what sets the runs apart stands out
            QFont bold = label->font();
            bold.setBold(true);
            for (int c = 0; c < m_table->columnCount(); ++c) {
                QTableWidgetItem* cell = c == 0 ? label : m_table->item(r, c);
                cell->setBackground(QColor(255, 244, 200));
                cell->setFont(bold);
            }
        }
        label->setData(Qt::UserRole, differs);
        m_table->setItem(r, 0, label);
    }
    draw();
}

void CompareView::setMetric(const QString& metric, bool againstTime) {
    m_metric->setCurrentIndex(m_metric->findData(metric));
    m_axis->setCurrentIndex(m_axis->findData(againstTime));
    draw();
}

QStringList CompareView::differingRows() const {
    QStringList out;
    for (int r = 0; r < m_table->rowCount(); ++r)
        if (m_table->item(r, 0)->data(Qt::UserRole).toBool())
            out << m_table->item(r, 0)->text();
    return out;
}

void CompareView::draw() {
    const QString metric = m_metric->currentData().toString();
    const bool againstTime = m_axis->currentData().toBool();
    const bool accuracy = metric.endsWith("accuracy");
    m_plot->clearGraphs();
    for (size_t i = 0; i < m_series.size(); ++i) {
        auto* graph = m_plot->addGraph();
        graph->setName(m_names[i]);
        graph->setPen(QPen(runColor(i), 2));
        graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, 5));
        const auto it = m_series[i].find(metric);
        if (it == m_series[i].end())
            continue;
        for (const auto& p : it->second)
            graph->addData(againstTime ? p.seconds : double(p.epoch), accuracy ? p.value * 100.0 : p.value);
    }
    m_plot->xAxis->setLabel(againstTime ? tr("wall time (s)") : tr("epoch"));
    m_plot->yAxis->setLabel(m_metric->currentText() + (accuracy ? " (%)" : ""));
    m_plot->axisRect()->insetLayout()->setInsetAlignment(0,
                                                         (accuracy ? Qt::AlignBottom : Qt::AlignTop) | Qt::AlignRight);
    m_plot->rescaleAxes();
    m_plot->xAxis->scaleRange(1.1, m_plot->xAxis->range().center());
    m_plot->yAxis->scaleRange(1.1, m_plot->yAxis->range().center());
    m_plot->replot();
}

} // namespace mppdl::ui
