// Compare: two to eight runs' curves overlaid, one colour each, and only the configuration values
// that differ, side by side.

#include "tui/chart.h"
#include "tui/screen.h"

#include "mppdl/core/text_table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

namespace mppdl::tui {

namespace {

const char* const kMetrics[][2] = {{"val_accuracy", "validation accuracy"},
                                   {"val_loss", "validation loss"},
                                   {"train_loss", "train loss"},
                                   {"train_accuracy", "train accuracy"}};

class CompareScreen : public Screen {
public:
    explicit CompareScreen(std::vector<int64_t> ids) : m_ids(std::move(ids)) {}

    std::string title(const Context&) const override { return "Compare " + std::to_string(m_ids.size()) + " runs"; }

    std::vector<KeyHelp> keys() const override {
        return {{"m", "metric"}, {"t", m_time ? "by epoch" : "by time"}, {"arrows", "scroll"}, {"q", "back"}};
    }

    std::set<int64_t> wantedRuns(const Snapshot&) const override { return {m_ids.begin(), m_ids.end()}; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        const auto& snapshot = *context.snapshot;
        std::vector<ChartLine> lines;
        int lx = x + canvas.text(x, y, std::string(kMetrics[m_metric][1]) + ":", Style::Bold) + 1;
        for (size_t i = 0; i < m_ids.size(); ++i) {
            const auto* run = snapshot.run(m_ids[i]);
            const auto* detail = snapshot.detail(m_ids[i]);
            ChartLine line;
            line.style = seriesStyle(int(i));
            line.label = run ? std::to_string(run->id) + " " + run->name : std::to_string(m_ids[i]) + " (gone)";
            if (detail)
                for (const auto& p : detail->metrics)
                    if (p.segment < 0 && p.kind == "epoch" && p.name == kMetrics[m_metric][0]) {
                        line.x.push_back(m_time ? p.wallSeconds : double(p.epoch));
                        line.y.push_back(p.value);
                    }
            lx += canvas.text(lx, y, context.unicode ? "━ " : "- ", line.style);
            lx += canvas.text(lx, y, fitText(line.label, 18) + "  ");
            lines.push_back(std::move(line));
        }
        ChartFrame frame;
        frame.unicode = context.unicode;
        frame.xUnit = m_time ? "time" : "epoch";
        const int chartH = std::max(6, (h - 1) * 3 / 5);
        drawChart(canvas, x, y + 1, w, chartH, lines, frame);

        // The configuration values that differ.
        std::vector<std::map<std::string, std::string>> configs;
        std::set<std::string> keys;
        for (const int64_t id : m_ids) {
            std::map<std::string, std::string> flat;
            if (const auto* run = snapshot.run(id)) {
                for (const auto& [key, value] : flattenConfig(run->config))
                    flat[key] = value;
                flat["strategy"] = run->strategy;
                flat["test accuracy"] = run->testAccuracy ? percentText(*run->testAccuracy) : "-";
            }
            for (const auto& [k, v] : flat)
                if (k.rfind("rows_kept.", 0) != 0) // what the machine had, not what was chosen
                    keys.insert(k);
            configs.push_back(std::move(flat));
        }
        std::vector<std::string> differing;
        for (const auto& k : keys) {
            std::set<std::string> values;
            for (const auto& c : configs)
                values.insert(c.count(k) ? c.at(k) : "-");
            if (values.size() > 1)
                differing.push_back(k);
        }
        const int tableY = y + 2 + chartH;
        const int keyWidth = std::min(28, w / 3);
        const int valueWidth = std::max(6, (w - keyWidth) / int(std::max<size_t>(1, m_ids.size())) - 1);
        canvas.text(x, tableY, "differs", Style::Header, keyWidth);
        for (size_t i = 0; i < m_ids.size(); ++i)
            canvas.text(x + keyWidth + 1 + int(i) * (valueWidth + 1), tableY, "run " + std::to_string(m_ids[i]),
                        seriesStyle(int(i)), valueWidth);
        const int rows = y + h - tableY - 1;
        m_scroll = std::clamp(m_scroll, 0, std::max(0, int(differing.size()) - rows));
        if (differing.empty())
            canvas.text(x, tableY + 1, "(the configurations are the same)", Style::Dim);
        for (int r = 0; r < rows && m_scroll + r < int(differing.size()); ++r) {
            const auto& k = differing[size_t(m_scroll + r)];
            canvas.text(x, tableY + 1 + r, fitText(k, keyWidth), Style::Normal, keyWidth);
            for (size_t i = 0; i < configs.size(); ++i)
                canvas.text(x + keyWidth + 1 + int(i) * (valueWidth + 1), tableY + 1 + r,
                            fitText(configs[i].count(k) ? configs[i].at(k) : "-", valueWidth), Style::Normal,
                            valueWidth);
        }
    }

    Outcome key(int key, Context&) override {
        switch (key) {
        case 'm': m_metric = (m_metric + 1) % int(std::size(kMetrics)); break;
        case 't': m_time = !m_time; break;
        case kDown: ++m_scroll; break;
        case kUp: m_scroll = std::max(0, m_scroll - 1); break;
        case 'q':
        case kEscape: return Outcome::back();
        default: break;
        }
        return Outcome::stay();
    }

private:
    std::vector<int64_t> m_ids;
    int m_metric = 0;
    bool m_time = false;
    int m_scroll = 0;
};

} // namespace

std::unique_ptr<Screen> compareScreen(std::vector<int64_t> runIds) {
    return std::make_unique<CompareScreen>(std::move(runIds));
}

} // namespace mppdl::tui
