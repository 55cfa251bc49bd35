// The test rows behind one cell of a run's confusion matrix (Enter on the Run screen's Test panel):
// the run's recorded dataset read again and its test split predicted again with that epoch's
// weights on the CPU (session::confusionCellRows, the GUI's dialog's use case), on a job, then a
// list of the rows with the probability the model gave the wrong class and a picture of the
// chosen row in shading characters.

#include "tui/chart.h"
#include "tui/screen.h"

#include "mppdl/core/text_table.h"
#include "mppdl/session/run_model.h"

#include <algorithm>

namespace mppdl::tui {

namespace {

const char* const kSpinner[] = {"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"};

class ConfusionCellScreen : public Screen {
public:
    ConfusionCellScreen(const ConfusionCell& cell, Context& context) : m_cell(cell) {
        const std::string path = context.project;
        m_rows.start(*context.jobs, [path, cell] {
            // A connection of the job's own: the watch's reads and this one never share one.
            const auto project = store::Project::open(path, store::Access::Read);
            return session::confusionCellRows(project, cell.runId, cell.epoch, cell.trueClass, cell.predictedClass);
        });
    }

    std::string title(const Context&) const override { return m_cell.trueName + " as " + m_cell.predictedName; }

    std::vector<KeyHelp> keys() const override { return {{"arrows", "row"}, {"q", "back"}}; }

    void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) override {
        if (!m_rows.done()) {
            const char* spin = context.unicode ? kSpinner[int(context.now * 10) % 10] : "*";
            canvas.text(x + 1, y,
                        fitText(std::string(spin) + " predicting run " + std::to_string(m_cell.runId) +
                                    "'s test rows again with epoch " + std::to_string(m_cell.epoch) + "'s model...",
                                w - 1),
                        Style::Running);
            return;
        }
        const auto* found = m_rows.value();
        if (!found) {
            canvas.text(x + 1, y, fitText("Cannot list the rows: " + m_rows.error(), w - 1), Style::Bad);
            return;
        }
        std::string summary = groupThousands(found->matching) + " of the " + groupThousands(found->total) +
                              " test rows of class " + m_cell.trueName + " are predicted as " + m_cell.predictedName +
                              " by epoch " + std::to_string(m_cell.epoch) + "'s model";
        if (found->matching > int64_t(found->rows.size()))
            summary += " (the first " + std::to_string(found->rows.size()) + " listed)";
        auto lines = wrapText(summary + ".", w);
        lines.resize(std::min<size_t>(lines.size(), 2));
        for (size_t i = 0; i < lines.size(); ++i)
            canvas.text(x, y + int(i), lines[i], Style::Bold);
        if (found->rows.empty())
            return;
        // The rows on the left: the test split's row (0-based) and p(predicted class).
        const int top = int(lines.size()) + 1;
        const int listWidth = 18, listTop = y + top, listRows = std::max(1, h - top - 1);
        m_cursor = std::clamp(m_cursor, 0, int(found->rows.size()) - 1);
        m_top = std::clamp(m_top, std::max(0, m_cursor - listRows + 1), m_cursor);
        canvas.text(x, listTop - 1, "test row", Style::Header, 9);
        canvas.textRight(x + 9, listTop - 1, 8, "p(pred)", Style::Header);
        for (int i = 0; i < listRows && m_top + i < int(found->rows.size()); ++i) {
            const size_t k = size_t(m_top + i);
            canvas.text(x, listTop + i, "#" + std::to_string(found->rows[k].row), Style::Normal, 9);
            canvas.textRight(x + 9, listTop + i, 8, percentText(found->probability[k]));
            if (m_top + i == m_cursor)
                canvas.restyle(x, listTop + i, listWidth - 1, Style::Selected);
        }
        drawRow(canvas, x + listWidth + 1, listTop - 1, w - listWidth - 1, h - top, *found, context);
    }

    Outcome key(int key, Context&) override {
        const auto* found = m_rows.done() ? m_rows.value() : nullptr;
        if (moveCursor(key, m_cursor, found ? int(found->rows.size()) : 0))
            return Outcome::stay();
        switch (key) {
        case 'q':
        case kEscape: return Outcome::back();
        default: break;
        }
        return Outcome::stay();
    }

private:
    /// The chosen row: a picture for images (as large as the space keeps its aspect), else its
    /// first features as numbers.
    void drawRow(Canvas& canvas, int x, int y, int w, int h, const session::ConfusionCellRows& found,
                 const Context& context) const {
        const auto& row = found.rows[size_t(m_cursor)];
        canvas.text(x, y,
                    fitText("row #" + std::to_string(row.row) + ": " + m_cell.trueName + ", p(" + m_cell.predictedName +
                                ") " + percentText(found.probability[size_t(m_cursor)]),
                            w),
                    Style::Header);
        const auto& shape = found.sampleShape;
        if (!row.pixels.empty() && shape.size() == 3) {
            const int channels = int(shape[0]), height = int(shape[1]), width = int(shape[2]);
            int columns = std::min(w, 2 * width);
            while (columns > 1 && pictureRows(height, width, columns) > h - 1)
                --columns;
            const int rows = pictureRows(height, width, columns);
            const auto lines = pictureLines(row.pixels, height, width, channels, columns, rows, context.unicode);
            for (size_t i = 0; i < lines.size(); ++i)
                canvas.text(x, y + 1 + int(i), lines[i]);
            return;
        }
        std::string values;
        for (const double v : row.values)
            values += fixedText(v, 3) + " ";
        const auto lines = wrapText(values, w);
        for (int i = 0; i < int(lines.size()) && i + 1 < h; ++i)
            canvas.text(x, y + 1 + i, lines[size_t(i)]);
    }

    ConfusionCell m_cell;
    Pending<session::ConfusionCellRows> m_rows;
    int m_cursor = 0, m_top = 0;
};

} // namespace

std::unique_ptr<Screen> confusionCellScreen(const ConfusionCell& cell, Context& context) {
    return std::make_unique<ConfusionCellScreen>(cell, context);
}

} // namespace mppdl::tui
