#pragma once

// The interactive terminal workbench (`mppdl tui [PROJECT]`, and a plain `mppdl` on a terminal
// without a display): full-screen ncurses over the same project file the GUI and the CLI use.
// No Qt: it builds with -DMPPDL_GUI=OFF.

#include <string>

namespace mppdl::tui {

struct WorkbenchOptions {
    std::string project;    ///< the project file (must exist)
    std::string executable; ///< this mppdl binary: the runs started here run it
    double pollSeconds = 1.0;
};

/// Runs the workbench until the user quits; returns the process exit code. ConfigError when
/// there is no terminal, StorageError when the project cannot be opened.
int runWorkbench(const WorkbenchOptions& options);

} // namespace mppdl::tui
