// `mppdl tui [PROJECT]`: the terminal workbench (tui/), and what a plain `mppdl` opens on a
// terminal where no window can.

#include "cli_project.h"

#include "tui/workbench.h"

#include <climits>
#include <memory>
#include <unistd.h>

namespace mppdl::cli {

namespace {

/// This binary, for the runs the workbench starts.
std::string thisExecutable() {
    char path[PATH_MAX] = "";
    const ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    return n > 0 ? std::string(path, size_t(n)) : std::string("mppdl");
}

} // namespace

int openTerminalWorkbench(const std::string& projectFlag) {
    tui::WorkbenchOptions options;
    {
        // Made when missing; closed again: the workbench reads it on a thread of its own.
        bool created = false;
        options.project = openProject(projectFlag, store::Access::Write, &created).path();
    }
    options.executable = thisExecutable();
    return tui::runWorkbench(options);
}

void registerTuiCommand(CLI::App& app, Command& selected) {
    auto* tui = app.add_subcommand("tui", "open the terminal workbench: runs live, curves, compare, launch, datasets");
    auto project = std::make_shared<std::string>();
    tui->add_option("project,--project", *project,
                    "the project file (default: $MPPDL_PROJECT, else the one *.mppdl here, else ./project.mppdl)");
    tui->callback([&selected, project] { selected = [project] { return openTerminalWorkbench(*project); }; });
}

} // namespace mppdl::cli
