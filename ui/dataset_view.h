#pragma once

#include <QWidget>

#include <cstdint>
#include <memory>

class QCustomPlot;
class QHBoxLayout;
class QLabel;
class QPushButton;
class QTableWidget;

namespace mppdl::store {
class Project;
}
namespace mppdl::data {
struct LoadedSource;
}

namespace mppdl::ui {

class SamplesView;
class SegmentsView;
class SourceLoader;

/// A dataset as the project recorded it when a run read it: where it is (a path, or a table and
/// its connection without the password), the reader's options, the schema, the class histogram
/// and per-channel statistics of the training rows; and the rows themselves, read again from the
/// source in the background: a grid of samples (or a table of rows) and how N segments would hold
/// them under each distribution policy.
class DatasetView : public QWidget {
    Q_OBJECT
public:
    DatasetView(const store::Project& project, int64_t datasetId, QWidget* parent = nullptr);

    int64_t datasetId() const { return m_datasetId; }
    QCustomPlot* histogram() const { return m_histogram; }
    QTableWidget* statistics() const { return m_statistics; }
    QString summaryText() const;
    SamplesView* samples() const { return m_samples; }
    SegmentsView* segments() const { return m_segments; }
    /// Whether the rows are still being read.
    bool rowsLoading() const;
    /// What the view says of the rows (reading, read, failed, or which server it would connect to).
    QString rowsStatusText() const;
    /// The button that reads a table's rows once the user agrees to connect; null when not asked.
    QPushButton* connectButton() const { return m_connect; }

private:
    int64_t m_datasetId;
    QLabel* m_summary = nullptr;
    QCustomPlot* m_histogram = nullptr;
    QTableWidget* m_statistics = nullptr;
    QLabel* m_rowsStatus = nullptr;
    QHBoxLayout* m_rowsRow = nullptr;
    QPushButton* m_connect = nullptr;
    SamplesView* m_samples = nullptr;
    SegmentsView* m_segments = nullptr;
    SourceLoader* m_loader = nullptr;
    std::shared_ptr<const data::LoadedSource> m_rows;
};

} // namespace mppdl::ui
