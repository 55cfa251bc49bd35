// Datasets: the project's data sources as recorded when a run read them: where, schema, rows per
// class (as bars) and per-channel statistics.

#include "tui/screen.h"

#include "mppdl/core/text_table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace mppdl::tui {

namespace {

class DatasetsScreen : public Screen {
public:
    std::string title(const Context& context) const override {
        return "Datasets (" + std::to_string(context.snapshot->datasets.size()) + ")";
    }

    std::vector<KeyHelp> keys() const override { return {{"arrows", "choose"}, {"q", "back"}}; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        m_drawn = context.snapshot;
        const auto& datasets = m_drawn->datasets;
        if (datasets.empty()) {
            canvas.text(x + 1, y + 1, "No datasets yet: a run records the one it reads.", Style::Dim);
            return;
        }
        m_cursor = std::clamp(m_cursor, 0, int(datasets.size()) - 1);
        // The list on the left, the chosen one's record on the right.
        const int listWidth = std::min(30, w / 3);
        canvas.text(x, y, "dataset", Style::Header, listWidth);
        for (int i = 0; i < int(datasets.size()) && i + 1 < h; ++i) {
            canvas.text(x, y + 1 + i,
                        fitText(std::to_string(datasets[size_t(i)].id) + " " + datasets[size_t(i)].name, listWidth));
            if (i == m_cursor)
                canvas.restyle(x, y + 1 + i, listWidth, Style::Selected);
        }
        const auto& d = datasets[size_t(m_cursor)];
        const int dx = x + listWidth + 2, dw = w - listWidth - 2;
        const auto schema = nlohmann::json::parse(d.schema, nullptr, false);
        const auto stats = nlohmann::json::parse(d.statistics, nullptr, false);
        int row = y;
        const auto line = [&](const std::string& text, Style style = Style::Normal) {
            if (row < y + h)
                canvas.text(dx, row++, fitText(text, dw), style);
        };
        line(d.name + " (" + d.kind + ")", Style::Title);
        line(d.location);
        if (!schema.is_discarded()) {
            std::string shape;
            for (const auto& s : schema.value("sample_shape", nlohmann::json::array()))
                shape += (shape.empty() ? "" : "x") + s.dump();
            line("samples " + shape + " " + schema.value("dtype", std::string()) + ", " +
                 groupThousands(schema.value("train_rows", int64_t(0))) + " training rows, " +
                 groupThousands(schema.value("test_rows", int64_t(0))) + " test rows");
        }
        if (stats.is_discarded())
            return;
        const auto counts = stats.value("class_counts", nlohmann::json::array());
        if (!counts.empty()) {
            ++row;
            line("rows per class", Style::Header);
            double highest = 1;
            for (const auto& c : counts)
                highest = std::max(highest, c.get<double>());
            const int nameWidth = 14, barWidth = std::max(4, dw - nameWidth - 10);
            for (size_t c = 0; c < counts.size() && row < y + h - 2; ++c) {
                const double n = counts[c].get<double>();
                const std::string name = c < d.classNames.size() ? d.classNames[c] : std::to_string(c);
                const int cells = int(std::lround(n / highest * barWidth));
                std::string bar;
                for (int k = 0; k < cells; ++k)
                    bar += context.unicode ? "█" : "#";
                canvas.text(dx, row, fitText(name, nameWidth), Style::Normal, nameWidth);
                canvas.textRight(dx + nameWidth, row, 8, groupThousands((long long)n));
                canvas.text(dx + nameWidth + 9, row, bar, seriesStyle(int(c)));
                ++row;
            }
        }
        const auto mean = stats.value("channel_mean", nlohmann::json::array());
        const auto spread = stats.value("channel_std", nlohmann::json::array());
        if (!mean.empty()) {
            std::string text = "channels: ";
            for (size_t c = 0; c < mean.size(); ++c)
                text += "mean " + fixedText(mean[c].get<double>(), 3) +
                        (c < spread.size() ? " sd " + fixedText(spread[c].get<double>(), 3) : "") + "  ";
            line(text);
        }
        if (stats.contains("min") && stats.contains("max"))
            line("range " + stats["min"].dump() + " to " + stats["max"].dump());
    }

    Outcome key(int key, Context&) override {
        switch (key) {
        case kUp: m_cursor = std::max(0, m_cursor - 1); break;
        case kDown: ++m_cursor; break;
        case 'q':
        case kEscape: return Outcome::back();
        default: break;
        }
        return Outcome::stay();
    }

private:
    std::shared_ptr<const Snapshot> m_drawn;
    int m_cursor = 0;
};

} // namespace

std::unique_ptr<Screen> datasetsScreen() { return std::make_unique<DatasetsScreen>(); }

} // namespace mppdl::tui
