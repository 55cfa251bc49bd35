#pragma once

#include <QWidget>

#include <QString>

#include <cstdint>
#include <map>
#include <vector>

class QComboBox;
class QCustomPlot;
class QTableWidget;

namespace mppdl::store {
class Project;
}

namespace mppdl::ui {

/// Several runs side by side: one metric of each run's merged model overlaid, against wall time
/// (the seed talk's key plot: which run reaches an accuracy first) or against the epoch, and a
/// table of their configurations and final results with the rows that differ highlighted.
class CompareView : public QWidget {
    Q_OBJECT
public:
    CompareView(const store::Project& project, std::vector<int64_t> runIds, QWidget* parent = nullptr);

    const std::vector<int64_t>& runIds() const { return m_runIds; }
    void reload(const store::Project& project);

    QCustomPlot* plot() const { return m_plot; }
    QTableWidget* table() const { return m_table; }
    /// "val_accuracy", "val_loss", "train_accuracy" or "train_loss"; and whether x is wall time.
    void setMetric(const QString& metric, bool againstTime);
    /// The rows of the table whose values differ between the runs (their first cells).
    QStringList differingRows() const;

private:
    void draw();

    std::vector<int64_t> m_runIds;
    QComboBox* m_metric = nullptr;
    QComboBox* m_axis = nullptr;
    QCustomPlot* m_plot = nullptr;
    QTableWidget* m_table = nullptr;
    /// Per run: (epoch, wall seconds, value) of each epoch point of each metric.
    struct Point {
        int epoch;
        double seconds;
        double value;
    };
    std::vector<std::map<QString, std::vector<Point>>> m_series;
    std::vector<QString> m_names;
};

} // namespace mppdl::ui
