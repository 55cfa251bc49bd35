#pragma once

#include <string>
#include <vector>

namespace mppdl::ui {

/// What to open at start.
struct GuiStart {
    std::string project;              ///< a project file; empty: the last one, when it still exists
    std::string run;                  ///< a run (id or name) whose view to open
    std::string dataset;              ///< a dataset (id or name) whose view to open
    std::vector<std::string> compare; ///< runs (ids or names) to compare
    std::string design;               ///< an architecture to open in the designer
    bool newRun = false;              ///< open the run launcher
    std::string addDataset;           ///< a source to open File > Add Dataset on
    std::string connection;           ///< its PostgreSQL connection
    std::string repeat;               ///< a run (id or name) to train again at once
    std::string search;               ///< a search (mppdl tune --name) whose leaderboard to open
};

/// Runs the workbench until its window closes. Returns the process's exit code.
int runGui(int& argc, char** argv, const GuiStart& start);

} // namespace mppdl::ui
