// Datasets: the project's data sources as recorded when a run read them: where, schema, rows per
// class (as bars) and per-channel statistics; Enter reads one again for a picture of a row of
// each class and how N segments would hold its rows (what `mppdl data show --segments` prints).

#include "tui/chart.h"
#include "tui/screen.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/preview.h"
#include "mppdl/data/source.h"
#include "mppdl/session/recorded_run.h"

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

    std::vector<KeyHelp> keys() const override {
        return {{"arrows", "choose"}, {"Enter", "rows and segments"}, {"q", "back"}};
    }

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

    Outcome key(int key, Context& context) override {
        if (moveCursor(key, m_cursor, m_drawn ? int(m_drawn->datasets.size()) : 0))
            return Outcome::stay();
        switch (key) {
        case kEnter:
            if (m_drawn && m_cursor < int(m_drawn->datasets.size()))
                return Outcome::open(datasetRowsScreen(m_drawn->datasets[size_t(m_cursor)], context));
            break;
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

/// A dataset read again: the source, and the first row of each class.
struct ReadRows {
    std::shared_ptr<const data::LoadedSource> source;
    std::vector<data::RowPreview> previews;
};

const char* const kShades[] = {" ", "░", "▒", "▓", "█"};

class DatasetRowsScreen : public Screen {
public:
    DatasetRowsScreen(const store::DatasetRecord& dataset, Context& context) : m_dataset(dataset) {
        m_read.start(*context.jobs, [dataset] {
            const auto where = session::datasetSource(dataset);
            ReadRows read;
            read.source = std::make_shared<const data::LoadedSource>(data::loadSource(where.location, where.source));
            read.previews = data::previewRows(read.source->train, int(read.source->train.classNames().size()));
            return read;
        });
    }

    std::string title(const Context&) const override { return m_dataset.name; }

    std::vector<KeyHelp> keys() const override {
        return {{"+ -", "segments"}, {"p", "distribution"}, {"Tab", "more classes"}, {"q", "back"}};
    }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        if (!m_read.done()) {
            canvas.text(x + 1, y, fitText((context.unicode ? "… reading " : "reading ") + m_dataset.location, w - 1),
                        Style::Running);
            return;
        }
        const auto* read = m_read.value();
        if (!read) {
            canvas.text(x + 1, y, fitText("Cannot read the dataset again: " + m_read.error(), w - 1), Style::Bad);
            return;
        }
        const auto& train = read->source->train;
        const auto shape = train.sampleShape();
        std::string shapeText;
        for (const auto d : shape)
            shapeText += (shapeText.empty() ? "" : "x") + std::to_string(d);
        canvas.text(
            x, y,
            fitText(shapeText + " samples, " + groupThousands(train.size()) + " train" +
                        (read->source->test.empty() ? std::string()
                                                    : " / " + groupThousands(read->source->test.size()) + " test") +
                        " rows; a row of each class:",
                    w),
            Style::Bold);
        const int used = drawPreviews(canvas, x, y + 1, w, std::max(0, h / 2 - 1), *read, shape, context);
        drawSegments(canvas, x, y + 2 + used, w, h - 2 - used, train);
    }

    Outcome key(int key, Context&) override {
        const auto& policies = data::distributionPolicies();
        switch (key) {
        case '+':
        case '=':
        case kRight: m_segments = std::min(64, m_segments + 1); break;
        case '-':
        case kLeft: m_segments = std::max(1, m_segments - 1); break;
        case 'p': m_policy = (m_policy + 1) % int(policies.size()); break;
        case kTab: m_firstClass += m_pageSize; break;
        case 'q':
        case kEscape: return Outcome::back();
        default: break;
        }
        return Outcome::stay();
    }

private:
    /// Images as pictures side by side, each with its class under it; other rows as their first
    /// values. Returns the rows drawn.
    int drawPreviews(Canvas& canvas, int x, int y, int w, int h, const ReadRows& read,
                     const std::vector<int64_t>& shape, const Context& context) {
        const auto& names = read.source->train.classNames();
        const auto name = [&](int64_t label) {
            return label < int64_t(names.size()) ? names[size_t(label)] : std::to_string(label);
        };
        if (data::isImageShape(shape) && h >= 3) {
            const int channels = int(shape[0]), height = int(shape[1]), width = int(shape[2]);
            // Side by side, at least 14 columns each (smaller ones are not recognisable), larger
            // while every class fits and the height allows; Tab shows the classes after them.
            const int count = int(read.previews.size());
            const int pictures = std::clamp(std::min(count, (w + 2) / 16), 1, std::max(1, count));
            int columns = std::max(4, std::min(2 * width, (w + 2) / pictures - 2));
            while (columns > 2 && pictureRows(height, width, columns) > h - 1)
                --columns;
            const int rows = pictureRows(height, width, columns);
            const int fit = std::max(1, (w + 2) / (columns + 2));
            m_pageSize = fit;
            if (m_firstClass >= count)
                m_firstClass = 0;
            for (int i = 0; m_firstClass + i < count && i < fit; ++i) {
                const auto& row = read.previews[size_t(m_firstClass + i)];
                const int px = x + i * (columns + 2);
                const auto lines = pictureLines(row.pixels, height, width, channels, columns, rows, context.unicode);
                for (size_t k = 0; k < lines.size(); ++k)
                    canvas.text(px, y + int(k), lines[k]);
                canvas.text(px, y + rows, fitText(name(row.label), columns), Style::Dim);
            }
            return rows + 1;
        }
        int line = 0;
        for (const auto& row : read.previews) {
            if (line >= h)
                break;
            std::string values = name(row.label) + ":";
            for (const double v : row.values)
                values += " " + fixedText(v, 3);
            canvas.text(x, y + line++, fitText(values, w));
        }
        return line;
    }

    /// How m_segments segments would hold the rows under the chosen policy: rows and each class's
    /// rows per segment (counts when they fit, else one shade per class), and the skew.
    void drawSegments(Canvas& canvas, int x, int y, int w, int h, const data::Dataset& train) {
        const auto& policy = data::distributionPolicies()[size_t(m_policy)];
        canvas.text(x, y,
                    fitText(std::to_string(m_segments) + (m_segments == 1 ? " segment" : " segments") +
                                ", distributed by " + policy.name + " (+ - segments, p distribution):",
                            w),
                    Style::Bold);
        if (m_summaryFor != std::make_pair(m_segments, m_policy)) {
            m_summaryFor = {m_segments, m_policy};
            m_summaryError.clear();
            try {
                m_summary = data::previewDistribution(train, m_segments, policy.name);
            } catch (const Error& e) {
                m_summaryError = e.what();
            }
        }
        if (!m_summaryError.empty()) {
            canvas.text(x, y + 1, fitText(m_summaryError, w), Style::Bad);
            return;
        }
        const auto& names = train.classNames();
        const int lead = 17;
        // Wide enough for the class names where the terminal allows, for counts at least.
        const int cellWidth = std::clamp((w - lead) / std::max(1, int(names.size())), 6, 12);
        const bool counts = lead + int(names.size()) * cellWidth <= w;
        canvas.text(x, y + 1, "segment", Style::Header, 8);
        canvas.textRight(x + 8, y + 1, 9, "rows", Style::Header);
        for (size_t c = 0; c < names.size(); ++c) {
            if (counts)
                canvas.textRight(x + lead + int(c) * cellWidth, y + 1, cellWidth, fitText(names[c], cellWidth - 1),
                                 Style::Header);
        }
        if (!counts)
            canvas.text(x + lead + 1, y + 1, "rows of each class", Style::Header);
        int64_t most = 1;
        for (const auto& s : m_summary.segments)
            for (const auto n : s.classCounts)
                most = std::max(most, n);
        const int rows = std::max(0, h - 3);
        for (int i = 0; i < rows && i < int(m_summary.segments.size()); ++i) {
            const auto& s = m_summary.segments[size_t(i)];
            const bool last = i == rows - 1 && rows < int(m_summary.segments.size());
            canvas.text(x, y + 2 + i, last ? "…" : std::to_string(i), Style::Normal, 8);
            if (last)
                break;
            canvas.textRight(x + 8, y + 2 + i, 9, groupThousands(s.rows));
            for (size_t c = 0; c < s.classCounts.size(); ++c) {
                const int64_t n = s.classCounts[c];
                // Shaded by count, so that a non-IID policy (by-label) shows as a diagonal.
                const Style style = n == 0 ? Style::Dim : n * 2 >= most ? Style::Bold : Style::Normal;
                if (counts)
                    canvas.textRight(x + lead + int(c) * cellWidth, y + 2 + i, cellWidth, groupThousands(n), style);
                else
                    canvas.text(x + lead + 1 + int(c), y + 2 + i,
                                kShades[std::clamp(int(std::lround(4.0 * double(n) / double(most))), 0, 4)],
                                seriesStyle(int(c)));
            }
        }
        const int skewRow = y + 2 + std::min(rows, int(m_summary.segments.size()));
        if (skewRow < y + h)
            canvas.text(x, skewRow,
                        fitText("skew " + fixedText(m_summary.skew, 3) +
                                    " (rows of the fullest segment over the mean; 1 is even)",
                                w),
                        Style::Dim);
    }

    store::DatasetRecord m_dataset;
    Pending<ReadRows> m_read;
    int m_segments = 4, m_policy = 0;
    int m_firstClass = 0, m_pageSize = 1; ///< the pictures' first class, and how many fit
    std::pair<int, int> m_summaryFor{-1, -1};
    data::DistributionSummary m_summary;
    std::string m_summaryError;
};

} // namespace

std::unique_ptr<Screen> datasetsScreen() { return std::make_unique<DatasetsScreen>(); }

std::unique_ptr<Screen> datasetRowsScreen(const store::DatasetRecord& dataset, Context& context) {
    return std::make_unique<DatasetRowsScreen>(dataset, context);
}

} // namespace mppdl::tui
