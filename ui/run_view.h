#pragma once

#include <QWidget>

#include <cstdint>

class QCustomPlot;
class QLabel;

namespace mppdl::store {
class Project;
}

namespace mppdl::ui {

/// One recorded run: what it is (architecture, data, strategy, state, results) and its loss and
/// accuracy per epoch, train and validation, merged model and each segment, from the project.
class RunView : public QWidget {
    Q_OBJECT
public:
    RunView(const store::Project& project, int64_t runId, QWidget* parent = nullptr);

    int64_t runId() const { return m_runId; }
    /// Re-reads the run and its metrics (a running run grows).
    void reload(const store::Project& project);

    QCustomPlot* lossPlot() const { return m_loss; }
    QCustomPlot* accuracyPlot() const { return m_accuracy; }
    QString summaryText() const;

    /// Both plots side by side as one PNG; false when it cannot be written.
    bool exportPng(const QString& path) const;

private:
    int64_t m_runId;
    QString m_seen; ///< state, epochs and heartbeat of the run as last drawn
    QLabel* m_summary = nullptr;
    QCustomPlot* m_loss = nullptr;
    QCustomPlot* m_accuracy = nullptr;
};

} // namespace mppdl::ui
