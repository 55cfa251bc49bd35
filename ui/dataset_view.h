#pragma once

#include <QWidget>

#include <cstdint>

class QCustomPlot;
class QLabel;
class QTableWidget;

namespace mppdl::store {
class Project;
}

namespace mppdl::ui {

/// A dataset as the project recorded it when a run read it: where it is (a path, or a table and
/// its connection without the password), the reader's options, the schema, the class histogram
/// and per-channel statistics of the training rows.
class DatasetView : public QWidget {
    Q_OBJECT
public:
    DatasetView(const store::Project& project, int64_t datasetId, QWidget* parent = nullptr);

    int64_t datasetId() const { return m_datasetId; }
    QCustomPlot* histogram() const { return m_histogram; }
    QTableWidget* statistics() const { return m_statistics; }
    QString summaryText() const;

private:
    int64_t m_datasetId;
    QLabel* m_summary = nullptr;
    QCustomPlot* m_histogram = nullptr;
    QTableWidget* m_statistics = nullptr;
};

} // namespace mppdl::ui
