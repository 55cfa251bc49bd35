#include "mppdl/core/text_chart.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>
#include <sstream>

using namespace mppdl;

namespace {

const double kNaN = std::nan("");

/// The row (from the top) that a flat series or a single point is drawn on.
int middleRow(const ChartOptions& o) { return o.height - 1 - int(std::lround((o.height - 1) / 2.0)); }


std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

std::u32string decode(const std::string& s) {
    std::u32string out;
    for (size_t i = 0; i < s.size();) {
        const unsigned char b = s[i];
        const int n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
        char32_t c = n == 1 ? b : b & (0x3F >> (n - 1));
        for (int k = 1; k < n; ++k)
            c = (c << 6) | (s[i + k] & 0x3F);
        out += c;
        i += n;
    }
    return out;
}

/// A chart's plot rows (top first), each cut into its y label and its plot cells (right of the axis).
struct Rows {
    std::vector<std::string> labels;
    std::vector<std::u32string> cells;
    size_t axisColumn = 0;
};

Rows plotRows(const std::string& chart, const ChartOptions& o) {
    Rows rows;
    const auto all = lines(chart);
    const size_t first = o.title.empty() ? 0 : 1;
    for (size_t i = first; i < first + size_t(o.height); ++i) {
        const std::u32string line = decode(all.at(i));
        const size_t axis = line.find_first_of(o.unicode ? U"┤│" : U"+|");
        EXPECT_NE(axis, std::u32string::npos) << all[i];
        rows.axisColumn = axis;
        std::string label = all[i].substr(0, axis); // the label column is ASCII
        label.erase(0, label.find_first_not_of(' '));
        rows.labels.push_back(label.substr(0, label.find_last_not_of(' ') + 1));
        rows.cells.push_back(line.substr(axis + 1));
    }
    return rows;
}

std::vector<double> epochs(size_t n) {
    std::vector<double> x;
    for (size_t i = 1; i <= n; ++i)
        x.push_back(double(i));
    return x;
}

} // namespace

TEST(TextChart, MarkersOfEachSeriesAtTheirMinAndMaxRows) {
    ChartOptions o;
    o.title = "loss";
    const std::vector<ChartSeries> series = {
        {"falling", epochs(5), {2.0, 1.1, 0.7, 0.55, 0.5}, U'●'},
        {"rising", epochs(5), {0.5, 1.2, 1.6, 1.9, 2.0}, U'■'},
    };
    const Rows rows = plotRows(renderChart(series, o), o);
    const int lastCol = o.width - 2;
    // Max on the top row, min on the bottom row; epoch 1 in the first plot column, epoch 5 in the last.
    EXPECT_EQ(rows.cells.front()[0], U'●');
    EXPECT_EQ(rows.cells.front().at(lastCol), U'■');
    EXPECT_EQ(rows.cells.back()[0], U'■');
    EXPECT_EQ(rows.cells.back().at(lastCol), U'●');
    // Each marker is drawn once per point, and joins are dots.
    for (char32_t m : {U'●', U'■'}) {
        int count = 0;
        for (const auto& r : rows.cells)
            count += int(std::count(r.begin(), r.end(), m));
        EXPECT_EQ(count, 5);
    }
    EXPECT_NE(rows.cells[1].find(U'·'), std::u32string::npos);
}

TEST(TextChart, YTicksAreNiceCompactAndBracketTheData) {
    ChartOptions o;
    auto labelsOf = [&](std::vector<double> y) {
        std::vector<std::string> out;
        for (const auto& l : plotRows(renderChart({{"s", epochs(y.size()), y, U'*'}}, o), o).labels)
            if (!l.empty())
                out.push_back(l);
        return out;
    };
    // Data on nice numbers: ticks at both ends of it, top to bottom.
    EXPECT_EQ(labelsOf({2.0, 1.2, 0.8, 0.5}), (std::vector<std::string>{"2", "1.5", "1", "0.5"}));
    EXPECT_EQ(labelsOf({0.88, 0.91, 0.95, 0.96}), (std::vector<std::string>{"0.96", "0.94", "0.92", "0.9", "0.88"}));
    EXPECT_EQ(labelsOf({1000, 1250, 1400}), (std::vector<std::string>{"1400", "1300", "1200", "1100", "1000"}));

    // Arbitrary data: 3-5 ticks, descending, the outer ones the extremes of the data.
    const double lo = 0.083, hi = 2.31;
    const auto labels = labelsOf({hi, 1.2, 0.7, 0.3, lo});
    ASSERT_GE(labels.size(), 3u);
    ASSERT_LE(labels.size(), 5u);
    std::vector<double> values;
    for (const auto& l : labels) {
        EXPECT_EQ(l.find_first_not_of("0123456789.-"), std::string::npos) << l;
        if (l.find('.') != std::string::npos) {
            EXPECT_NE(l.back(), '0') << l; // "1.5", not "1.50"
        }
        values.push_back(std::stod(l));
    }
    EXPECT_TRUE(std::is_sorted(values.rbegin(), values.rend()));
    EXPECT_EQ(labels.front(), "2.31");
    EXPECT_EQ(labels.back(), "0.083");
    for (size_t i = 1; i + 1 < values.size(); ++i)
        EXPECT_EQ(values[i], std::round(values[i] * 2) / 2) << "a nice number between the extremes";
}

TEST(TextChart, AsciiModeIsAscii) {
    ChartOptions o;
    o.unicode = false;
    o.title = "loss and accuracy";
    const std::string chart = renderChart({{"loss", epochs(4), {1.5, 0.9, 0.6, 0.4}, U'o'},
                                           {"acc", epochs(4), {0.5, 0.7, 0.8, 0.85}, U'x'},
                                           {"odd", epochs(2), {1.0, 1.1}, U'●'}}, // not ASCII: drawn as '*'
                                          o);
    for (unsigned char c : chart)
        ASSERT_LT(c, 0x80) << chart;
    EXPECT_NE(chart.find('o'), std::string::npos);
    EXPECT_NE(chart.find("* odd"), std::string::npos);
    EXPECT_NE(chart.find("+---"), std::string::npos);
    EXPECT_NE(chart.find('|'), std::string::npos);
}

TEST(TextChart, FlatSeriesIsOneRow) {
    for (double v : {0.5, 0.0, -3.0}) {
        ChartOptions o;
        const Rows rows = plotRows(renderChart({{"flat", epochs(5), std::vector<double>(5, v), U'*'}}, o), o);
        int rowsWithMarker = 0;
        for (size_t r = 0; r < rows.cells.size(); ++r) {
            const auto n = std::count(rows.cells[r].begin(), rows.cells[r].end(), U'*');
            if (n > 0) {
                ++rowsWithMarker;
                EXPECT_EQ(n, 5);
                EXPECT_EQ(int(r), middleRow(o)) << "a flat series sits in the middle";
                EXPECT_EQ(std::stod(rows.labels[r]), v) << "labelled with its value";
            }
        }
        EXPECT_EQ(rowsWithMarker, 1) << v;
    }
}

TEST(TextChart, NaNPointsAreSkipped) {
    ChartOptions o;
    const std::vector<ChartSeries> series = {{"val", {1, 2, 3, 4, kNaN}, {1.0, kNaN, 3.0, 2.0, 5.0}, U'*'}};
    const std::string chart = renderChart(series, o);
    const Rows rows = plotRows(chart, o);
    int count = 0;
    for (const auto& r : rows.cells)
        count += int(std::count(r.begin(), r.end(), U'*'));
    EXPECT_EQ(count, 3);
    // x runs 1..4 (the 5.0 at x=NaN is gone): 3.0 at x=3 is the top row's point, 1.0 at x=1 the bottom's.
    EXPECT_EQ(rows.cells.front().find(U'*'), size_t(std::lround(2.0 / 3 * (o.width - 2))));
    EXPECT_EQ(rows.cells.back().find(U'*'), 0u);
    EXPECT_EQ(rows.labels.front(), "3");
    EXPECT_EQ(chart.find("nan"), std::string::npos);

    o.title = "val";
    EXPECT_EQ(renderChart({{"val", {1, 2}, {kNaN, kNaN}, U'*'}}, o), "val: (no data)\n");
    EXPECT_EQ(renderChart({}, o), "val: (no data)\n");
    EXPECT_EQ(renderChart({}, ChartOptions{}), "(no data)\n");
}

TEST(TextChart, OnePointIsCentred) {
    ChartOptions o;
    const std::string chart = renderChart({{"loss", {3}, {0.7}, U'*'}}, o);
    const Rows rows = plotRows(chart, o);
    EXPECT_EQ(rows.cells.at(middleRow(o)).find(U'*'), size_t((o.width - 2) / 2));
    const auto all = lines(chart);
    const std::string xLabels = all.at(o.height + 1);
    EXPECT_EQ(xLabels.find("epoch"), 0u);
    EXPECT_NE(xLabels.find(" 3"), std::string::npos);
}

TEST(TextChart, LaterSeriesWinsASharedCellAndLegendListsBoth) {
    ChartOptions o;
    o.unicode = false;
    const std::string chart = renderChart(
        {{"first", epochs(3), {1, 2, 3}, U'a'}, {"second", epochs(3), {1, 2, 3}, U'b'}}, o);
    const Rows rows = plotRows(chart, o);
    for (const auto& r : rows.cells)
        EXPECT_EQ(r.find(U'a'), std::u32string::npos);
    EXPECT_EQ(rows.cells.front().back(), U'b');
    EXPECT_EQ(lines(chart).back().substr(rows.axisColumn + 1), "a first   b second");
}

TEST(TextChart, LineCountWidthAndNoTrailingSpaces) {
    std::vector<ChartSeries> series = {{"training loss with a long legend entry", epochs(37), {}, U'o'},
                                       {"accuracy", epochs(37), {}, U'x'}};
    for (int i = 0; i < 37; ++i) {
        series[0].y.push_back(2.3 * std::exp(-0.1 * i));
        series[1].y.push_back(1 - std::exp(-0.2 * i));
    }
    for (bool unicode : {true, false})
        for (int height : {2, 5, 12})
            for (int width : {20, 60})
                for (std::string title : {"", "a rather long title that is wider than the plot area"}) {
                    ChartOptions o;
                    o.unicode = unicode, o.height = height, o.width = width, o.title = title;
                    const std::string chart = renderChart(series, o);
                    SCOPED_TRACE("\n" + chart);
                    const auto all = lines(chart);
                    // title, plot rows, x axis, x labels, legend
                    EXPECT_EQ(all.size(), (title.empty() ? 0u : 1u) + size_t(height) + 2 + 1);
                    const size_t axis = plotRows(chart, o).axisColumn; // = the y label column
                    for (const auto& l : all) {
                        EXPECT_TRUE(l.empty() || !std::isspace((unsigned char)l.back())) << "'" << l << "'";
                        EXPECT_LE(decode(l).size(), axis + size_t(width)) << l;
                    }
                    EXPECT_EQ(chart.back(), '\n');
                    // Epochs are labelled as whole numbers.
                    EXPECT_EQ(all[all.size() - 2].find('.'), std::string::npos);
                }
}
