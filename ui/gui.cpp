#include "ui/gui.h"

#include "ui/dataset_dialog.h"
#include "ui/main_window.h"

#include "mppdl/core/error.h"
#include "mppdl/store/project.h"

#include <QApplication>
#include <QMessageBox>
#include <QFileInfo>
#include <QSettings>

namespace mppdl::ui {

int runGui(int& argc, char** argv, const GuiStart& start) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName("mppdl");
    QApplication::setApplicationName("mppdl");
    MainWindow window;
    window.show();
    QString path = QString::fromStdString(start.project);
    if (path.isEmpty()) {
        const auto recent = QSettings().value("recentProjects").toStringList();
        if (!recent.isEmpty() && QFileInfo::exists(recent.front()))
            path = recent.front();
    }
    if (path.isEmpty() || !window.openProject(path))
        return app.exec();
    // Runs named on the command line: an unknown one opens a view that says so.
    auto idOf = [&](const std::string& run) -> int64_t {
        const auto found = window.project()->findRun(run);
        return found ? found->id : -1;
    };
    try {
        if (!start.dataset.empty()) {
            int64_t id = -1;
            for (const auto& d : window.project()->datasets())
                if (d.name == start.dataset || std::to_string(d.id) == start.dataset)
                    id = d.id;
            window.showDataset(id);
        }
        if (!start.run.empty())
            window.showRun(idOf(start.run));
        if (!start.compare.empty()) {
            std::vector<int64_t> ids;
            for (const auto& run : start.compare)
                ids.push_back(idOf(run));
            window.compareRuns(ids);
        }
        if (!start.search.empty())
            window.showSearch(QString::fromStdString(start.search));
        if (!start.design.empty())
            window.openDesign(QString::fromStdString(start.design));
        if (!start.repeat.empty())
            window.repeatRun(idOf(start.repeat), true);
        if (start.newRun)
            window.showLauncher();
        if (!start.addDataset.empty())
            if (auto* dialog = window.showDatasetDialog())
                dialog->setSource(QString::fromStdString(start.addDataset), QString::fromStdString(start.connection));
    } catch (const Error& e) { // a name several runs share
        QMessageBox::warning(&window, QObject::tr("Which run?"), QString::fromUtf8(e.what()));
    }
    return app.exec();
}

} // namespace mppdl::ui
