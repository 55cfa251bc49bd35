#include "ui/run_view.h"

#include "ui/format.h"

#include "mppdl/store/project.h"

#include <QFileDialog>
#include <QHBoxLayout>
#include <QLabel>
#include <QMap>
#include <QPainter>
#include <QPushButton>
#include <QVBoxLayout>

#include <qcustomplot.h>

namespace mppdl::ui {

namespace {

const QColor kTrain(31, 119, 180);      // blue
const QColor kValidation(255, 127, 14); // orange

/// `legendAt`: the corner the curves leave free (loss falls, accuracy rises).
QCustomPlot* makePlot(const QString& title, const QString& yLabel, Qt::Alignment legendAt, QWidget* parent) {
    auto* plot = new QCustomPlot(parent);
    plot->plotLayout()->insertRow(0);
    plot->plotLayout()->addElement(0, 0, new QCPTextElement(plot, title, QFont(plot->font().family(), 11, QFont::Bold)));
    plot->xAxis->setLabel(QObject::tr("epoch"));
    plot->yAxis->setLabel(yLabel);
    plot->legend->setVisible(true);
    plot->axisRect()->insetLayout()->setInsetAlignment(0, legendAt);
    plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    plot->setMinimumSize(320, 240);
    return plot;
}


/// (epoch -> value) of one metric of one segment (-1: the merged model).
using Series = QMap<int, double>;

void addSeries(QCustomPlot* plot, const Series& series, const QString& name, const QPen& pen, bool inLegend,
               double scale) {
    if (series.isEmpty())
        return;
    auto* graph = plot->addGraph();
    graph->setName(name);
    graph->setPen(pen);
    graph->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssCircle, series.size() > 30 ? 2 : 5));
    for (auto it = series.begin(); it != series.end(); ++it)
        graph->addData(it.key(), it.value() * scale);
    if (!inLegend)
        graph->removeFromLegend();
}

} // namespace

RunView::RunView(const store::Project& project, int64_t runId, QWidget* parent) : QWidget(parent), m_runId(runId) {
    m_summary = new QLabel(this);
    m_summary->setTextFormat(Qt::RichText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setWordWrap(true);
    m_loss = makePlot(tr("Loss"), tr("cross-entropy"), Qt::AlignTop | Qt::AlignRight, this);
    m_accuracy = makePlot(tr("Accuracy"), tr("accuracy (%)"), Qt::AlignBottom | Qt::AlignRight, this);
    auto* exportButton = new QPushButton(tr("Export PNG..."), this);
    connect(exportButton, &QPushButton::clicked, this, [this] {
        const auto path = QFileDialog::getSaveFileName(this, tr("Export the plots"), QString("run-%1.png").arg(m_runId),
                                                       tr("PNG images (*.png)"));
        if (!path.isEmpty())
            exportPng(path);
    });

    auto* plots = new QHBoxLayout;
    plots->addWidget(m_loss);
    plots->addWidget(m_accuracy);
    auto* top = new QHBoxLayout;
    top->addWidget(m_summary, 1);
    top->addWidget(exportButton, 0, Qt::AlignTop);
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addLayout(plots, 1);
    reload(project);
}

QString RunView::summaryText() const { return m_summary->text(); }

void RunView::reload(const store::Project& project) {
    const auto run = project.run(m_runId);
    if (!run) {
        m_summary->setText(tr("<b>Run %1 is not in this project.</b>").arg(m_runId));
        return;
    }
    // Only a run that has moved on is read again (the window refreshes every few seconds).
    const QString seen = QString("%1/%2/%3").arg(int(run->state)).arg(run->epochsDone).arg(run->heartbeat, 0, 'f', 3);
    if (seen == m_seen)
        return;
    m_seen = seen;
    QString dataset = tr("no dataset recorded");
    if (run->datasetId)
        if (const auto d = project.dataset(run->datasetId))
            dataset = QString::fromStdString(d->name + " (" + d->kind + ")").toHtmlEscaped();
    QString text = QString("<b>%1 %2</b> &mdash; %3<br>")
                       .arg(run->id)
                       .arg(QString::fromStdString(run->name).toHtmlEscaped())
                       .arg(QString::fromLatin1(store::toString(run->state)));
    text += tr("%1 version %2 on %3; %4, %5 segment(s); %6 of %7 epochs in %8 s<br>")
                .arg(QString::fromStdString(run->architectureName).toHtmlEscaped())
                .arg(run->architectureVersion)
                .arg(dataset)
                .arg(QString::fromStdString(run->strategy))
                .arg(run->segments)
                .arg(run->epochsDone)
                .arg(run->epochs)
                .arg(run->seconds, 0, 'f', 1);
    text += tr("best validation accuracy %1 (epoch %2), test accuracy %3")
                .arg(percentText(run->bestValAccuracy, tr("n/a")))
                .arg(run->bestEpoch)
                .arg(percentText(run->testAccuracy, tr("n/a")));
    if (!run->errorMessage.empty())
        text += "<br><span style='color:#b00020'>" +
                QString::fromStdString(run->errorKind + ": " + run->errorMessage).toHtmlEscaped() + "</span>";
    m_summary->setText(text);

    // Epoch metrics by (name, segment).
    QMap<QString, QMap<int, Series>> epochs;
    for (const auto& p : project.metrics(m_runId, "epoch"))
        epochs[QString::fromStdString(p.name)][p.segment][p.epoch] = p.value;
    for (auto* plot : {m_loss, m_accuracy})
        plot->clearGraphs();
    auto draw = [&](QCustomPlot* plot, const QString& metric, double scale) {
        // The segments first, thin and light, under the merged model's curves.
        const std::pair<QString, QColor> splits[] = {{"train_", kTrain}, {"val_", kValidation}};
        for (const auto& [name, color] : splits) {
            const auto& bySegment = epochs.value(name + metric);
            bool named = false; // one legend entry stands for all segments
            for (auto it = bySegment.begin(); it != bySegment.end(); ++it)
                if (it.key() >= 0) {
                    addSeries(plot, it.value(), named ? tr("segment %1").arg(it.key()) : tr("%1 (segments)").arg(name.chopped(1)),
                              QPen(color.lighter(150), 1), !named, scale);
                    named = true;
                }
        }
        addSeries(plot, epochs.value("train_" + metric).value(-1), tr("train"), QPen(kTrain, 2), true, scale);
        addSeries(plot, epochs.value("val_" + metric).value(-1), tr("validation"), QPen(kValidation, 2), true, scale);
        plot->rescaleAxes();
        // Whole epochs on the x axis, with a margin so that the first and last points show.
        plot->xAxis->setRange(plot->xAxis->range().lower - 0.5, plot->xAxis->range().upper + 0.5);
        auto ticker = QSharedPointer<QCPAxisTickerFixed>::create();
        ticker->setTickStep(1.0);
        ticker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
        plot->xAxis->setTicker(ticker);
        plot->yAxis->scaleRange(1.1, plot->yAxis->range().center());
        plot->replot();
    };
    draw(m_loss, "loss", 1.0);
    draw(m_accuracy, "accuracy", 100.0);
}

bool RunView::exportPng(const QString& path) const {
    const int width = 800, height = 500;
    QPixmap both(2 * width, height);
    both.fill(Qt::white);
    QPainter painter(&both);
    painter.drawPixmap(0, 0, m_loss->toPixmap(width, height));
    painter.drawPixmap(width, 0, m_accuracy->toPixmap(width, height));
    painter.end();
    return both.save(path, "PNG");
}

} // namespace mppdl::ui
