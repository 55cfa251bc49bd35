#pragma once

#include <string>
#include <vector>

namespace mppdl {

/// One line of a chart: the points (x[i], y[i]), i < min(x.size(), y.size()), in drawing order.
/// A point with a NaN or infinite coordinate is skipped and its neighbours are joined across it,
/// so that an epoch without a validation value does not break the curve.
struct ChartSeries {
    std::string label;
    std::vector<double> x;
    std::vector<double> y;
    /// One terminal column wide. In ASCII mode a non-ASCII marker is drawn as '*'.
    char32_t marker = U'*';
};

struct ChartOptions {
    std::string title;
    /// Columns of the y axis line plus the plot area; the y labels come on top of this.
    int width = 60;
    /// Rows of the plot area; the x axis, its labels and the legend come on top of this.
    int height = 12;
    /// Shown under the y labels, left of the x tick labels.
    std::string xLabel = "epoch";
    /// Box-drawing axes and '·' joins; false keeps every byte the chart draws ASCII, for logs and
    /// terminals without UTF-8.
    bool unicode = true;
};

/// A line chart of one or more series for a terminal: a y axis with 3-5 labelled ticks (2 when
/// height < 5), an x axis with
/// labelled ticks (whole numbers only when all x are whole: epochs), each series drawn with its marker
/// at its points and joined by interpolated dots, a legend line under the chart. NaN points are skipped.
///
/// The y range is the data range, padded by half a row each side: the largest value lands on the top
/// row and the smallest on the bottom row, so no rows are spent on empty space (a 12-row chart has
/// little to spare). Those two rows are labelled with the extremes themselves (2.31, 0.083: the lowest
/// loss, the best accuracy are what a reader looks for), the rows between with up to three nice
/// numbers, compactly formatted (0.92, 1.5, 1200). A flat series gets a range of +-10% around its
/// value (+-1 around 0) and is drawn on the middle row. Where series share a cell the later one's
/// marker wins; the legend lists all. Lines end in '\n' and have no trailing spaces, and none is wider
/// than `width` plus the y label column. No finite point at all gives one line, "<title>: (no data)".
std::string renderChart(const std::vector<ChartSeries>& series, const ChartOptions& options);

} // namespace mppdl
