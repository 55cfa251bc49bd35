#pragma once

#include <string>

namespace mppdl::ui {

/// Runs the workbench until its window closes; opens `project` when given (else the last one, when
/// it still exists) and, when `run` is given (an id or a name), that run's view. Returns the
/// process's exit code.
int runGui(int& argc, char** argv, const std::string& project, const std::string& run = {});

} // namespace mppdl::ui
