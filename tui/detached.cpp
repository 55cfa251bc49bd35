#include "tui/detached.h"

#include "mppdl/core/error.h"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace mppdl::tui {

int startDetached(const std::vector<std::string>& args, const std::string& logFile) {
    if (args.empty())
        throw InternalError("startDetached: no command");
    // posix_spawn, not fork(): the workbench has threads (one reads the project file), and a fork
    // of a process with an SQLite connection open in another thread is what SQLite warns against.
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, logFile.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    // A session of its own: no controlling terminal, so no SIGHUP when the terminal goes; the
    // default signal handling and an empty mask, whatever the workbench set.
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> argv;
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = 0;
    const int error = posix_spawn(&pid, argv[0], &files, &attributes, argv.data(), environ);
    posix_spawn_file_actions_destroy(&files);
    posix_spawnattr_destroy(&attributes);
    if (error != 0)
        throw ConfigError("cannot start " + args[0] + ": " + std::strerror(error));
    // Reaped when it ends, so that no zombie is left while the workbench runs; when the workbench
    // quits first, init adopts it.
    std::thread([pid] {
        int status = 0;
        waitpid(pid, &status, 0);
    }).detach();
    return int(pid);
}

std::string logDirectory() {
    namespace fs = std::filesystem;
    const char* state = std::getenv("XDG_STATE_HOME");
    const char* home = std::getenv("HOME");
    fs::path dir = state && *state ? fs::path(state) : fs::path(home && *home ? home : "/tmp") / ".local" / "state";
    dir /= "mppdl/logs";
    std::error_code ignored;
    fs::create_directories(dir, ignored);
    return dir.string();
}

bool stopProcess(int pid) { return pid > 0 && ::kill(pid, SIGINT) == 0; }

std::string hostName() {
    char name[256] = "";
    gethostname(name, sizeof name - 1);
    return name;
}

} // namespace mppdl::tui
