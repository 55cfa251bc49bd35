#pragma once

// mppdl started in the background, for tests that interrupt, kill or watch a run.

#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
#include <sys/wait.h>
#include <unistd.h>

/// mppdl started in the background with its stdout on a pipe, read line by line.
class Background {
public:
    /// `shell`: what runs it, before the binary ("ip netns exec NAME ").
    explicit Background(const std::string& args, const std::string& shell = "") {
        int fds[2];
        if (pipe(fds) != 0)
            throw std::runtime_error("pipe");
        m_pid = fork();
        if (m_pid == 0) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
            execl("/bin/sh", "sh", "-c",
                  (std::string("exec ") + shell + MPPDL_BINARY + " " + args + " 2>/dev/null").c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        close(fds[1]);
        m_in = fdopen(fds[0], "r");
    }
    ~Background() {
        if (m_pid > 0) {
            kill(m_pid, SIGKILL);
            wait();
        }
        if (m_in)
            fclose(m_in);
    }
    /// The next line, or nullopt at end of output.
    std::optional<std::string> line() {
        std::string out;
        int c;
        while ((c = fgetc(m_in)) != EOF) {
            if (c == '\n')
                return out;
            out.push_back(char(c));
        }
        return out.empty() ? std::nullopt : std::optional<std::string>(out);
    }
    pid_t pid() const { return m_pid; }
    void kill9() { kill(m_pid, SIGKILL); }
    void interrupt() { kill(m_pid, SIGINT); }
    /// Exit code (128 + signal when killed).
    int wait() {
        if (m_pid <= 0)
            return m_status;
        int status = 0;
        waitpid(m_pid, &status, 0);
        m_pid = -1;
        m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return m_status;
    }
    bool running() {
        if (m_pid <= 0)
            return false;
        int status = 0;
        const pid_t r = waitpid(m_pid, &status, WNOHANG);
        if (r == 0)
            return true;
        m_pid = -1;
        m_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return false;
    }

private:
    pid_t m_pid = -1;
    int m_status = -1;
    FILE* m_in = nullptr;
};

/// The processes whose parent is `pid` (a run's workers), from /proc.
inline std::vector<pid_t> childrenOf(pid_t pid) {
    std::vector<pid_t> out;
    if (FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children").c_str(),
                             "r")) {
        long child;
        while (std::fscanf(f, "%ld", &child) == 1)
            out.push_back(pid_t(child));
        std::fclose(f);
    }
    return out;
}

/// Reads `training`'s JSON lines until a progress event of `epoch`; false when its output ends first.
inline bool waitForProgressOfEpoch(Background& training, int epoch) {
    while (auto line = training.line()) {
        const auto j = nlohmann::json::parse(*line, nullptr, false);
        if (!j.is_discarded() && j.value("event", "") == "progress" && j.value("epoch", 0) == epoch)
            return true;
    }
    return false;
}
