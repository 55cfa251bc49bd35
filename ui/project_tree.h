#pragma once

#include <QTreeWidget>

#include <cstdint>
#include <vector>

namespace mppdl::store {
class Project;
struct RunRecord;
}

namespace mppdl::ui {

/// The project's contents as a tree: datasets, architectures with their versions, runs with their
/// state. Reloading keeps what the user had expanded, every selected item, the current item and the
/// scroll position.
class ProjectTree : public QTreeWidget {
    Q_OBJECT
public:
    /// What an item is (Qt::UserRole) and its id (Qt::UserRole + 1).
    enum ItemKind { Group = 1, Dataset, Architecture, ArchitectureVersion, Run, Search };

    explicit ProjectTree(QWidget* parent = nullptr);

    /// Re-reads the datasets and architectures; the runs are the caller's, read once per refresh.
    void load(const store::Project& project, const std::vector<store::RunRecord>& runs);
    void clearProject();
    /// The item of a run, or nullptr.
    QTreeWidgetItem* runItem(int64_t runId) const;
    QTreeWidgetItem* datasetItem(int64_t datasetId) const;
    QTreeWidgetItem* architectureVersionItem(int64_t versionId) const;
    QTreeWidgetItem* group(const QString& name) const;
    /// The item of a search (mppdl tune), by its name, or nullptr.
    QTreeWidgetItem* searchItem(const QString& name) const;
    /// The selected runs, in tree order.
    std::vector<int64_t> selectedRunIds() const;

private:
    QTreeWidgetItem* findItem(int kind, int64_t id) const;

Q_SIGNALS:
    /// A run was double-clicked or chosen with Enter.
    void runActivated(qint64 runId);
    /// The same for a dataset.
    void datasetActivated(qint64 datasetId);
    /// The same for an architecture version (by its row id).
    void architectureVersionActivated(qint64 versionId);
    /// The same for a search, by its name.
    void searchActivated(const QString& name);
};

} // namespace mppdl::ui
