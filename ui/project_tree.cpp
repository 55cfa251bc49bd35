#include "ui/project_tree.h"

#include "ui/format.h"

#include "mppdl/store/project.h"

#include <QApplication>
#include <QJsonDocument>
#include <QJsonObject>
#include <QHeaderView>
#include <QScrollBar>
#include <QSet>
#include <QStyle>

#include <algorithm>
#include <optional>

namespace mppdl::ui {

namespace {

constexpr int kKindRole = Qt::UserRole;
constexpr int kIdRole = Qt::UserRole + 1;

QIcon stateIcon(store::RunState state) {
    QStyle* style = QApplication::style();
    switch (state) {
    case store::RunState::Queued: return style->standardIcon(QStyle::SP_FileDialogInfoView);
    case store::RunState::Running: return style->standardIcon(QStyle::SP_MediaPlay);
    case store::RunState::Finished: return style->standardIcon(QStyle::SP_DialogApplyButton);
    case store::RunState::Failed: return style->standardIcon(QStyle::SP_MessageBoxCritical);
    case store::RunState::Cancelled: return style->standardIcon(QStyle::SP_MediaStop);
    case store::RunState::Interrupted: return style->standardIcon(QStyle::SP_MessageBoxWarning);
    }
    return {};
}

/// A stable key of an item, to find it again after a reload.
QString keyOf(const QTreeWidgetItem* item) {
    return item->data(0, kKindRole).toString() + ":" + item->data(0, kIdRole).toString() + ":" +
           (item->data(0, kKindRole).toInt() == ProjectTree::Group ? item->text(0).section(' ', 0, 0) : QString());
}

} // namespace

ProjectTree::ProjectTree(QWidget* parent) : QTreeWidget(parent) {
    setColumnCount(3);
    setHeaderLabels({tr("Name"), tr("State"), tr("Accuracy")});
    header()->setSectionResizeMode(0, QHeaderView::Stretch);
    header()->setSectionResizeMode(1, QHeaderView::ResizeToContents);
    header()->setSectionResizeMode(2, QHeaderView::ResizeToContents);
    header()->setStretchLastSection(false);
    setUniformRowHeights(true);
    setSelectionMode(QAbstractItemView::ExtendedSelection); // several runs, to compare them
    connect(this, &QTreeWidget::itemActivated, this, [this](QTreeWidgetItem* item, int) {
        if (item->data(0, kKindRole).toInt() == Run)
            Q_EMIT runActivated(item->data(0, kIdRole).toLongLong());
        if (item->data(0, kKindRole).toInt() == Dataset)
            Q_EMIT datasetActivated(item->data(0, kIdRole).toLongLong());
        if (item->data(0, kKindRole).toInt() == ArchitectureVersion)
            Q_EMIT architectureVersionActivated(item->data(0, kIdRole).toLongLong());
        if (item->data(0, kKindRole).toInt() == Search)
            Q_EMIT searchActivated(item->data(0, kIdRole).toString());
    });
}

void ProjectTree::clearProject() { clear(); }

void ProjectTree::load(const store::Project& project, const std::vector<store::RunRecord>& runs) {
    // Remember what was open, every selected item (runs chosen to compare), the current item and
    // how far the list was scrolled: a periodic refresh must not lose any of them.
    QSet<QString> expanded, selected;
    const QString current = currentItem() ? keyOf(currentItem()) : QString();
    const int scrolled = verticalScrollBar()->value();
    for (QTreeWidgetItemIterator it(this); *it; ++it) {
        if ((*it)->isExpanded())
            expanded.insert(keyOf(*it));
        if ((*it)->isSelected())
            selected.insert(keyOf(*it));
    }
    const bool first = topLevelItemCount() == 0;
    clear();

    auto makeGroup = [&](const QString& name, int count) {
        auto* item = new QTreeWidgetItem(this, {QString("%1 (%2)").arg(name).arg(count)});
        item->setData(0, kKindRole, Group);
        item->setIcon(0, QApplication::style()->standardIcon(QStyle::SP_DirIcon));
        return item;
    };
    const auto datasets = project.datasets();
    auto* datasetGroup = makeGroup(tr("Datasets"), int(datasets.size()));
    for (const auto& d : datasets) {
        auto* item = new QTreeWidgetItem(datasetGroup,
                                         {QString::fromStdString(d.name), QString::fromStdString(d.kind)});
        item->setToolTip(0, QString::fromStdString(d.location));
        item->setData(0, kKindRole, Dataset);
        item->setData(0, kIdRole, qint64(d.id));
    }
    const auto architectures = project.architectures();
    auto* architectureGroup = makeGroup(tr("Architectures"), int(architectures.size()));
    for (const auto& a : architectures) {
        auto* item = new QTreeWidgetItem(architectureGroup, {QString::fromStdString(a.name), tr("v%1").arg(a.latest)});
        item->setData(0, kKindRole, Architecture);
        item->setData(0, kIdRole, QString::fromStdString(a.name));
        for (const auto& v : project.architectureVersions(a.name)) {
            auto* version = new QTreeWidgetItem(item,
                                                {tr("version %1").arg(v.version), tr("%n run(s)", "", int(v.runs))});
            version->setToolTip(0, QString::fromStdString(v.note));
            version->setData(0, kKindRole, ArchitectureVersion);
            version->setData(0, kIdRole, qint64(v.id));
        }
    }
    // Searches (mppdl tune): their runs carry the search in their configuration.
    struct SearchSummary {
        QString name;
        int runs = 0, running = 0, ended = 0;
        std::optional<double> best;
    };
    std::vector<SearchSummary> searches;
    for (const auto& r : runs) {
        const auto search = QJsonDocument::fromJson(QByteArray::fromStdString(r.config)).object().value("search");
        if (!search.isObject())
            continue;
        const auto name = search.toObject().value("name").toString();
        auto it = std::find_if(searches.begin(), searches.end(),
                               [&](const SearchSummary& s) { return s.name == name; });
        if (it == searches.end())
            it = searches.insert(searches.end(), SearchSummary{name});
        ++it->runs;
        it->running += r.state == store::RunState::Running;
        it->ended += r.state == store::RunState::Finished;
        if (r.bestValAccuracy && (!it->best || *r.bestValAccuracy > *it->best))
            it->best = r.bestValAccuracy;
    }
    if (!searches.empty()) {
        auto* searchGroup = makeGroup(tr("Searches"), int(searches.size()));
        for (const auto& s : searches) {
            auto* item = new QTreeWidgetItem(
                searchGroup,
                {s.name, s.running ? tr("running") : tr("%1/%2 ended").arg(s.ended).arg(s.runs), percentText(s.best)});
            item->setToolTip(0, tr("%n configuration(s); the leaderboard opens on a double-click", "", s.runs));
            item->setIcon(0, QApplication::style()->standardIcon(s.running ? QStyle::SP_MediaPlay
                                                                           : QStyle::SP_FileDialogDetailedView));
            item->setData(0, kKindRole, Search);
            item->setData(0, kIdRole, s.name);
        }
    }
    auto* runGroup = makeGroup(tr("Runs"), int(runs.size()));
    for (const auto& r : runs) {
        const auto accuracy = r.testAccuracy ? r.testAccuracy : r.bestValAccuracy;
        auto* item = new QTreeWidgetItem(runGroup,
                                         {QString("%1  %2").arg(r.id).arg(QString::fromStdString(r.name)),
                                          QString::fromLatin1(store::toString(r.state)), percentText(accuracy)});
        item->setIcon(0, stateIcon(r.state));
        item->setToolTip(0, QString("%1 %2, %3 x%4, %5/%6 epochs")
                                .arg(QString::fromStdString(r.architectureName))
                                .arg(r.architectureVersion)
                                .arg(QString::fromStdString(r.strategy))
                                .arg(r.segments)
                                .arg(r.epochsDone)
                                .arg(r.epochs));
        item->setData(0, kKindRole, Run);
        item->setData(0, kIdRole, qint64(r.id));
    }

    for (QTreeWidgetItemIterator it(this); *it; ++it) {
        const auto key = keyOf(*it);
        // A fresh project opens with its runs in view.
        (*it)->setExpanded(expanded.contains(key) || (first && *it == runGroup));
        if (key == current) // without touching the selection, which the next line restores
            setCurrentItem(*it, 0, QItemSelectionModel::NoUpdate);
        if (selected.contains(key))
            (*it)->setSelected(true);
    }
    verticalScrollBar()->setValue(scrolled);
}

QTreeWidgetItem* ProjectTree::findItem(int kind, int64_t id) const {
    for (QTreeWidgetItemIterator it(const_cast<ProjectTree*>(this)); *it; ++it)
        if ((*it)->data(0, kKindRole).toInt() == kind && (*it)->data(0, kIdRole).toLongLong() == id)
            return *it;
    return nullptr;
}

QTreeWidgetItem* ProjectTree::runItem(int64_t runId) const { return findItem(Run, runId); }

QTreeWidgetItem* ProjectTree::searchItem(const QString& name) const {
    for (QTreeWidgetItemIterator it(const_cast<ProjectTree*>(this)); *it; ++it)
        if ((*it)->data(0, kKindRole).toInt() == Search && (*it)->data(0, kIdRole).toString() == name)
            return *it;
    return nullptr;
}

QTreeWidgetItem* ProjectTree::datasetItem(int64_t datasetId) const { return findItem(Dataset, datasetId); }

QTreeWidgetItem* ProjectTree::architectureVersionItem(int64_t versionId) const {
    return findItem(ArchitectureVersion, versionId);
}

QTreeWidgetItem* ProjectTree::group(const QString& name) const {
    for (int i = 0; i < topLevelItemCount(); ++i)
        if (topLevelItem(i)->text(0).startsWith(name + " ("))
            return topLevelItem(i);
    return nullptr;
}

} // namespace mppdl::ui

namespace mppdl::ui {

std::vector<int64_t> ProjectTree::selectedRunIds() const {
    std::vector<int64_t> ids;
    for (QTreeWidgetItemIterator it(const_cast<ProjectTree*>(this)); *it; ++it)
        if ((*it)->isSelected() && (*it)->data(0, kKindRole).toInt() == Run)
            ids.push_back((*it)->data(0, kIdRole).toLongLong());
    return ids;
}

} // namespace mppdl::ui
