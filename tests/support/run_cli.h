#pragma once

// Runs the mppdl binary (MPPDL_BINARY) as a user would and keeps what it printed.

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

struct CliResult {
    int code = -1;
    std::string out; ///< stdout and stderr together
};

/// `mppdl ARGS` through the shell; the exit code, or 128 + the signal that ended it. `shell` runs
/// before it in the same shell: environment changes, limits ("ulimit -v N; ", "env -u DISPLAY ").
inline CliResult runMppdl(const std::string& args, const std::string& shell = "") {
    const std::string command = shell + std::string(MPPDL_BINARY) + " " + args + " 2>&1";
    CliResult r;
    FILE* pipe = popen(command.c_str(), "r");
    if (!pipe)
        return r;
    std::array<char, 4096> buf{};
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0)
        r.out.append(buf.data(), n);
    const int status = pclose(pipe);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}
