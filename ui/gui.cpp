#include "ui/gui.h"

#include "ui/main_window.h"

#include "mppdl/core/error.h"
#include "mppdl/store/project.h"

#include <QApplication>
#include <QMessageBox>
#include <QFileInfo>
#include <QSettings>

namespace mppdl::ui {

int runGui(int& argc, char** argv, const std::string& project, const std::string& run) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName("mppdl");
    QApplication::setApplicationName("mppdl");
    MainWindow window;
    window.show();
    QString path = QString::fromStdString(project);
    if (path.isEmpty()) {
        const auto recent = QSettings().value("recentProjects").toStringList();
        if (!recent.isEmpty() && QFileInfo::exists(recent.front()))
            path = recent.front();
    }
    if (!path.isEmpty() && window.openProject(path) && !run.empty()) {
        try {
            if (const auto found = window.project()->findRun(run))
                window.showRun(found->id);
            else
                window.showRun(-1); // says there is no such run
        } catch (const Error& e) { // a name several runs share
            QMessageBox::warning(&window, QObject::tr("Which run?"), QString::fromUtf8(e.what()));
        }
    }
    return app.exec();
}

} // namespace mppdl::ui
