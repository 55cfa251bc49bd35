#pragma once

// Runs started from the terminal workbench are `mppdl train` (or `mppdl resume`) processes of
// their own, detached from the terminal (a session of their own, stdin from /dev/null, output to
// a log file): they survive closing the terminal or an SSH disconnect, and quitting the workbench
// never touches them or the project; the project file is where both sides meet. Training in the
// workbench's process would end the run with the SSH session, and share its CPU with the drawing.

#include <string>
#include <vector>

namespace mppdl::tui {

/// Starts `args` (args[0] the executable) detached, its stdout and stderr appended to `logFile`;
/// returns its pid. ConfigError when it cannot start.
int startDetached(const std::vector<std::string>& args, const std::string& logFile);

/// Where the logs of runs started from the workbench go: $XDG_STATE_HOME/mppdl/logs (else
/// ~/.local/state/mppdl/logs), created when missing.
std::string logDirectory();

/// Asks run process `pid` of this host to stop after its current minibatch (SIGINT, what Ctrl-C
/// sends: the trainer's cancel). False when there is no such process.
bool stopProcess(int pid);

/// This host's name, as runs record it.
std::string hostName();

} // namespace mppdl::tui
