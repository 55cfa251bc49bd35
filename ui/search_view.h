#pragma once

#include <QWidget>

#include <QList>
#include <QString>

#include <cstdint>
#include <vector>

class QCustomPlot;
class QLabel;
class QPushButton;
class QTableWidget;

namespace mppdl::store {
class Project;
}

namespace mppdl::ui {

/// A model selection search (mppdl tune) as its leaderboard: every configuration's run ranked by
/// validation accuracy, with its hyperparameters, epochs, test accuracy, time and state (Hyperband's
/// early stops read "stopped"), above the validation accuracy of every run against the epoch: how
/// the search spent its epochs. Rows open their runs; any of them can be compared.
class SearchView : public QWidget {
    Q_OBJECT
public:
    SearchView(const store::Project& project, const QString& name, QWidget* parent = nullptr);

    const QString& searchName() const { return m_name; }
    /// The search's runs, in search order.
    const std::vector<int64_t>& runIds() const { return m_runIds; }
    /// Re-reads the search (its runs may still train in another process).
    void reload(const store::Project& project);

    QTableWidget* table() const { return m_table; }
    QCustomPlot* plot() const { return m_plot; }
    QLabel* summary() const { return m_summary; }
    /// The runs of the selected rows, best first; of the best three when none is selected.
    QList<qint64> runsToCompare() const;

Q_SIGNALS:
    void runActivated(qint64 runId);
    /// Compare these runs (MainWindow::compareRuns).
    void compareRequested(const QList<qint64>& runIds);

private:
    QString m_name;
    std::vector<int64_t> m_runIds;
    QLabel* m_summary = nullptr;
    QTableWidget* m_table = nullptr;
    QCustomPlot* m_plot = nullptr;
    QPushButton* m_compare = nullptr;
};

} // namespace mppdl::ui
