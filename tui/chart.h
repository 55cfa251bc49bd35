#pragma once

// Line charts and sparklines for the terminal, drawn into a Canvas: Unicode braille (2x4 dots a
// cell, so a 60-column chart has 120 points across) or, without Unicode, '*' a point.

#include "tui/canvas.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::tui {

struct ChartLine {
    std::string label;
    std::vector<double> x, y; ///< points (x[i], y[i]); NaN and infinite points are skipped
    Style style = Style::Series0;
};

struct ChartFrame {
    bool unicode = true; ///< braille dots and box-drawing axes; else ASCII only
    /// The y range is the data's unless these are set (both): accuracies on [0, 1], say.
    double yMin = 0, yMax = 0;
    /// How the x ticks are written: "epoch" (whole numbers), or "time" (seconds as 1m30s).
    std::string xUnit = "epoch";
};

/// A chart of `lines` filling the w x h cells at (x, y): y tick labels on the left, the plot, an
/// x axis and its tick labels on the last two rows. Returns false (and draws "no data") when no
/// line has a finite point.
bool drawChart(Canvas& canvas, int x, int y, int w, int h, const std::vector<ChartLine>& lines,
               const ChartFrame& frame);

/// The last `width` values as block characters ▁▂▃▄▅▆▇█ over their own range ("" for none).
std::string sparkline(const std::vector<double>& values, int width, bool unicode = true);

/// A coarse picture of an image in shading characters, one line per cell row: the 8-bit pixels
/// (H x W x C row-major, C 1 or 3, as data::RowPreview holds them) averaged over the block each of
/// the `columns` x `rows` cells covers, dark to light as " ░▒▓█" (" .:+#" without Unicode), so that
/// a bright object on a dark ground (Fashion-MNIST) reads as drawn. A terminal cell is about twice as
/// tall as it is wide: pictureRows() gives the rows that keep the image's aspect for `columns`.
std::vector<std::string> pictureLines(const std::vector<uint8_t>& pixels, int height, int width, int channels,
                                      int columns, int rows, bool unicode = true);
/// The cell rows a picture `columns` wide takes for an image of height x width pixels (at least 1).
int pictureRows(int height, int width, int columns);

/// A tick label: 0.92, 1.5, 1200, 2.3e+04; with `time`, seconds as 45s, 12m, 1h05.
std::string tickText(double value, bool time = false);

} // namespace mppdl::tui
