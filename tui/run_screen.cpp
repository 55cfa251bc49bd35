// A run: its curves (loss and accuracy, train and validation, against epochs or wall time, and
// the minibatch curve while it trains), its segments, its configuration, its checkpoints and its
// test evaluation with the confusion matrix, whose cells open the rows behind them. Panels are switched with Tab or
// 1-5, so that 80x24 shows each one whole.

#include "tui/chart.h"
#include "tui/screen.h"

#include "mppdl/core/text_table.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <map>

namespace mppdl::tui {

namespace {

const char* const kPanels[] = {"Curves", "Segments", "Config", "Checkpoints", "Test"};
constexpr int kPanelCount = 5;

/// The merged model's epoch series `name`, against epochs or wall seconds.
ChartLine epochLine(const std::vector<store::MetricPoint>& points, const std::string& name, const std::string& label,
                    bool time, Style style) {
    ChartLine line;
    line.label = label;
    line.style = style;
    for (const auto& p : points)
        if (p.segment < 0 && p.kind == "epoch" && p.name == name) {
            line.x.push_back(time ? p.wallSeconds : double(p.epoch));
            line.y.push_back(p.value);
        }
    return line;
}

/// The minibatch series `name` (progress points), placed on the epoch axis by its step.
ChartLine progressLine(const std::vector<store::MetricPoint>& points, const std::string& name, const std::string& label,
                       bool time, Style style) {
    // Steps per epoch from a finished epoch (its step is the run's step count at its end).
    double stepsPerEpoch = 0;
    for (const auto& p : points)
        if (p.segment < 0 && p.kind == "epoch" && p.epoch > 0 && p.step > 0)
            stepsPerEpoch = double(p.step) / double(p.epoch);
    int64_t highest = 1;
    for (const auto& p : points)
        if (p.kind == "progress")
            highest = std::max(highest, p.step);
    ChartLine line;
    line.label = label;
    line.style = style;
    for (const auto& p : points)
        if (p.segment < 0 && p.kind == "progress" && p.name == name) {
            line.x.push_back(time ? p.wallSeconds
                                  : double(p.step) / (stepsPerEpoch > 0 ? stepsPerEpoch : double(highest)));
            line.y.push_back(p.value);
        }
    return line;
}

class RunScreen : public Screen {
public:
    explicit RunScreen(int64_t id) : m_id(id) {}

    std::string title(const Context& context) const override {
        const auto* run = context.snapshot->run(m_id);
        return "Run " + std::to_string(m_id) + (run ? " " + run->name : std::string(" (gone)"));
    }

    std::vector<KeyHelp> keys() const override {
        std::vector<KeyHelp> out = {{"Tab", "panel"}, {"1-5", "panel"}};
        if (m_panel == 0)
            out.insert(out.end(), {{"t", m_time ? "by epoch" : "by time"}, {"m", "minibatches"}});
        if (m_panel == 4)
            out.insert(out.end(), {{"arrows", "cell"}, {"Enter", "its rows"}});
        if (m_panel == 2 || m_panel == 3)
            out.push_back({"arrows", "scroll"});
        out.insert(out.end(), {{"s", "stop"}, {"r", "resume"}, {"d", "duplicate"}, {"q", "back"}});
        return out;
    }

    std::set<int64_t> wantedRuns(const Snapshot&) const override { return {m_id}; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        const auto& snapshot = *context.snapshot;
        const auto* run = snapshot.run(m_id);
        if (!run) {
            canvas.text(x + 1, y + 1, "run " + std::to_string(m_id) + " is not in the project (any more)", Style::Bad);
            return;
        }
        const auto* detail = snapshot.detail(m_id);
        // The run in one line, then the panel tabs.
        std::string line = stateText(*run, context.now, context.unicode);
        canvas.text(x, y, line, stateStyle(run->state));
        std::string facts = "  " + run->strategy + (run->segments > 1 ? " x" + std::to_string(run->segments) : "") +
                            "  " + run->architectureName + "@" + std::to_string(run->architectureVersion) + "  epoch " +
                            std::to_string(run->epochsDone) + "/" + std::to_string(run->epochs);
        if (run->bestValAccuracy)
            facts += "  best val " + percentText(*run->bestValAccuracy) + " (" + std::to_string(run->bestEpoch) + ")";
        if (run->testAccuracy)
            facts += "  test " + percentText(*run->testAccuracy);
        if (run->seconds > 0)
            facts += "  " + humanDuration(run->seconds);
        canvas.text(x + textColumns(line), y, fitText(facts, w - textColumns(line)));
        int tx = x;
        for (int p = 0; p < kPanelCount; ++p) {
            const std::string tab = std::to_string(p + 1) + " " + kPanels[p];
            tx += canvas.text(tx, y + 1, " " + tab + " ", p == m_panel ? Style::Selected : Style::Dim) + 1;
        }
        if (!run->errorMessage.empty() && run->state != store::RunState::Finished)
            canvas.text(x, y + h - 1, fitText(run->errorKind + " error: " + run->errorMessage, w), Style::Bad);
        const int bodyY = y + 3, bodyH = h - 3 - (run->errorMessage.empty() ? 0 : 1);
        if (!detail) {
            canvas.text(x + 1, bodyY, "reading...", Style::Dim);
            return;
        }
        switch (m_panel) {
        case 0: drawCurves(canvas, x, bodyY, w, bodyH, *detail, context); break;
        case 1: drawSegments(canvas, x, bodyY, w, bodyH, *detail, context); break;
        case 2: drawConfig(canvas, x, bodyY, w, bodyH, *run); break;
        case 3: drawCheckpoints(canvas, x, bodyY, w, bodyH, *detail); break;
        default: drawTest(canvas, x, bodyY, w, bodyH, *detail); break;
        }
    }

    Outcome key(int key, Context& context) override {
        const auto* run = context.snapshot->run(m_id);
        switch (key) {
        case kTab: m_panel = (m_panel + 1) % kPanelCount; break;
        case kBackTab: m_panel = (m_panel + kPanelCount - 1) % kPanelCount; break;
        case '1':
        case '2':
        case '3':
        case '4':
        case '5': m_panel = key - '1'; break;
        case 't': m_time = !m_time; break;
        case 'm': m_minibatches = !m_minibatches; break;
        case kUp:
            m_row = std::max(0, m_row - 1);
            m_scroll = std::max(0, m_scroll - 1);
            break;
        case kDown:
            ++m_row;
            ++m_scroll;
            break;
        case kLeft: m_column = std::max(0, m_column - 1); break;
        case kRight: ++m_column; break;
        case kPageDown: m_scroll += 10; break;
        case kPageUp: m_scroll = std::max(0, m_scroll - 10); break;
        case 's':
        case 'r':
            if (run)
                context.message = key == 's' ? stopRun(*run) : resumeRun(*run, context);
            context.watch->poke();
            break;
        case 'd': return Outcome::open(launchScreen(m_id, *context.snapshot));
        case kEnter:
            if (m_panel == 4 && m_cell.runId != 0)
                return Outcome::open(confusionCellScreen(m_cell, context));
            break;
        case 'q':
        case kEscape: return Outcome::back();
        default: break;
        }
        return Outcome::stay();
    }

private:
    void drawCurves(Canvas& canvas, int x, int y, int w, int h, const RunDetail& detail, const Context& context) {
        ChartFrame frame;
        frame.unicode = context.unicode;
        frame.xUnit = m_time ? "time" : "epoch";
        const bool both = h >= 14;
        const int chartH = both ? (h - 2) / 2 : h - 1;
        std::vector<ChartLine> loss = {epochLine(detail.metrics, "train_loss", "train loss", m_time, Style::Series0),
                                       epochLine(detail.metrics, "val_loss", "validation loss", m_time,
                                                 Style::Series1)};
        if (m_minibatches)
            loss.insert(loss.begin(), progressLine(detail.metrics, "train_loss", "minibatch loss", m_time, Style::Dim));
        std::vector<ChartLine> accuracy = {
            epochLine(detail.metrics, "train_accuracy", "train accuracy", m_time, Style::Series2),
            epochLine(detail.metrics, "val_accuracy", "validation accuracy", m_time, Style::Series3)};
        const auto legend = [&](int row, const std::vector<ChartLine>& lines, const std::string& what) {
            int lx = x + canvas.text(x, row, what + ":", Style::Bold) + 1;
            for (const auto& l : lines) {
                if (l.x.empty())
                    continue;
                lx += canvas.text(lx, row, context.unicode ? "━ " : "- ", l.style);
                lx += canvas.text(lx, row, l.label + "  ", Style::Normal);
            }
        };
        legend(y, loss, "loss");
        drawChart(canvas, x, y + 1, w, chartH - 1, loss, frame);
        if (both) {
            legend(y + chartH + 1, accuracy, "accuracy");
            drawChart(canvas, x, y + chartH + 2, w, chartH - 1, accuracy, frame);
        }
    }

    void drawSegments(Canvas& canvas, int x, int y, int w, int h, const RunDetail& detail, const Context& context) {
        // The last epoch's figures of each segment, and its training loss over the epochs.
        std::map<int, std::map<std::string, double>> last;
        std::map<int, std::vector<double>> losses;
        int lastEpoch = 0;
        for (const auto& p : detail.metrics)
            if (p.kind == "epoch" && p.segment >= 0)
                lastEpoch = std::max(lastEpoch, p.epoch);
        for (const auto& p : detail.metrics) {
            if (p.kind != "epoch" || p.segment < 0)
                continue;
            if (p.epoch == lastEpoch)
                last[p.segment][p.name] = p.value;
            if (p.name == "train_loss")
                losses[p.segment].push_back(p.value);
        }
        if (last.empty()) {
            canvas.text(x + 1, y, "No segment figures: a single-segment run, or no epoch finished yet.", Style::Dim);
            return;
        }
        canvas.text(x, y, "epoch " + std::to_string(lastEpoch) + ", each segment:", Style::Bold);
        const std::vector<std::pair<std::string, int>> heads = {{"segment", 8}, {"rows", 8},  {"loss", 8},
                                                                {"acc", 8},     {"img/s", 8}, {"diverg.", 9}};
        int cx = x;
        for (const auto& [name, width] : heads) {
            canvas.textRight(cx, y + 1, width, name, Style::Header);
            cx += width + 1;
        }
        canvas.text(cx + 1, y + 1, "loss by epoch", Style::Header);
        const int sparkWidth = std::max(0, x + w - cx - 1);
        int row = y + 2;
        for (const auto& [segment, figures] : last) {
            if (row >= y + h)
                break;
            const auto value = [&](const char* name, int digits) {
                const auto it = figures.find(name);
                return it == figures.end() ? std::string("-") : fixedText(it->second, digits);
            };
            const auto acc = figures.find("train_accuracy");
            const std::vector<std::string> cells = {
                std::to_string(segment),    value("rows", 0),
                value("train_loss", 4),     acc == figures.end() ? "-" : percentText(acc->second),
                value("images_per_sec", 0), value("divergence", 4)};
            cx = x;
            for (size_t k = 0; k < cells.size(); ++k) {
                canvas.textRight(cx, row, heads[k].second, cells[k]);
                cx += heads[k].second + 1;
            }
            canvas.text(cx + 1, row, sparkline(losses[segment], sparkWidth, context.unicode), seriesStyle(segment));
            ++row;
        }
    }

    void drawConfig(Canvas& canvas, int x, int y, int w, int h, const store::RunRecord& run) {
        std::vector<std::string> lines;
        for (const auto& [key, value] : flattenConfig(run.config))
            lines.push_back(key + ": " + value);
        lines.push_back("host: " + run.host + "  pid: " + std::to_string(run.pid));
        lines.push_back("started: " + run.startedAt + "  ended: " + (run.endedAt.empty() ? "-" : run.endedAt));
        m_scroll = std::clamp(m_scroll, 0, std::max(0, int(lines.size()) - h));
        for (int i = 0; i < h && m_scroll + i < int(lines.size()); ++i)
            canvas.text(x, y + i, fitText(lines[size_t(m_scroll + i)], w));
    }

    void drawCheckpoints(Canvas& canvas, int x, int y, int w, int h, const RunDetail& detail) {
        if (detail.checkpoints.empty()) {
            canvas.text(x + 1, y, "No checkpoints (yet).", Style::Dim);
            return;
        }
        const std::vector<std::pair<std::string, int>> heads = {{"epoch", 6},   {"val acc", 8},    {"wall", 8},
                                                                {"weights", 9}, {"resumable", 10}, {"saved", 20}};
        int cx = x;
        for (const auto& [name, width] : heads) {
            canvas.text(cx, y, name, Style::Header, width);
            cx += width + 1;
        }
        m_scroll = std::clamp(m_scroll, 0, std::max(0, int(detail.checkpoints.size()) - (h - 1)));
        for (int i = 0; i + 1 < h && m_scroll + i < int(detail.checkpoints.size()); ++i) {
            const auto& c = detail.checkpoints[size_t(m_scroll + i)];
            const std::vector<std::string> cells = {std::to_string(c.epoch),
                                                    c.valAccuracy ? percentText(*c.valAccuracy) : "-",
                                                    humanDuration(c.wallSeconds),
                                                    humanBytes(double(c.weightBytes)),
                                                    c.stateBytes > 0 ? "yes" : "weights only",
                                                    c.createdAt};
            cx = x;
            for (size_t k = 0; k < cells.size(); ++k) {
                canvas.text(cx, y + 1 + i, fitText(cells[k], heads[k].second), Style::Normal, heads[k].second);
                cx += heads[k].second + 1;
            }
        }
        (void)w;
    }

    void drawTest(Canvas& canvas, int x, int y, int w, int h, const RunDetail& detail) {
        const store::EvaluationRecord* test = nullptr;
        for (const auto& e : detail.evaluations)
            if (e.evaluation.split == "test" || !test)
                test = &e;
        if (!test) {
            canvas.text(x + 1, y, "No test evaluation (the run has not finished, or its data has no test split).",
                        Style::Dim);
            return;
        }
        const auto& ev = test->evaluation;
        canvas.text(x, y,
                    fitText(ev.split + " of epoch " + std::to_string(test->epoch) + ": accuracy " +
                                percentText(ev.accuracy) + ", loss " + fixedText(ev.loss, 4) + ", " +
                                groupThousands(ev.samples) + " samples",
                            w),
                    Style::Bold);
        const int n = int(ev.numClasses());
        if (n == 0 || ev.confusion.size() != size_t(n) * size_t(n))
            return;
        m_row = std::clamp(m_row, 0, n - 1);
        m_column = std::clamp(m_column, 0, n - 1);
        // Per-class accuracy on the left, the confusion matrix (true class down, predicted across).
        const int nameWidth = 12;
        int cellWidth = 6;
        for (const auto v : ev.confusion)
            cellWidth = std::max(cellWidth, int(std::to_string(v).size()) + 1);
        const int matrixX = x + nameWidth + 9;
        const int fits = std::max(1, (x + w - matrixX) / cellWidth);
        const int firstColumn = std::clamp(m_column - fits + 1, 0, std::max(0, n - fits));
        canvas.text(x, y + 1, "true class", Style::Header, nameWidth);
        canvas.textRight(x + nameWidth, y + 1, 8, "acc", Style::Header);
        for (int c = firstColumn; c < n && c < firstColumn + fits; ++c)
            canvas.textRight(matrixX + (c - firstColumn) * cellWidth, y + 1, cellWidth,
                             fitText(ev.classNames[size_t(c)], cellWidth - 1), Style::Header);
        const int rows = std::max(0, h - 4);
        const int firstRow = std::clamp(m_row - rows + 1, 0, std::max(0, n - rows));
        for (int r = firstRow; r < n && r < firstRow + rows; ++r) {
            const int row = y + 2 + (r - firstRow);
            canvas.text(x, row, fitText(ev.classNames[size_t(r)], nameWidth), Style::Normal, nameWidth);
            canvas.textRight(x + nameWidth, row, 8,
                             r < int(ev.perClassAccuracy.size()) ? percentText(ev.perClassAccuracy[size_t(r)]) : "-");
            for (int c = firstColumn; c < n && c < firstColumn + fits; ++c) {
                const int64_t v = ev.confusion[size_t(r) * size_t(n) + size_t(c)];
                const Style style = r == m_row && c == m_column ? Style::Selected
                                    : r == c                    ? Style::Good
                                    : v > 0                     ? Style::Bad
                                                                : Style::Dim;
                canvas.textRight(matrixX + (c - firstColumn) * cellWidth, row, cellWidth, std::to_string(v), style);
            }
        }
        const int64_t chosen = ev.confusion[size_t(m_row) * size_t(n) + size_t(m_column)];
        canvas.text(x, y + h - 1,
                    fitText(groupThousands(chosen) + " " + ev.classNames[size_t(m_row)] + " rows predicted as " +
                                ev.classNames[size_t(m_column)] + (chosen > 0 ? ": Enter lists them" : ""),
                            w),
                    Style::Dim);
        // What Enter opens: only the test split's cells can be read again (the rows behind them).
        m_cell = {};
        if (ev.split == "test" && chosen > 0)
            m_cell = {
                m_id, test->epoch, m_row, m_column, ev.classNames[size_t(m_row)], ev.classNames[size_t(m_column)]};
    }

    int64_t m_id;
    int m_panel = 0;
    bool m_time = false, m_minibatches = true;
    int m_row = 0, m_column = 0, m_scroll = 0;
    ConfusionCell m_cell; ///< the chosen cell of the test panel as last drawn (runId 0: none)
};

} // namespace

std::unique_ptr<Screen> runScreen(int64_t runId) { return std::make_unique<RunScreen>(runId); }

} // namespace mppdl::tui
