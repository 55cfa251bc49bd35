// The Runs screen: one row per run of the project, live, sortable and filterable; the home of the
// terminal workbench.

#include "tui/detached.h"
#include "tui/screen.h"

#include "mppdl/core/text_table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <functional>

namespace mppdl::tui {

std::string stateText(const store::RunRecord& run, double now, bool unicode) {
    const std::string name = store::toString(run.state);
    if (run.state != store::RunState::Running)
        return name;
    static const char* const spinner[] = {"◐", "◓", "◑", "◒"};
    static const char* const ascii[] = {"|", "/", "-", "\\"};
    const int frame = int(now * 4) % 4;
    return std::string(unicode ? spinner[frame] : ascii[frame]) + " " + name;
}

bool moveCursor(int key, int& cursor, int rows) {
    const int last = std::max(0, rows - 1);
    switch (key) {
    case kUp: cursor = std::clamp(cursor - 1, 0, last); return true;
    case kDown: cursor = std::clamp(cursor + 1, 0, last); return true;
    case kPageUp: cursor = std::clamp(cursor - 10, 0, last); return true;
    case kPageDown: cursor = std::clamp(cursor + 10, 0, last); return true;
    case kHome: cursor = 0; return true;
    case kEnd: cursor = last; return true;
    default: return false;
    }
}

Style stateStyle(store::RunState state) {
    switch (state) {
    case store::RunState::Running: return Style::Running;
    case store::RunState::Finished: return Style::Good;
    case store::RunState::Failed: return Style::Bad;
    case store::RunState::Interrupted:
    case store::RunState::Cancelled: return Style::Dim;
    default: return Style::Normal;
    }
}

namespace {

std::string percentOrDash(const std::optional<double>& fraction) { return fraction ? percentText(*fraction) : "-"; }

/// A column of the table: its heading, width, alignment, the text of a run, and its sort key;
/// `priority` says which go first when the terminal is narrow (0 always stays).
struct Column {
    std::string name;
    int width;
    bool right;
    int priority;
    std::function<std::string(const store::RunRecord&, const RunPace&)> text;
    std::function<double(const store::RunRecord&, const RunPace&)> order; ///< null: by text
};

const std::vector<Column>& columns() {
    static const std::vector<Column> list = {
        {"id", 4, true, 0, [](const auto& r, const auto&) { return std::to_string(r.id); },
         [](const auto& r, const auto&) { return double(r.id); }},
        {"name", 12, false, 0, [](const auto& r, const auto&) { return r.name; }, nullptr},
        {"state", 11, false, 0, [](const auto& r, const auto&) { return std::string(store::toString(r.state)); },
         nullptr},
        {"strategy", 18, false, 4,
         [](const auto& r, const auto&) {
             return r.strategy + (r.segments > 1 ? " x" + std::to_string(r.segments) : std::string());
         },
         nullptr},
        {"epoch", 7, true, 1,
         [](const auto& r, const auto&) { return std::to_string(r.epochsDone) + "/" + std::to_string(r.epochs); },
         [](const auto& r, const auto&) { return double(r.epochsDone); }},
        {"best val", 12, true, 3,
         [](const auto& r, const auto&) {
             std::string best = percentOrDash(r.bestValAccuracy);
             if (r.bestValAccuracy && r.bestEpoch > 0)
                 best += " (" + std::to_string(r.bestEpoch) + ")";
             return best;
         },
         [](const auto& r, const auto&) { return r.bestValAccuracy.value_or(-1); }},
        {"test acc", 8, true, 2, [](const auto& r, const auto&) { return percentOrDash(r.testAccuracy); },
         [](const auto& r, const auto&) { return r.testAccuracy.value_or(-1); }},
        {"img/s", 7, true, 6,
         [](const auto&, const auto& p) {
             return p.imagesPerSec > 0 ? groupThousands((long long)std::llround(p.imagesPerSec)) : std::string("-");
         },
         [](const auto&, const auto& p) { return p.imagesPerSec; }},
        {"elapsed", 7, true, 5,
         [](const auto& r, const auto&) { return r.seconds > 0 ? humanDuration(r.seconds) : std::string("-"); },
         [](const auto& r, const auto&) { return r.seconds; }},
        {"ETA", 7, true, 6,
         [](const auto& r, const auto& p) {
             return r.state == store::RunState::Running && p.etaSeconds >= 0 ? humanDuration(p.etaSeconds)
                                                                             : std::string("-");
         },
         [](const auto& r, const auto& p) { return r.state == store::RunState::Running ? p.etaSeconds : -1; }},
    };
    return list;
}

class RunsScreen : public Screen {
public:
    std::string title(const Context& context) const override {
        return "Runs (" + std::to_string(context.snapshot->runs.size()) + ")";
    }

    std::vector<KeyHelp> keys() const override {
        if (m_typing)
            return {{"Enter", "keep filter"}, {"Esc", "clear"}};
        return {{"Enter", "open"}, {"Space", "mark"}, {"c", "compare"}, {"n", "new run"}, {"d", "duplicate"},
                {"s", "stop"},     {"r", "resume"},   {"/", "filter"},  {"< >", "sort"},  {"i", "invert sort"},
                {"D", "datasets"}, {"S", "searches"}, {"q", "quit"}};
    }

    bool typing() const override { return m_typing; }

    std::set<int64_t> wantedRuns(const Snapshot&) const override { return {}; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        m_drawn = context.snapshot; // m_shown points into it
        const auto& snapshot = *context.snapshot;
        m_shown = visible(snapshot);
        if (!m_shown.empty())
            m_cursor = std::clamp(m_cursor, 0, int(m_shown.size()) - 1);
        // Which columns fit: by priority (id, name and state always), shown in their order.
        std::vector<size_t> byPriority(columns().size());
        for (size_t c = 0; c < byPriority.size(); ++c)
            byPriority[c] = c;
        std::stable_sort(byPriority.begin(), byPriority.end(),
                         [](size_t a, size_t b) { return columns()[a].priority < columns()[b].priority; });
        std::vector<size_t> chosen;
        int used = 0;
        for (const size_t c : byPriority) {
            const int need = columns()[c].width + 2;
            if (columns()[c].priority == 0 || used + need <= w) {
                chosen.push_back(c);
                used += need;
            }
        }
        std::sort(chosen.begin(), chosen.end());
        // The name column takes what is left.
        const int spare = std::max(0, w - used);
        int cx = x;
        std::vector<int> at, widths;
        for (const size_t c : chosen) {
            const int width = columns()[c].width + (c == 1 ? spare : 0);
            at.push_back(cx);
            widths.push_back(width);
            std::string heading = columns()[c].name;
            if (c == m_sort)
                heading += m_descending ? (context.unicode ? "▼" : "v") : (context.unicode ? "▲" : "^");
            if (columns()[c].right)
                canvas.textRight(cx, y, width, heading, Style::Header);
            else
                canvas.text(cx, y, heading, Style::Header, width);
            cx += width + 2;
        }
        const int rows = h - 2;
        if (m_cursor < m_top)
            m_top = m_cursor;
        if (m_cursor >= m_top + rows)
            m_top = m_cursor - rows + 1;
        for (int i = 0; i < rows && m_top + i < int(m_shown.size()); ++i) {
            const auto& r = *m_shown[size_t(m_top + i)];
            const RunPace pace = snapshot.pace.count(r.id) ? snapshot.pace.at(r.id) : RunPace{};
            const int row = y + 1 + i;
            const bool selected = m_top + i == m_cursor;
            for (size_t k = 0; k < chosen.size(); ++k) {
                const auto& column = columns()[chosen[k]];
                std::string value = chosen[k] == 2 ? stateText(r, context.now, context.unicode) : column.text(r, pace);
                if (chosen[k] == 0 && m_marked.count(r.id))
                    value = (context.unicode ? "✓" : "*") + value;
                const Style style = chosen[k] == 2 ? stateStyle(r.state) : Style::Normal;
                if (column.right)
                    canvas.textRight(at[k], row, widths[k], value, style);
                else
                    canvas.text(at[k], row, fitText(value, widths[k]), style, widths[k]);
            }
            if (selected)
                canvas.restyle(x, row, w, Style::Selected);
        }
        std::string status;
        if (snapshot.runs.empty())
            status = "No runs yet: n starts one (or mppdl train --project " + context.project + " ...).";
        else if (m_shown.empty())
            status = "No run matches the filter '" + m_filter + "'.";
        if (!status.empty())
            canvas.text(x + 1, y + 2, fitText(status, w - 2), Style::Dim);
        // The filter line.
        if (m_typing || !m_filter.empty())
            canvas.text(x, y + h - 1, fitText("filter: " + m_filter + (m_typing ? "_" : ""), w),
                        m_typing ? Style::Key : Style::Dim);
        else if (!m_marked.empty())
            canvas.text(x, y + h - 1, std::to_string(m_marked.size()) + " marked for compare (c)", Style::Dim);
    }

    Outcome key(int key, Context& context) override {
        const auto& snapshot = *context.snapshot;
        if (m_typing) {
            if (key == kEnter)
                m_typing = false;
            else if (key == kEscape) {
                m_typing = false;
                m_filter.clear();
            } else if (key == kBackspace) {
                if (!m_filter.empty())
                    m_filter.pop_back();
            } else if (key >= 32 && key < 0x110000) {
                m_filter += encodeUtf8(std::u32string(1, char32_t(key)));
            }
            m_cursor = 0;
            return Outcome::stay();
        }
        const auto* selected = m_shown.empty() ? nullptr
                                               : m_shown[size_t(std::clamp(m_cursor, 0, int(m_shown.size()) - 1))];
        if (moveCursor(key, m_cursor, int(m_shown.size())))
            return Outcome::stay();
        switch (key) {
        case '/': m_typing = true; break;
        case '<': m_sort = (m_sort + columns().size() - 1) % columns().size(); break;
        case '>': m_sort = (m_sort + 1) % columns().size(); break;
        case 'i': m_descending = !m_descending; break;
        case ' ':
            if (selected && !m_marked.erase(selected->id))
                m_marked.insert(selected->id);
            break;
        case kEnter:
            if (selected)
                return Outcome::open(runScreen(selected->id));
            break;
        case 'c': {
            std::vector<int64_t> ids(m_marked.begin(), m_marked.end());
            if (ids.size() < 2 && selected && !m_marked.count(selected->id))
                ids.push_back(selected->id);
            if (ids.size() < 2) {
                context.message = "mark two to eight runs with Space, then c compares them";
                break;
            }
            if (ids.size() > 8)
                ids.resize(8);
            return Outcome::open(compareScreen(ids));
        }
        case 'n': return Outcome::open(launchScreen(0, snapshot));
        case 'd':
            if (selected)
                return Outcome::open(launchScreen(selected->id, snapshot));
            break;
        case 's':
            if (selected)
                context.message = stopRun(*selected);
            context.watch->poke();
            break;
        case 'r':
            if (selected)
                context.message = resumeRun(*selected, context);
            context.watch->poke();
            break;
        case 'D': return Outcome::open(datasetsScreen());
        case 'S': return Outcome::open(searchesScreen());
        case 'q': return Outcome::quit();
        default: break;
        }
        return Outcome::stay();
    }

private:
    std::vector<const store::RunRecord*> visible(const Snapshot& snapshot) const {
        std::vector<const store::RunRecord*> out;
        for (const auto& r : snapshot.runs) {
            const std::string haystack = std::to_string(r.id) + " " + r.name + " " + store::toString(r.state) + " " +
                                         r.strategy + " " + r.architectureName;
            if (m_filter.empty() || haystack.find(m_filter) != std::string::npos)
                out.push_back(&r);
        }
        const auto& column = columns()[m_sort];
        const auto paceOf = [&](const store::RunRecord& r) {
            return snapshot.pace.count(r.id) ? snapshot.pace.at(r.id) : RunPace{};
        };
        std::stable_sort(out.begin(), out.end(), [&](const store::RunRecord* a, const store::RunRecord* b) {
            const bool less = column.order ? column.order(*a, paceOf(*a)) < column.order(*b, paceOf(*b))
                                           : column.text(*a, paceOf(*a)) < column.text(*b, paceOf(*b));
            const bool greater = column.order ? column.order(*b, paceOf(*b)) < column.order(*a, paceOf(*a))
                                              : column.text(*b, paceOf(*b)) < column.text(*a, paceOf(*a));
            return m_descending ? greater : less;
        });
        return out;
    }

    int m_cursor = 0, m_top = 0;
    size_t m_sort = 0;
    bool m_descending = true;
    bool m_typing = false;
    std::string m_filter;
    std::set<int64_t> m_marked;
    std::shared_ptr<const Snapshot> m_drawn;
    std::vector<const store::RunRecord*> m_shown;
};

} // namespace

std::unique_ptr<Screen> runsScreen() { return std::make_unique<RunsScreen>(); }

std::vector<std::pair<std::string, std::string>> flattenConfig(const std::string& json) {
    std::vector<std::pair<std::string, std::string>> out;
    const auto parsed = nlohmann::json::parse(json, nullptr, false);
    if (parsed.is_discarded()) {
        out.emplace_back("configuration", json);
        return out;
    }
    const std::function<void(const nlohmann::json&, const std::string&)> walk = [&](const nlohmann::json& j,
                                                                                    const std::string& prefix) {
        if (!j.is_object()) {
            out.emplace_back(prefix, j.is_string() ? j.get<std::string>() : j.dump());
            return;
        }
        for (auto it = j.begin(); it != j.end(); ++it)
            walk(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key());
    };
    walk(parsed, "");
    return out;
}

std::string stopRun(const store::RunRecord& run) {
    if (run.state != store::RunState::Running)
        return "run " + std::to_string(run.id) + " is " + store::toString(run.state) + ", not running";
    if (run.host != hostName())
        return "run " + std::to_string(run.id) + " trains on " + run.host + ": stop it there";
    if (!stopProcess(int(run.pid)))
        return "run " + std::to_string(run.id) + ": its process " + std::to_string(run.pid) + " is gone";
    return "asked run " + std::to_string(run.id) + " to stop after its current minibatch";
}

std::string resumeRun(const store::RunRecord& run, const Context& context) {
    if (run.state == store::RunState::Running || run.state == store::RunState::Finished)
        return "run " + std::to_string(run.id) + " is " + store::toString(run.state) + ": nothing to resume";
    try {
        const std::string log = logDirectory() + "/resume-" + std::to_string(run.id) + ".log";
        startDetached({context.executable, "resume", std::to_string(run.id), "--project", context.project}, log);
        return "resuming run " + std::to_string(run.id) + " (log: " + log + ")";
    } catch (const std::exception& e) {
        return e.what();
    }
}


} // namespace mppdl::tui
