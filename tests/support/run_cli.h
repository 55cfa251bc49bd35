#pragma once

// Runs the mppdl binary (MPPDL_BINARY), and other commands, as a user would and keeps what they printed.

#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

struct CliResult {
    int code = -1;
    std::string out; ///< stdout and stderr together
};

/// `text` as one word of the shell, quoted.
inline std::string shellQuote(const std::string& text) {
    std::string out = "'";
    for (const char c : text)
        out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

/// A shell command line run with its stderr joined to its stdout: the exit code, or 128 + the
/// signal that ended it, and what it printed.
inline CliResult runCommand(const std::string& line) {
    const std::string command = line + " 2>&1";
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

/// `mppdl ARGS` through the shell (runCommand). `shell` runs before it in the same shell:
/// environment changes, limits ("ulimit -v N; ", "env -u DISPLAY ").
inline CliResult runMppdl(const std::string& args, const std::string& shell = "") {
    return runCommand(shell + std::string(MPPDL_BINARY) + " " + args);
}
