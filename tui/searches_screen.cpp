// Searches: the project's model selection searches (`mppdl tune`, the GUI's search dialog), each
// with its leaderboard best first, live while it trains: the watch reads them from the runs every
// second while this screen is shown (tune::recordedSearch, what `mppdl tune --show` prints).

#include "tui/screen.h"

#include "mppdl/core/text_table.h"

#include <algorithm>
#include <sstream>

namespace mppdl::tui {

namespace {

Style rowStyle(const std::string& state) {
    if (state == "training")
        return Style::Running;
    if (state == "finished")
        return Style::Good;
    if (state == "failed")
        return Style::Bad;
    if (state == "stopped" || state == "cancelled" || state == "interrupted")
        return Style::Dim;
    return Style::Normal;
}

/// A configuration as Configuration::describe() writes it, one field each: "mlp", "sgd",
/// "lr 0.01", "momentum 0.9", "batch 64".
std::vector<std::string> fieldsOf(const tune::Configuration& configuration) {
    std::istringstream in(configuration.describe());
    std::vector<std::string> words, fields;
    for (std::string word; in >> word;)
        words.push_back(word);
    // The architecture and the optimizer are one word each; the rest are name and value pairs.
    for (size_t i = 0; i < words.size();) {
        if (i < 2 || i + 1 >= words.size()) {
            fields.push_back(words[i++]);
        } else {
            fields.push_back(words[i] + " " + words[i + 1]);
            i += 2;
        }
    }
    return fields;
}

/// The fields every row shares, so that the leaderboard shows only what its rows differ in.
std::vector<std::string> sharedFields(const std::vector<tune::LeaderboardRow>& rows) {
    std::vector<std::string> shared;
    if (rows.empty())
        return shared;
    for (const auto& field : fieldsOf(rows.front().configuration)) {
        bool everywhere = true;
        for (const auto& r : rows) {
            const auto fields = fieldsOf(r.configuration);
            everywhere = everywhere && std::find(fields.begin(), fields.end(), field) != fields.end();
        }
        if (everywhere)
            shared.push_back(field);
    }
    return shared;
}

std::string joined(const std::vector<std::string>& fields) {
    std::string out;
    for (const auto& f : fields)
        out += (out.empty() ? "" : " ") + f;
    return out;
}

class SearchesScreen : public Screen {
public:
    // Not counted: the searches are read only while this screen is on top.
    std::string title(const Context&) const override { return "Searches"; }

    std::vector<KeyHelp> keys() const override {
        return {{"Tab", "next search"}, {"arrows", "row"}, {"Enter", "open run"}, {"q", "back"}};
    }

    bool wantsSearches() const override { return true; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        const auto& searches = context.snapshot->searches;
        m_shown.clear();
        if (searches.empty()) {
            canvas.text(x + 1, y + 1,
                        fitText("No searches in this project: mppdl tune --project " + context.project +
                                    " --space SPACE.json ... runs one.",
                                w - 2),
                        Style::Dim);
            return;
        }
        m_search = std::clamp(m_search, 0, int(searches.size()) - 1);
        // The searches, one line each (at most a third of the height), the chosen one marked.
        const int listRows = std::min(int(searches.size()), std::max(1, h / 3));
        const int first = std::clamp(m_search - listRows + 1, 0, int(searches.size()) - listRows);
        for (int i = 0; i < listRows; ++i) {
            const auto& s = searches[size_t(first + i)];
            int training = 0;
            for (const auto& r : s.rows)
                training += r.state == "training";
            std::string line = s.name + "  " + s.search + (s.scheduler.empty() ? "" : " / " + s.scheduler) + "  " +
                               std::to_string(s.rows.size()) + " configurations, " + groupThousands(s.epochsDone) +
                               (s.epochsPlanned > 0 ? " of " + groupThousands(s.epochsPlanned) : std::string()) +
                               " epochs" + (training ? ", " + std::to_string(training) + " training" : "") + ", " +
                               humanDuration(s.seconds);
            canvas.text(x, y + i, fitText(line, w), training ? Style::Running : Style::Normal);
            if (first + i == m_search)
                canvas.restyle(x, y + i, w, Style::Selected);
        }
        drawLeaderboard(canvas, x, y + listRows + 1, w, h - listRows - 1, searches[size_t(m_search)], context);
    }

    Outcome key(int key, Context& context) override {
        const int count = int(context.snapshot->searches.size());
        if (moveCursor(key, m_cursor, int(m_shown.size())))
            return Outcome::stay();
        switch (key) {
        case kTab:
            m_search = count ? (m_search + 1) % count : 0;
            m_cursor = 0;
            break;
        case kBackTab:
            m_search = count ? (m_search + count - 1) % count : 0;
            m_cursor = 0;
            break;
        case kEnter:
            if (m_cursor < int(m_shown.size()) && m_shown[size_t(m_cursor)] != 0)
                return Outcome::open(runScreen(m_shown[size_t(m_cursor)]));
            break;
        case 'q':
        case kEscape: return Outcome::back();
        default: break;
        }
        return Outcome::stay();
    }

private:
    void drawLeaderboard(Canvas& canvas, int x, int y, int w, int h, const tune::SearchProgress& search,
                         const Context& context) {
        struct Head {
            const char* name;
            int width;
            bool right;
        };
        const std::vector<Head> heads = {{"#", 3, true},      {"run", 12, false},      {"state", 11, false},
                                         {"epochs", 6, true}, {"val acc", 8, true},    {"test acc", 8, true},
                                         {"time", 7, true},   {"differs in", 0, false}};
        const auto board = search.leaderboard();
        const auto shared = sharedFields(board);
        if (!shared.empty()) {
            canvas.text(x, y, fitText("every configuration: " + joined(shared), w), Style::Dim);
            ++y;
            --h;
        }
        int cx = x;
        for (const auto& head : heads) {
            const int width = head.width ? head.width : std::max(0, x + w - cx);
            if (head.right)
                canvas.textRight(cx, y, width, head.name, Style::Header);
            else
                canvas.text(cx, y, head.name, Style::Header, width);
            cx += width + 1;
        }
        for (const auto& r : board)
            m_shown.push_back(r.runId);
        const int rows = std::max(0, h - 1);
        m_cursor = std::clamp(m_cursor, 0, std::max(0, int(board.size()) - 1));
        m_top = std::clamp(m_top, std::max(0, m_cursor - rows + 1), m_cursor);
        static const char* const spinner[] = {"◐", "◓", "◑", "◒"};
        for (int i = 0; i < rows && m_top + i < int(board.size()); ++i) {
            const auto& r = board[size_t(m_top + i)];
            const std::string state = r.state == "training"
                                          ? std::string(context.unicode ? spinner[int(context.now * 4) % 4] : "*") +
                                                " " + r.state
                                          : r.state;
            const std::vector<std::string> cells = {
                std::to_string(m_top + i + 1),
                r.runName,
                state,
                std::to_string(r.status.epochsDone),
                r.status.valAccuracy ? percentText(*r.status.valAccuracy) : "-",
                r.testAccuracy ? percentText(*r.testAccuracy) : "-",
                humanDuration(r.status.seconds),
                differences(r, shared) + (r.bracket >= 0 ? "  (bracket " + std::to_string(r.bracket) + ")" : "")};
            const int row = y + 1 + i;
            cx = x;
            for (size_t k = 0; k < heads.size(); ++k) {
                const int width = heads[k].width ? heads[k].width : std::max(0, x + w - cx);
                const Style style = k == 2 ? rowStyle(r.state) : Style::Normal;
                if (heads[k].right)
                    canvas.textRight(cx, row, width, cells[k], style);
                else
                    canvas.text(cx, row, fitText(cells[k], width), style, width);
                cx += width + 1;
            }
            if (m_top + i == m_cursor)
                canvas.restyle(x, row, w, Style::Selected);
        }
    }

    static std::string differences(const tune::LeaderboardRow& row, const std::vector<std::string>& shared) {
        std::vector<std::string> own;
        for (const auto& f : fieldsOf(row.configuration))
            if (std::find(shared.begin(), shared.end(), f) == shared.end())
                own.push_back(f);
        return own.empty() ? "-" : joined(own);
    }

    int m_search = 0, m_cursor = 0, m_top = 0;
    std::vector<int64_t> m_shown; ///< the chosen search's runs, leaderboard order, as last drawn
};

} // namespace

std::unique_ptr<Screen> searchesScreen() { return std::make_unique<SearchesScreen>(); }

} // namespace mppdl::tui
