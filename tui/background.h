#pragma once

// Work a screen needs that takes longer than a frame (predicting a test split again, reading a
// dataset): it runs on a thread of its own, never the drawing thread, and the screen draws
// "working..." until the result is there. A screen closed before its work ends leaves the result
// to nobody; the workbench joins the threads when it ends, so no thread outlives the program.

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace mppdl::tui {

/// The threads of the screens' work; joined on destruction.
class Jobs {
public:
    Jobs() = default;
    Jobs(const Jobs&) = delete;
    Jobs& operator=(const Jobs&) = delete;
    ~Jobs() {
        for (auto& t : m_threads)
            t.join();
    }
    void start(std::function<void()> work) { m_threads.emplace_back(std::move(work)); }

private:
    std::vector<std::thread> m_threads;
};

/// One result on its way: start() runs `work` on a job; done() tells the drawing thread whether
/// value() or error() may be read. An mppdl::Error (or any exception) becomes error().
template <class T>
class Pending {
public:
    void start(Jobs& jobs, std::function<T()> work) {
        auto state = std::make_shared<State>();
        m_state = state;
        jobs.start([state, work = std::move(work)] {
            std::optional<T> value;
            std::string error;
            try {
                value = work();
            } catch (const std::exception& e) {
                error = e.what();
            }
            std::lock_guard<std::mutex> lock(state->mutex);
            state->value = std::move(value);
            state->error = std::move(error);
            state->done = true;
        });
    }
    bool started() const { return m_state != nullptr; }
    bool done() const {
        if (!m_state)
            return false;
        std::lock_guard<std::mutex> lock(m_state->mutex);
        return m_state->done;
    }
    /// After done(): the result, or nullptr when the work failed.
    const T* value() const { return done() && m_state->value ? &*m_state->value : nullptr; }
    /// After done(): why the work failed ("" when it did not).
    std::string error() const { return done() ? m_state->error : std::string(); }

private:
    struct State {
        std::mutex mutex;
        bool done = false;
        std::optional<T> value;
        std::string error;
    };
    std::shared_ptr<State> m_state;
};

} // namespace mppdl::tui
