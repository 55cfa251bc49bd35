#include "mppdl/core/text_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

namespace mppdl {
namespace {

using Points = std::vector<std::pair<double, double>>;

Points finitePoints(const ChartSeries& s) {
    Points out;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
            out.emplace_back(s.x[i], s.y[i]);
    return out;
}

void appendUtf8(std::string& out, char32_t c) {
    if (c < 0x80) {
        out += char(c);
        return;
    }
    const int n = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    out += char((0xF00 >> n) | (c >> (6 * (n - 1)))); // lead byte 110xxxxx, 1110xxxx or 11110xxx
    for (int k = n - 2; k >= 0; --k)
        out += char(0x80 | ((c >> (6 * k)) & 0x3F));
}

/// Terminal columns of UTF-8 text, counting one per code point (labels are not expected to hold
/// wide CJK characters).
int columns(const std::string& s) {
    return int(std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

/// The first `cols` columns of `s`, cut at a code point boundary.
std::string clip(const std::string& s, int cols) {
    size_t i = 0;
    for (int n = 0; i < s.size(); ++i)
        if ((s[i] & 0xC0) != 0x80 && n++ == cols)
            break;
    return s.substr(0, i);
}

void rstripInto(std::string& out, std::string line) {
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + '\n';
}

/// The multiples of the smallest 1-2-5 step that puts at most `maxTicks` of them in [lo, hi].
/// `integral` keeps the step >= 1, so that epochs are not labelled 2.5.
std::vector<double> niceTicks(double lo, double hi, int maxTicks, bool integral, double& step) {
    const double mantissa[] = {1, 2, 5};
    double decade = std::pow(10.0, std::floor(std::log10((hi - lo) / maxTicks)) - 1);
    if (integral)
        decade = std::max(decade, 1.0);
    for (int k = 0;; ++k) {
        step = mantissa[k % 3] * decade * std::pow(10.0, k / 3);
        const double first = std::ceil(lo / step - 1e-9), last = std::floor(hi / step + 1e-9);
        if (last - first + 1 <= maxTicks) {
            std::vector<double> ticks;
            for (double t = first; t <= last; ++t)
                ticks.push_back(t == 0 ? 0.0 : t * step); // never "-0"
            return ticks;
        }
    }
}

/// 0.92, 1.5, 1200: as many decimals as the tick step needs, trailing zeros dropped.
std::string formatTick(double value, double step) {
    const int decimals = std::max(0, int(-std::floor(std::log10(step) + 1e-9)));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
    std::string s = buf;
    if (s.find('.') != std::string::npos) {
        s.erase(s.find_last_not_of('0') + 1);
        if (s.back() == '.')
            s.pop_back();
    }
    if (s.size() > 8) {
        std::snprintf(buf, sizeof buf, "%.3g", value);
        s = buf;
    }
    return s;
}

/// A value itself rather than a tick: three significant digits, more where `resolution` needs them
/// (0.083, 2.31, 1000.3 on an axis from 1000.1 to 1000.3).
std::string formatValue(double v, double resolution) {
    if (v != 0)
        resolution = std::min(resolution, std::pow(10.0, std::floor(std::log10(std::fabs(v))) - 2));
    return formatTick(v, resolution);
}

} // namespace

std::string renderChart(const std::vector<ChartSeries>& series, const ChartOptions& options) {
    const bool uni = options.unicode;
    const int cols = std::max(options.width, 8) - 1; // plot cells right of the y axis line
    const int rows = std::max(options.height, 2);

    std::vector<Points> points;
    double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
    for (const auto& s : series) {
        points.push_back(finitePoints(s));
        for (const auto& [x, y] : points.back()) {
            xlo = std::min(xlo, x), xhi = std::max(xhi, x);
            ylo = std::min(ylo, y), yhi = std::max(yhi, y);
        }
    }
    if (!(xlo <= xhi))
        return (options.title.empty() ? "" : options.title + ": ") + "(no data)\n";
    const double flatValue = ylo;
    const bool flat = yhi - ylo <= 1e-9 * std::max(1.0, std::fabs(yhi));
    if (flat) {
        const double pad = ylo == 0 ? 1.0 : std::fabs(ylo) * 0.1;
        ylo -= pad, yhi += pad;
    }

    // Row 0 is the bottom row; the extremes of the data sit on the centres of the outer rows.
    // The nudge puts a flat series (exactly half-way) on the same row whatever its value's rounding.
    auto rowOf = [&](double y) { return int(std::floor((y - ylo) / (yhi - ylo) * (rows - 1) + 0.5 + 1e-9)); };
    auto colOf = [&](double x) {
        return xhi == xlo ? (cols - 1) / 2 : int(std::lround((x - xlo) / (xhi - xlo) * (cols - 1)));
    };

    std::vector<std::u32string> grid(rows, std::u32string(cols, U' ')); // grid[0] is the top row
    auto put = [&](int col, int row, char32_t c) { grid[rows - 1 - row][col] = c; };
    // All joins first, then all markers, so that no series' dots hide another one's points.
    for (const auto& pts : points)
        for (size_t i = 1; i < pts.size(); ++i) {
            const int c0 = colOf(pts[i - 1].first), r0 = rowOf(pts[i - 1].second);
            const int dc = colOf(pts[i].first) - c0, dr = rowOf(pts[i].second) - r0;
            const int n = std::max(std::abs(dc), std::abs(dr));
            for (int j = 1; j < n; ++j)
                put(c0 + int(std::lround(double(dc) * j / n)), r0 + int(std::lround(double(dr) * j / n)),
                    uni ? U'·' : U'.');
        }
    std::vector<char32_t> markers;
    for (size_t s = 0; s < series.size(); ++s) {
        char32_t m = series[s].marker;
        if (m < 0x20 || (!uni && m >= 0x80))
            m = U'*';
        markers.push_back(m);
        for (const auto& [x, y] : points[s])
            put(colOf(x), rowOf(y), m);
    }

    // y labels: the top and bottom rows carry the data's extremes (the best accuracy, the last
    // loss: what a reader looks for), the rows between up to three nice ticks, each on the row its
    // value falls in and with an unlabelled row between it and the extremes.
    const double rowStep = (yhi - ylo) / (rows - 1);
    std::vector<std::string> rowLabel(rows);
    rowLabel[rows - 1] = formatValue(yhi, rowStep);
    rowLabel[0] = formatValue(ylo, rowStep);
    if (flat) { // the one value there is, rather than a nice neighbour of it
        rowLabel[rowOf(flatValue)] = formatValue(flatValue, rowStep);
    } else if (rows >= 5) {
        double step = 1;
        for (double t : niceTicks(ylo + 1.5 * rowStep, yhi - 1.5 * rowStep, 3, false, step))
            if (const int r = rowOf(t); r >= 2 && r <= rows - 3)
                rowLabel[r] = formatTick(t, step);
    }
    int labelCols = columns(options.xLabel);
    for (const auto& l : rowLabel)
        labelCols = std::max(labelCols, columns(l));
    auto padLeft = [&](const std::string& s) { return std::string(labelCols - columns(s), ' ') + s + ' '; };

    std::string out;
    if (!options.title.empty()) {
        const std::string title = clip(options.title, cols);
        rstripInto(out, std::string(labelCols + 2 + (cols - columns(title)) / 2, ' ') + title);
    }
    for (int r = rows - 1; r >= 0; --r) {
        std::string line = padLeft(rowLabel[r]);
        appendUtf8(line, rowLabel[r].empty() ? (uni ? U'│' : U'|') : (uni ? U'┤' : U'+'));
        for (char32_t c : grid[rows - 1 - r])
            appendUtf8(line, c);
        rstripInto(out, line);
    }

    // x axis: tick marks, and their labels centred under them unless they would collide.
    bool integral = true;
    for (const auto& pts : points)
        for (const auto& p : pts)
            integral = integral && p.first == std::floor(p.first);
    double xStep = 1;
    const auto xTicks = xhi == xlo ? std::vector<double>{xlo}
                                   : niceTicks(xlo, xhi, std::max(2, cols / 6), integral, xStep);
    std::u32string axis(cols, uni ? U'─' : U'-');
    std::string labels(cols, ' ');
    int nextFree = 0; // first column a label may start at
    for (double t : xTicks) {
        const int c = colOf(t);
        axis[c] = uni ? U'┬' : U'+';
        const std::string s = xhi == xlo ? formatValue(t, 1) : formatTick(t, xStep);
        const int start = std::clamp(c - (int(s.size()) - 1) / 2, 0, std::max(0, cols - int(s.size())));
        if (start >= nextFree && start + int(s.size()) <= cols) {
            labels.replace(start, s.size(), s);
            nextFree = start + int(s.size()) + 1;
        }
    }
    std::string axisLine = std::string(labelCols + 1, ' ');
    appendUtf8(axisLine, uni ? U'└' : U'+');
    for (char32_t c : axis)
        appendUtf8(axisLine, c);
    rstripInto(out, axisLine);
    rstripInto(out, padLeft(options.xLabel) + ' ' + labels);

    std::string legend;
    for (size_t s = 0; s < series.size(); ++s) {
        if (s > 0)
            legend += "   ";
        appendUtf8(legend, markers[s]);
        legend += ' ' + series[s].label;
    }
    rstripInto(out, std::string(labelCols + 2, ' ') + clip(legend, cols));
    return out;
}

} // namespace mppdl
