#pragma once

#include "mppdl/store/project.h"
#include "mppdl/core/events.h"

#include <QTimer>
#include <QWidget>

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

class QComboBox;
class QCustomPlot;
class QDoubleSpinBox;
class QLabel;
class QPushButton;
class QTableWidget;
class QTabWidget;

namespace mppdl::ui {

/// One run, recorded or training: what it is (architecture, data, strategy, state, results), its
/// loss and accuracy curves (per minibatch while it trains, per epoch, train and validation, the
/// merged model and each segment) against the epoch, the iteration or wall time, with EMA
/// smoothing of the noisy minibatch curves; images/s and ETA while it trains; each segment's last
/// epoch (rows, time, throughput, divergence from the merged model) and its shard's rows of each
/// class; the confusion matrix of the
/// last evaluation. A recorded run is read from the project (and re-read as it grows); a run this
/// window trains is fed its events as they come (appendEvents).
class RunView : public QWidget {
    Q_OBJECT
public:
    enum class Axis { Epoch, Step, WallTime };

    /// `live`: the run's points will come through appendEvents() (it trains in this window), so
    /// none are read from the project.
    RunView(const store::Project& project, int64_t runId, QWidget* parent = nullptr, bool live = false);

    int64_t runId() const { return m_runId; }
    /// Whether its points come from appendEvents() rather than the project.
    bool live() const { return m_live; }
    /// Re-reads the run's record and, unless live, its metrics and evaluation (a running run grows).
    void reload(const store::Project& project);
    /// A batch of the run's events (GUI thread); the plots are redrawn a few times a second at most.
    void appendEvents(const std::vector<RunEvent>& batch);
    /// Shows the Stop button (the run trains in this window) or hides it.
    void setStoppable(bool stoppable);

    void setAxis(Axis axis);
    /// The EMA weight of the minibatch curves, in [0, 1): 0 draws them raw.
    void setSmoothing(double weight);
    /// Redraws now instead of at the next tick.
    void redraw();

    QCustomPlot* lossPlot() const { return m_loss; }
    QCustomPlot* accuracyPlot() const { return m_accuracy; }
    QCustomPlot* divergencePlot() const { return m_divergence; }
    QTableWidget* segmentTable() const { return m_segments; }
    QTableWidget* confusionTable() const { return m_confusion; }
    /// The segments' and the confusion matrix's tabs below the plots.
    QTabWidget* tabs() const { return m_details; }
    QPushButton* stopButton() const { return m_stop; }
    QString summaryText() const;
    /// "epoch 2/5, step 340/850, 1234 images/s, ETA 0:42" while it trains; the end state after.
    QString progressText() const;
    /// Points held (from the project or from events).
    size_t pointCount() const { return m_points.size(); }

    /// Both plots side by side as one PNG; false when it cannot be written.
    bool exportPng(const QString& path) const;
    /// Both plots as vector graphics on one PDF page.
    bool exportPdf(const QString& path) const;
    /// Every point: segment, epoch, step, kind, metric, value, wall seconds.
    bool exportCsv(const QString& path) const;

Q_SIGNALS:
    /// The user pressed Stop.
    void stopRequested(qint64 runId);
    /// The user double-clicked a cell of the confusion matrix: the rows of class `trueClass` the
    /// model of epoch `epoch` took for `predictedClass`.
    void samplesRequested(qint64 runId, int epoch, int trueClass, int predictedClass);
    /// Export > Model as ONNX...: the window writes the run's model.
    void modelExportRequested(qint64 runId);

private:
    void scheduleRedraw();
    void drawPlot(QCustomPlot* plot, const QString& metric, double scale);
    void fillSegments();
    void fillConfusion();
    void drawDivergence();
    /// Where a point goes on the x axis as it is chosen now; NaN when not known yet.
    double xOf(const store::MetricPoint& point) const;
    /// Labels, ticks and ranges of a plot's x axis as it is chosen now, then redraws it.
    void setXAxis(QCustomPlot* plot) const;
    void updateProgressLabel();

    int64_t m_runId;
    bool m_live;
    QString m_seen; ///< state, epochs and heartbeat of the run as last read
    std::optional<store::RunRecord> m_run;
    std::vector<store::MetricPoint> m_points;
    std::shared_ptr<const Evaluation> m_evaluation;
    int m_evaluationEpoch = 0;              ///< whose weights m_evaluation judged
    std::optional<RunEvent> m_lastProgress; ///< live runs: the latest Progress event
    QString m_ending;                       ///< live runs: how the run ended, once it has
    int64_t m_stepsPerEpoch = 0;
    QStringList m_classNames; ///< the run's dataset's
    Axis m_axis = Axis::Epoch;
    double m_smoothing = 0.6;
    QTimer m_redrawTimer;

    QLabel* m_summary = nullptr;
    QLabel* m_progress = nullptr;
    QComboBox* m_axisBox = nullptr;
    QDoubleSpinBox* m_smoothingBox = nullptr;
    QPushButton* m_stop = nullptr;
    QCustomPlot* m_loss = nullptr;
    QCustomPlot* m_accuracy = nullptr;
    QCustomPlot* m_divergence = nullptr;
    QTableWidget* m_segments = nullptr;
    QTableWidget* m_confusion = nullptr;
    QLabel* m_confusionTitle = nullptr;
    QTabWidget* m_details = nullptr;
};

} // namespace mppdl::ui
