#include "ui/run_view.h"

#include "ui/format.h"

#include "mppdl/store/recorder.h"

#include <QComboBox>
#include <QDoubleSpinBox>
#include <QFile>
#include <QFileDialog>
#include <QTabWidget>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMap>
#include <QMenu>
#include <QPainter>
#include <QPdfWriter>
#include <QPushButton>
#include <QSplitter>
#include <QTableWidget>
#include <QTextStream>
#include <QVBoxLayout>

#include <qcustomplot.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace mppdl::ui {

namespace {

const QColor kTrain(31, 119, 180);      // blue
const QColor kValidation(255, 127, 14); // orange
constexpr int kRedrawMs = 250;          // live curves: at most four redraws a second

/// `legendAt`: the corner the curves leave free (loss falls, accuracy rises).
QCustomPlot* makePlot(const QString& title, const QString& yLabel, Qt::Alignment legendAt, QWidget* parent) {
    auto* plot = new QCustomPlot(parent);
    plot->plotLayout()->insertRow(0);
    plot->plotLayout()->addElement(0, 0,
                                   new QCPTextElement(plot, title, QFont(plot->font().family(), 11, QFont::Bold)));
    plot->yAxis->setLabel(yLabel);
    plot->legend->setVisible(true);
    plot->axisRect()->insetLayout()->setInsetAlignment(0, legendAt);
    plot->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    plot->setMinimumSize(320, 220);
    return plot;
}

/// (x, y) points of one curve, in x order.
using Curve = std::vector<std::pair<double, double>>;

/// TensorBoard's smoothing: an exponential moving average, debiased so that the first points are
/// not pulled towards zero.
Curve smoothed(const Curve& curve, double weight) {
    Curve out;
    out.reserve(curve.size());
    double last = 0;
    int n = 0;
    for (const auto& [x, y] : curve) {
        last = last * weight + (1 - weight) * y;
        ++n;
        out.emplace_back(x, last / (1 - std::pow(weight, n)));
    }
    return out;
}

QCPGraph* addCurve(QCustomPlot* plot, const Curve& curve, const QString& name, const QPen& pen, bool inLegend,
                   QCPScatterStyle::ScatterShape dots = QCPScatterStyle::ssNone) {
    if (curve.empty())
        return nullptr;
    auto* graph = plot->addGraph();
    graph->setName(name);
    graph->setPen(pen);
    if (dots != QCPScatterStyle::ssNone)
        graph->setScatterStyle(QCPScatterStyle(dots, curve.size() > 30 ? 2 : 5));
    QVector<double> keys, values;
    keys.reserve(int(curve.size()));
    values.reserve(int(curve.size()));
    for (const auto& [x, y] : curve) {
        keys << x;
        values << y;
    }
    graph->setData(keys, values, true);
    if (!inLegend)
        graph->removeFromLegend();
    return graph;
}

QString clockText(double seconds) {
    const auto s = qint64(std::llround(std::max(0.0, seconds)));
    return s >= 3600
               ? QString("%1:%2:%3").arg(s / 3600).arg(s / 60 % 60, 2, 10, QChar('0')).arg(s % 60, 2, 10, QChar('0'))
               : QString("%1:%2").arg(s / 60).arg(s % 60, 2, 10, QChar('0'));
}


} // namespace

RunView::RunView(const store::Project& project, int64_t runId, QWidget* parent, bool live)
    : QWidget(parent), m_runId(runId), m_live(live) {
    m_summary = new QLabel(this);
    m_summary->setTextFormat(Qt::RichText);
    m_summary->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_summary->setWordWrap(true);
    m_progress = new QLabel(this);
    m_progress->setObjectName("runProgress");
    m_stop = new QPushButton(tr("Stop"), this);
    m_stop->setToolTip(tr("Stop the run after its current minibatch; what it trained so far stays recorded"));
    m_stop->setVisible(false);
    connect(m_stop, &QPushButton::clicked, this, [this] {
        m_stop->setEnabled(false);
        m_stop->setText(tr("Stopping..."));
        Q_EMIT stopRequested(m_runId);
    });
    auto* exportButton = new QPushButton(tr("Export"), this);
    auto* exportMenu = new QMenu(exportButton);
    auto exportAs = [this](const QString& what, const QString& suffix, bool (RunView::*write)(const QString&) const) {
        const auto path = QFileDialog::getSaveFileName(this, what, QString("run-%1.%2").arg(m_runId).arg(suffix),
                                                       QString("%1 (*.%2)").arg(what, suffix));
        if (!path.isEmpty() && !(this->*write)(path))
            m_progress->setText(tr("Cannot write %1").arg(path));
    };
    exportMenu->addAction(tr("Plots as PNG..."), this, [=] { exportAs(tr("PNG images"), "png", &RunView::exportPng); });
    exportMenu->addAction(tr("Plots as PDF..."), this,
                          [=] { exportAs(tr("PDF documents"), "pdf", &RunView::exportPdf); });
    exportMenu->addAction(tr("Series as CSV..."), this, [=] { exportAs(tr("CSV files"), "csv", &RunView::exportCsv); });
#ifdef MPPDL_WITH_ONNX
    exportMenu->addSeparator();
    exportMenu->addAction(tr("Model as ONNX..."), this, [this] { Q_EMIT modelExportRequested(m_runId); });
#endif
    exportButton->setMenu(exportMenu);

    m_axisBox = new QComboBox(this);
    m_axisBox->addItems({tr("epoch"), tr("iteration"), tr("wall time")});
    connect(m_axisBox, &QComboBox::currentIndexChanged, this, [this](int index) { setAxis(Axis(index)); });
    m_smoothingBox = new QDoubleSpinBox(this);
    m_smoothingBox->setRange(0.0, 0.99);
    m_smoothingBox->setSingleStep(0.05);
    m_smoothingBox->setValue(m_smoothing);
    m_smoothingBox->setToolTip(tr("Exponential moving average of the per-minibatch curves (0: raw)"));
    connect(m_smoothingBox, &QDoubleSpinBox::valueChanged, this, &RunView::setSmoothing);

    m_loss = makePlot(tr("Loss"), tr("cross-entropy"), Qt::AlignTop | Qt::AlignRight, this);
    m_accuracy = makePlot(tr("Accuracy"), tr("accuracy (%)"), Qt::AlignBottom | Qt::AlignRight, this);

    m_segments = new QTableWidget(0, 7, this); // and a column per class of the shards
    m_segments->setHorizontalHeaderLabels({tr("rows"), tr("seconds"), tr("images/s"), tr("train loss"),
                                           tr("train acc."), tr("divergence"), tr("val. acc.")});
    m_segments->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_segments->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_segments->verticalHeader()->setDefaultSectionSize(m_segments->fontMetrics().height() + 6);
    m_confusion = new QTableWidget(0, 0, this);
    m_confusion->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_confusion->setToolTip(tr("Double-click a cell for its samples"));
    connect(m_confusion, &QTableWidget::cellActivated, this, [this](int row, int column) {
        if (m_evaluation)
            Q_EMIT samplesRequested(m_runId, m_evaluationEpoch, row, column);
    });
    m_confusion->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_confusion->verticalHeader()->setDefaultSectionSize(m_confusion->fontMetrics().height() + 4);
    m_confusion->verticalHeader()->setSectionResizeMode(QHeaderView::Fixed);
    // Below the plots, one at a time: each segment's last epoch, the last evaluation's confusion matrix.
    m_details = new QTabWidget(this);
    m_details->addTab(m_segments, tr("Segments (last epoch)"));
    auto* confusionPage = new QWidget(this);
    auto* confusionLayout = new QVBoxLayout(confusionPage);
    confusionLayout->setContentsMargins(4, 4, 4, 4);
    m_confusionTitle = new QLabel(confusionPage);
    confusionLayout->addWidget(m_confusionTitle);
    confusionLayout->addWidget(m_confusion, 1);
    m_details->addTab(confusionPage, tr("Confusion matrix"));
    m_divergence = makePlot(tr("Replica divergence"), tr("L2 distance from the merged weights"),
                            Qt::AlignTop | Qt::AlignRight, this);
    m_divergence->setMinimumSize(320, 160);
    m_details->addTab(m_divergence, tr("Divergence"));
    for (int tab = 0; tab < m_details->count(); ++tab) // each appears once it has something to show
        m_details->setTabVisible(tab, false);

    auto* top = new QHBoxLayout;
    top->addWidget(m_summary, 1);
    top->addWidget(m_stop, 0, Qt::AlignTop);
    top->addWidget(exportButton, 0, Qt::AlignTop);
    auto* controls = new QHBoxLayout;
    controls->addWidget(new QLabel(tr("x axis:"), this));
    controls->addWidget(m_axisBox);
    controls->addSpacing(12);
    controls->addWidget(new QLabel(tr("smoothing:"), this));
    controls->addWidget(m_smoothingBox);
    controls->addSpacing(12);
    controls->addWidget(m_progress, 1);
    auto* plots = new QWidget(this);
    auto* plotRow = new QHBoxLayout(plots);
    plotRow->setContentsMargins(0, 0, 0, 0);
    plotRow->addWidget(m_loss);
    plotRow->addWidget(m_accuracy);
    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(plots);
    split->addWidget(m_details);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 1);
    split->setSizes({340, 260});
    auto* layout = new QVBoxLayout(this);
    layout->addLayout(top);
    layout->addLayout(controls);
    layout->addWidget(split, 1);

    m_redrawTimer.setSingleShot(true);
    m_redrawTimer.setInterval(kRedrawMs);
    connect(&m_redrawTimer, &QTimer::timeout, this, &RunView::redraw);
    reload(project);
}

QString RunView::summaryText() const { return m_summary->text(); }
QString RunView::progressText() const { return m_progress->text(); }

void RunView::setStoppable(bool stoppable) {
    m_stop->setVisible(stoppable);
    m_stop->setEnabled(stoppable);
    m_stop->setText(tr("Stop"));
}

void RunView::setAxis(Axis axis) {
    m_axis = axis;
    if (m_axisBox->currentIndex() != int(axis))
        m_axisBox->setCurrentIndex(int(axis)); // calls back here once more
    redraw();
}

void RunView::setSmoothing(double weight) {
    m_smoothing = std::clamp(weight, 0.0, 0.99);
    if (std::abs(m_smoothingBox->value() - m_smoothing) > 1e-9)
        m_smoothingBox->setValue(m_smoothing);
    redraw();
}

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
    m_run = run;
    QString dataset = tr("no dataset recorded");
    if (run->datasetId)
        if (const auto d = project.dataset(run->datasetId)) {
            dataset = QString::fromStdString(d->name + " (" + d->kind + ")").toHtmlEscaped();
            m_classNames.clear();
            for (const auto& c : d->classNames)
                m_classNames << QString::fromStdString(c);
        }
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

    if (!m_live) {
        m_points = project.metrics(m_runId);
        const auto evaluations = project.evaluations(m_runId);
        m_evaluation = evaluations.empty() ? nullptr
                                           : std::make_shared<const Evaluation>(evaluations.back().evaluation);
        m_evaluationEpoch = evaluations.empty() ? 0 : evaluations.back().epoch;
        // Steps per epoch from the first epoch's end: where a minibatch point falls in epochs.
        for (const auto& p : m_points)
            if (p.kind == "epoch" && p.segment < 0 && p.epoch > 0 && p.step > 0) {
                m_stepsPerEpoch = p.step / p.epoch;
                break;
            }
    }
    redraw();
}

void RunView::appendEvents(const std::vector<RunEvent>& batch) {
    for (const auto& event : batch) {
        const auto points = store::metricPoints(event);
        m_points.insert(m_points.end(), points.begin(), points.end());
        switch (event.kind) {
        case EventKind::Progress:
            m_lastProgress = event;
            if (event.stepsPerEpoch > 0)
                m_stepsPerEpoch = event.stepsPerEpoch;
            break;
        case EventKind::Epoch:
            if (event.segment < 0 && m_lastProgress) { // the epoch's end is the latest progress
                m_lastProgress->epoch = event.epoch;
                m_lastProgress->step = event.step;
                m_lastProgress->stepInEpoch = event.stepsPerEpoch;
                m_lastProgress->wallSeconds = event.wallSeconds;
                for (auto& m : m_lastProgress->metrics)
                    if (m.name == "eta_seconds")
                        m.value = event.metric("eta_seconds", m.value);
            }
            break;
        case EventKind::Evaluation:
            m_evaluation = event.evaluation;
            m_evaluationEpoch = event.epoch;
            break;
        case EventKind::Finished:
            m_ending = tr("finished in %1").arg(clockText(event.wallSeconds));
            setStoppable(false);
            break;
        case EventKind::Cancelled:
            m_ending = tr("stopped after %1").arg(clockText(event.wallSeconds));
            setStoppable(false);
            break;
        case EventKind::Failed:
            m_ending = tr("failed: %1").arg(QString::fromStdString(event.message));
            setStoppable(false);
            break;
        default: break;
        }
    }
    scheduleRedraw();
}

void RunView::scheduleRedraw() {
    if (!m_redrawTimer.isActive())
        m_redrawTimer.start();
}

void RunView::redraw() {
    m_redrawTimer.stop();
    drawPlot(m_loss, "loss", 1.0);
    drawPlot(m_accuracy, "accuracy", 100.0);
    fillSegments();
    fillConfusion();
    drawDivergence();
    bool any = false;
    for (int tab = 0; tab < m_details->count(); ++tab)
        any = any || m_details->isTabVisible(tab);
    m_details->setVisible(any);
    updateProgressLabel();
}

void RunView::drawPlot(QCustomPlot* plot, const QString& metric, double scale) {
    // Curves by (kind, name, segment), x as the axis asks.
    QMap<QString, QMap<int, Curve>> epochCurves, stepCurves;
    const std::string trainName = "train_" + metric.toStdString(), valName = "val_" + metric.toStdString();
    for (const auto& p : m_points) {
        if (p.name != trainName && p.name != valName)
            continue;
        const bool epochPoint = p.kind == "epoch";
        if (!epochPoint && p.kind != "progress")
            continue;
        const double x = xOf(p);
        if (std::isnan(x))
            continue; // where in its epoch a minibatch falls is not known yet
        (epochPoint ? epochCurves : stepCurves)[QString::fromStdString(p.name)][p.segment].emplace_back(x, p.value *
                                                                                                               scale);
    }
    plot->clearGraphs();
    // The segments first, thin and light, under the merged model's curves; one legend entry stands
    // for all segments.
    const std::pair<QString, QColor> splits[] = {{"train_", kTrain}, {"val_", kValidation}};
    for (const auto& [split, color] : splits) {
        const auto& bySegment = epochCurves.value(split + metric);
        bool named = false;
        for (auto it = bySegment.begin(); it != bySegment.end(); ++it)
            if (it.key() >= 0) {
                addCurve(plot, it.value(),
                         named ? tr("segment %1").arg(it.key()) : tr("%1 (segments)").arg(split.chopped(1)),
                         QPen(color.lighter(150), 1), !named, QCPScatterStyle::ssCircle);
                named = true;
            }
    }
    // Per minibatch: the running mean within each epoch, raw and faint under its smoothed curve.
    const Curve steps = stepCurves.value("train_" + metric).value(-1);
    if (!steps.empty()) {
        QColor faint = kTrain.lighter(160);
        faint.setAlpha(110);
        if (m_smoothing > 0) {
            addCurve(plot, steps, tr("train (minibatches, raw)"), QPen(faint, 1), false);
            addCurve(plot, smoothed(steps, m_smoothing), tr("train (minibatches)"), QPen(kTrain.lighter(130), 1.5),
                     true);
        } else {
            addCurve(plot, steps, tr("train (minibatches)"), QPen(kTrain.lighter(130), 1.5), true);
        }
    }
    addCurve(plot, epochCurves.value("train_" + metric).value(-1), tr("train"), QPen(kTrain, 2), true,
             QCPScatterStyle::ssCircle);
    addCurve(plot, epochCurves.value("val_" + metric).value(-1), tr("validation"), QPen(kValidation, 2), true,
             QCPScatterStyle::ssCircle);

    setXAxis(plot);
}

double RunView::xOf(const store::MetricPoint& p) const {
    switch (m_axis) {
    case Axis::Epoch:
        if (p.kind == "epoch")
            return p.epoch;
        return m_stepsPerEpoch > 0 ? double(p.step) / double(m_stepsPerEpoch) : std::nan("");
    case Axis::Step: return double(p.step);
    case Axis::WallTime: return p.wallSeconds;
    }
    return 0;
}

void RunView::setXAxis(QCustomPlot* plot) const {
    plot->rescaleAxes();
    switch (m_axis) {
    case Axis::Epoch: {
        plot->xAxis->setLabel(tr("epoch"));
        // Whole epochs on the x axis, with a margin so that the first and last points show.
        plot->xAxis->setRange(std::min(0.5, plot->xAxis->range().lower - 0.5), plot->xAxis->range().upper + 0.5);
        auto ticker = QSharedPointer<QCPAxisTickerFixed>::create();
        ticker->setTickStep(1.0);
        ticker->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
        plot->xAxis->setTicker(ticker);
        break;
    }
    case Axis::Step:
        plot->xAxis->setLabel(tr("iteration (minibatches)"));
        plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
        break;
    case Axis::WallTime:
        plot->xAxis->setLabel(tr("wall time (s)"));
        plot->xAxis->setTicker(QSharedPointer<QCPAxisTicker>::create());
        break;
    }
    if (m_axis != Axis::Epoch)
        plot->xAxis->setRangeLower(0);
    plot->yAxis->scaleRange(1.1, plot->yAxis->range().center());
    plot->replot(QCustomPlot::rpQueuedReplot);
}

void RunView::drawDivergence() {
    // Each segment's distance from the merged model at its joins, epoch by epoch: a segment whose
    // shard pulls it away from the others shows here first.
    QMap<int, Curve> bySegment;
    for (const auto& p : m_points)
        if (p.kind == "epoch" && p.segment >= 0 && p.name == "divergence")
            bySegment[p.segment].emplace_back(xOf(p), p.value);
    m_divergence->clearGraphs();
    static const QColor palette[] = {QColor(31, 119, 180),  QColor(255, 127, 14),  QColor(44, 160, 44),
                                     QColor(214, 39, 40),   QColor(148, 103, 189), QColor(140, 86, 75),
                                     QColor(227, 119, 194), QColor(127, 127, 127)};
    const bool named = bySegment.size() <= 8; // a legend for a few segments, not for many
    for (auto it = bySegment.begin(); it != bySegment.end(); ++it)
        addCurve(m_divergence, it.value(), tr("segment %1").arg(it.key()), QPen(palette[it.key() % 8], 1.5), named,
                 QCPScatterStyle::ssCircle);
    m_details->setTabVisible(2, !bySegment.isEmpty());
    setXAxis(m_divergence);
}

void RunView::fillSegments() {
    // Each segment's figures of the latest epoch it reported, and its shard's class histogram
    // (reported with the first epoch).
    static const char* const kClassPrefix = "rows_of_class_";
    int last = 0;
    for (const auto& p : m_points)
        if (p.kind == "epoch" && p.segment >= 0)
            last = std::max(last, p.epoch);
    QMap<int, QMap<QString, double>> rows;
    QMap<int, QMap<int, double>> classes; // segment -> class -> rows
    int numClasses = 0;
    for (const auto& p : m_points) {
        if (p.kind != "epoch" || p.segment < 0)
            continue;
        if (p.epoch == last)
            rows[p.segment][QString::fromStdString(p.name)] = p.value;
        if (p.name.rfind(kClassPrefix, 0) == 0) {
            const int c = std::atoi(p.name.c_str() + std::strlen(kClassPrefix));
            classes[p.segment][c] = p.value;
            numClasses = std::max(numClasses, c + 1);
        }
    }
    static const char* const columns[] = {"rows",           "segment_seconds", "images_per_sec", "train_loss",
                                          "train_accuracy", "divergence",      "val_accuracy"};
    constexpr int kFixed = 7;
    m_segments->setColumnCount(kFixed + numClasses);
    for (int c = 0; c < numClasses; ++c)
        m_segments->setHorizontalHeaderItem(
            kFixed + c, new QTableWidgetItem(c < m_classNames.size() ? m_classNames[c] : tr("class %1").arg(c)));
    double most = 1;
    for (const auto& perClass : classes)
        for (const auto count : perClass)
            most = std::max(most, count);
    m_segments->setRowCount(int(rows.size()));
    int r = 0;
    for (auto it = rows.begin(); it != rows.end(); ++it, ++r) {
        m_segments->setVerticalHeaderItem(r, new QTableWidgetItem(tr("segment %1").arg(it.key())));
        for (int c = 0; c < kFixed; ++c) {
            const QString name = columns[c];
            if (!it.value().contains(name)) {
                m_segments->setItem(r, c, numberItem(QString()));
                continue;
            }
            const double v = it.value().value(name);
            QString text;
            if (name == "rows")
                text = QString::number(qint64(v));
            else if (name.endsWith("accuracy"))
                text = percentText(v);
            else if (name == "images_per_sec")
                text = QString::number(v, 'f', 0);
            else if (name == "divergence")
                text = QString::number(v, 'g', 3);
            else
                text = QString::number(v, 'f', 3);
            m_segments->setItem(r, c, numberItem(text));
        }
        // The shard's rows of each class, shaded by count: a non-IID distribution is a diagonal.
        for (int c = 0; c < numClasses; ++c) {
            const double count = classes.value(it.key()).value(c);
            auto* item = numberItem(QString::number(qint64(count)));
            QColor shade(31, 119, 180);
            shade.setAlphaF(float(count / most * 0.6));
            item->setBackground(shade);
            m_segments->setItem(r, kFixed + c, item);
        }
    }
    for (int c = 0; c < kFixed; ++c) // only the figures this strategy reports
        m_segments->setColumnHidden(c, std::none_of(rows.begin(), rows.end(), [&](const QMap<QString, double>& row) {
                                        return row.contains(columns[c]);
                                    }));
    m_details->setTabVisible(0, !rows.isEmpty());
}

void RunView::fillConfusion() {
    const bool had = m_details->isTabVisible(1);
    if (!m_evaluation || m_evaluation->numClasses() == 0) {
        m_confusion->setRowCount(0);
        m_confusion->setColumnCount(0);
        m_details->setTabVisible(1, false);
        return;
    }
    const auto& e = *m_evaluation;
    const int n = int(e.numClasses());
    m_confusionTitle->setText(tr("%1 split: %2 samples, accuracy %3 (rows: true class, columns: predicted)")
                                  .arg(QString::fromStdString(e.split))
                                  .arg(e.samples)
                                  .arg(percentText(e.accuracy)));
    QStringList names;
    for (const auto& c : e.classNames)
        names << QString::fromStdString(c);
    m_confusion->setRowCount(n);
    m_confusion->setColumnCount(n);
    m_confusion->setHorizontalHeaderLabels(names);
    m_confusion->setVerticalHeaderLabels(names);
    for (int t = 0; t < n; ++t) {
        int64_t rowTotal = 0;
        for (int p = 0; p < n; ++p)
            rowTotal += e.confusion[size_t(t * n + p)];
        for (int p = 0; p < n; ++p) {
            const int64_t count = e.confusion[size_t(t * n + p)];
            auto* item = numberItem(QString::number(count));
            // Shade by the share of the true class: the diagonal green, confusions red.
            const double share = rowTotal > 0 ? double(count) / double(rowTotal) : 0.0;
            const QColor base = t == p ? QColor(46, 139, 87) : QColor(200, 40, 40);
            QColor shade = base;
            shade.setAlphaF(float(t == p ? share : std::min(1.0, share * 4)));
            item->setBackground(shade);
            item->setToolTip(tr("%1 of %2 %3 predicted as %4 (%5); double-click for the samples")
                                 .arg(count)
                                 .arg(rowTotal)
                                 .arg(names[t], names[p], percentText(share)));
            m_confusion->setItem(t, p, item);
        }
    }
    m_details->setTabVisible(1, true);
    if (!had) // the run's verdict, once it has one
        m_details->setCurrentIndex(1);
}

void RunView::updateProgressLabel() {
    QString text;
    if (!m_ending.isEmpty()) {
        text = m_ending;
    } else if (m_lastProgress) {
        const auto& e = *m_lastProgress;
        text = tr("epoch %1/%2, step %3/%4").arg(e.epoch).arg(e.epochs).arg(e.stepInEpoch).arg(e.stepsPerEpoch);
        if (e.hasMetric("images_per_sec"))
            text += tr(", %1 images/s").arg(e.metric("images_per_sec"), 0, 'f', 0);
        text += tr(", elapsed %1").arg(clockText(e.wallSeconds));
        if (e.hasMetric("eta_seconds"))
            text += tr(", ETA %1").arg(clockText(e.metric("eta_seconds")));
    } else if (m_live) {
        text = tr("loading the data...");
    } else if (m_run && m_run->state == store::RunState::Running) {
        // Trained by another process: what it has recorded so far.
        for (auto it = m_points.rbegin(); it != m_points.rend(); ++it)
            if (it->kind == "progress" && it->segment < 0 && it->name == "images_per_sec") {
                text = tr("epoch %1, step %2, %3 images/s (recorded by another process)")
                           .arg(it->epoch)
                           .arg(it->step)
                           .arg(it->value, 0, 'f', 0);
                break;
            }
    }
    m_progress->setText(text);
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

bool RunView::exportPdf(const QString& path) const {
    const int width = 800, height = 500;
    QPdfWriter pdf(path);
    pdf.setTitle(QString("mppdl run %1").arg(m_runId));
    pdf.setPageSize(QPageSize(QSizeF(2 * width, height), QPageSize::Point, QString(), QPageSize::ExactMatch));
    pdf.setPageMargins(QMarginsF(0, 0, 0, 0));
    pdf.setResolution(72); // one point per pixel of the plots' layout
    QCPPainter painter;
    if (!painter.begin(&pdf))
        return false;
    painter.setMode(QCPPainter::pmVectorized);
    painter.setMode(QCPPainter::pmNoCaching);
    m_loss->toPainter(&painter, width, height);
    painter.translate(width, 0);
    m_accuracy->toPainter(&painter, width, height);
    return painter.end();
}

bool RunView::exportCsv(const QString& path) const {
    QFile file(path);
    if (!file.open(QIODevice::WriteOnly | QIODevice::Truncate | QIODevice::Text))
        return false;
    QTextStream out(&file);
    out << "segment,epoch,step,kind,metric,value,wall_seconds\n";
    for (const auto& p : m_points)
        out << p.segment << ',' << p.epoch << ',' << p.step << ',' << QString::fromStdString(p.kind) << ','
            << QString::fromStdString(p.name) << ',' << QString::number(p.value, 'g', 17) << ','
            << QString::number(p.wallSeconds, 'g', 17) << '\n';
    out.flush();
    return file.error() == QFile::NoError;
}

} // namespace mppdl::ui
