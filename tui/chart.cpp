#include "tui/chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace mppdl::tui {

namespace {

/// The bit of braille dot (dx, dy) of a cell, dx in [0, 2), dy in [0, 4) (Unicode's numbering:
/// dots 1-3 and 7 on the left, 4-6 and 8 on the right).
uint8_t brailleBit(int dx, int dy) {
    static const uint8_t bits[2][4] = {{0x01, 0x02, 0x04, 0x40}, {0x08, 0x10, 0x20, 0x80}};
    return bits[dx][dy];
}

struct Range {
    double low = std::numeric_limits<double>::infinity();
    double high = -std::numeric_limits<double>::infinity();
    void add(double v) {
        if (std::isfinite(v)) {
            low = std::min(low, v);
            high = std::max(high, v);
        }
    }
    bool empty() const { return !(low <= high); }
    /// A flat range widened so that it maps: +-10% around its value (+-1 around 0).
    void widen() {
        if (high > low)
            return;
        const double pad = low == 0 ? 1.0 : std::abs(low) * 0.1;
        low -= pad;
        high += pad;
    }
};

} // namespace

namespace {
/// Tick labels for `values` with the fewest significant digits (3 or more) that tell them apart.
std::vector<std::string> distinctTicks(const std::vector<double>& values) {
    for (int digits = 3; digits <= 7; ++digits) {
        std::vector<std::string> out;
        for (const double v : values) {
            char buf[32];
            if (v == std::floor(v) && std::abs(v) < 1e6)
                std::snprintf(buf, sizeof buf, "%.0f", v);
            else
                std::snprintf(buf, sizeof buf, "%.*g", digits, v);
            out.emplace_back(buf);
        }
        bool distinct = true;
        for (size_t i = 0; i + 1 < out.size(); ++i)
            for (size_t j = i + 1; j < out.size(); ++j)
                distinct = distinct && (out[i] != out[j] || values[i] == values[j]);
        if (distinct || digits == 7)
            return out;
    }
    return {};
}
} // namespace

std::string tickText(double value, bool time) {
    char buf[32];
    if (time) {
        const double s = std::max(0.0, value);
        if (s < 60)
            std::snprintf(buf, sizeof buf, "%.0fs", s);
        else if (s < 3600)
            std::snprintf(buf, sizeof buf, "%dm%02d", int(s) / 60, int(s) % 60);
        else
            std::snprintf(buf, sizeof buf, "%dh%02d", int(s) / 3600, int(s) % 3600 / 60);
        return buf;
    }
    if (value == std::floor(value) && std::abs(value) < 1e6)
        std::snprintf(buf, sizeof buf, "%.0f", value);
    else
        std::snprintf(buf, sizeof buf, "%.3g", value);
    return buf;
}

bool drawChart(Canvas& canvas, int x, int y, int w, int h, const std::vector<ChartLine>& lines,
               const ChartFrame& frame) {
    Range xs, ys;
    for (const auto& line : lines)
        for (size_t i = 0; i < std::min(line.x.size(), line.y.size()); ++i)
            if (std::isfinite(line.x[i]) && std::isfinite(line.y[i])) {
                xs.add(line.x[i]);
                ys.add(line.y[i]);
            }
    if (xs.empty() || w < 12 || h < 4) {
        canvas.text(x, y + std::max(0, h / 2 - 1), fitText("(no data yet)", w), Style::Dim);
        return false;
    }
    if (frame.yMax > frame.yMin) {
        ys.low = frame.yMin;
        ys.high = frame.yMax;
    }
    ys.widen();
    if (xs.high == xs.low)
        xs.high = xs.low + 1;
    const bool time = frame.xUnit == "time";

    // Tick labels of the y axis: top, bottom, and the middle when there are enough rows.
    const int plotRows = h - 2;
    std::vector<int> tickRows = {0, plotRows - 1};
    if (plotRows >= 5)
        tickRows.push_back((plotRows - 1) / 2);
    std::vector<double> tickValues;
    for (const int row : tickRows)
        tickValues.push_back(ys.high - (ys.high - ys.low) * row / std::max(1, plotRows - 1));
    const auto labels = distinctTicks(tickValues);
    std::vector<std::pair<int, std::string>> yTicks;
    for (size_t i = 0; i < tickRows.size(); ++i)
        yTicks.push_back({tickRows[i], labels[i]});
    int labelWidth = 0;
    for (const auto& t : yTicks)
        labelWidth = std::max(labelWidth, textColumns(t.second));
    const int plotX = x + labelWidth + 1;
    const int plotColumns = w - labelWidth - 1;
    if (plotColumns < 4) {
        canvas.text(x, y, fitText("(too narrow)", w), Style::Dim);
        return false;
    }
    for (const auto& [row, label] : yTicks)
        canvas.textRight(x, y + row, labelWidth, label, Style::Dim);
    const char32_t vertical = frame.unicode ? U'│' : U'|';
    const char32_t horizontal = frame.unicode ? U'─' : U'-';
    for (int r = 0; r < plotRows; ++r)
        canvas.set(plotX - 1, y + r, vertical, Style::Dim);
    canvas.set(plotX - 1, y + plotRows, frame.unicode ? U'└' : U'+', Style::Dim);
    for (int c = 0; c < plotColumns; ++c)
        canvas.set(plotX + c, y + plotRows, horizontal, Style::Dim);

    // The dots: 2 x 4 a cell in braille, 1 x 1 in ASCII.
    const int dotsX = frame.unicode ? 2 : 1, dotsY = frame.unicode ? 4 : 1;
    const int width = plotColumns * dotsX, height = plotRows * dotsY;
    std::vector<uint8_t> masks(size_t(plotColumns) * size_t(plotRows), 0);
    std::vector<Style> styles(masks.size(), Style::Normal);
    const auto toDot = [&](double vx, double vy) {
        const int dx = int(std::lround((vx - xs.low) / (xs.high - xs.low) * (width - 1)));
        const double clamped = std::clamp(vy, ys.low, ys.high);
        const int dy = int(std::lround((ys.high - clamped) / (ys.high - ys.low) * (height - 1)));
        return std::pair<int, int>{std::clamp(dx, 0, width - 1), std::clamp(dy, 0, height - 1)};
    };
    const auto plot = [&](int px, int py, Style style) {
        const size_t cell = size_t(py / dotsY) * size_t(plotColumns) + size_t(px / dotsX);
        masks[cell] |= frame.unicode ? brailleBit(px % 2, py % 4) : 1;
        styles[cell] = style;
    };
    for (const auto& line : lines) {
        bool have = false;
        std::pair<int, int> last{0, 0};
        for (size_t i = 0; i < std::min(line.x.size(), line.y.size()); ++i) {
            if (!std::isfinite(line.x[i]) || !std::isfinite(line.y[i]))
                continue;
            const auto next = toDot(line.x[i], line.y[i]);
            if (!have) {
                plot(next.first, next.second, line.style);
            } else {
                // Bresenham from the last point to this one.
                int x0 = last.first, y0 = last.second;
                const int x1 = next.first, y1 = next.second;
                const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
                const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
                int error = dx + dy;
                for (;;) {
                    plot(x0, y0, line.style);
                    if (x0 == x1 && y0 == y1)
                        break;
                    const int e2 = 2 * error;
                    if (e2 >= dy) {
                        error += dy;
                        x0 += sx;
                    }
                    if (e2 <= dx) {
                        error += dx;
                        y0 += sy;
                    }
                }
            }
            last = next;
            have = true;
        }
    }
    for (int r = 0; r < plotRows; ++r)
        for (int c = 0; c < plotColumns; ++c) {
            const size_t cell = size_t(r) * size_t(plotColumns) + size_t(c);
            if (masks[cell])
                canvas.set(plotX + c, y + r, frame.unicode ? char32_t(0x2800 + masks[cell]) : U'*', styles[cell]);
        }

    // The x ticks: both ends, and the middle when it fits.
    const std::string left = tickText(xs.low, time), right = tickText(xs.high, time);
    canvas.text(plotX, y + plotRows + 1, left, Style::Dim);
    canvas.textRight(plotX, y + plotRows + 1, plotColumns, right, Style::Dim);
    const std::string middle = tickText((xs.low + xs.high) / 2, time);
    const int middleAt = plotX + plotColumns / 2 - textColumns(middle) / 2;
    if (middleAt > plotX + textColumns(left) + 1 &&
        middleAt + textColumns(middle) < plotX + plotColumns - textColumns(right) - 1 &&
        (time || (xs.low + xs.high) / 2 == std::floor((xs.low + xs.high) / 2)))
        canvas.text(middleAt, y + plotRows + 1, middle, Style::Dim);
    return true;
}

std::string sparkline(const std::vector<double>& values, int width, bool unicode) {
    std::vector<double> shown;
    for (const double v : values)
        if (std::isfinite(v))
            shown.push_back(v);
    if (shown.empty() || width <= 0)
        return {};
    if (int(shown.size()) > width)
        shown.erase(shown.begin(), shown.end() - width);
    const auto [low, high] = std::minmax_element(shown.begin(), shown.end());
    static const char32_t blocks[] = {U'▁', U'▂', U'▃', U'▄', U'▅', U'▆', U'▇', U'█'};
    static const char ascii[] = "_.-~=+*#";
    std::u32string out;
    std::string plain;
    for (const double v : shown) {
        const int level = *high > *low ? std::clamp(int(std::lround((v - *low) / (*high - *low) * 7)), 0, 7) : 3;
        out.push_back(blocks[level]);
        plain.push_back(ascii[level]);
    }
    return unicode ? encodeUtf8(out) : plain;
}

std::vector<std::string> pictureLines(const std::vector<uint8_t>& pixels, int height, int width, int channels,
                                      int columns, int rows, bool unicode) {
    if (height <= 0 || width <= 0 || channels <= 0 || columns <= 0 || rows <= 0 ||
        pixels.size() < size_t(height) * size_t(width) * size_t(channels))
        return {};
    static const char32_t shades[] = {U' ', U'░', U'▒', U'▓', U'█'};
    static const char ascii[] = " .:+#";
    std::vector<std::string> out;
    for (int r = 0; r < rows; ++r) {
        // The pixel rows and columns this cell covers: [y0, y1) x [x0, x1), at least one each.
        const int y0 = r * height / rows, y1 = std::max(y0 + 1, (r + 1) * height / rows);
        std::u32string line;
        std::string plain;
        for (int c = 0; c < columns; ++c) {
            const int x0 = c * width / columns, x1 = std::max(x0 + 1, (c + 1) * width / columns);
            double sum = 0;
            int count = 0;
            for (int py = y0; py < y1 && py < height; ++py)
                for (int px = x0; px < x1 && px < width; ++px, ++count)
                    for (int k = 0; k < channels; ++k)
                        sum += pixels[(size_t(py) * size_t(width) + size_t(px)) * size_t(channels) + size_t(k)];
            const double mean = count > 0 ? sum / double(count * channels) / 255.0 : 0;
            const int level = std::clamp(int(std::lround(mean * 4)), 0, 4);
            line.push_back(shades[level]);
            plain.push_back(ascii[level]);
        }
        out.push_back(unicode ? encodeUtf8(line) : plain);
    }
    return out;
}

int pictureRows(int height, int width, int columns) {
    return std::max(1, int(std::lround(double(columns) * double(height) / double(std::max(1, width)) / 2.0)));
}

} // namespace mppdl::tui
