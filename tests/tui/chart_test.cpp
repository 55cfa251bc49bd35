// The terminal workbench's drawing without a terminal: cells and wide characters, the braille
// line chart against a known series (golden text), sparklines.

#include "tui/canvas.h"
#include "tui/chart.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mppdl::tui;

TEST(TuiCanvas, TextIsClippedAndWideCharactersTakeTwoColumns) {
    Canvas c(10, 2);
    EXPECT_EQ(c.text(0, 0, "abcdefghijkl"), 10);
    EXPECT_EQ(c.row(0), "abcdefghij");
    EXPECT_EQ(c.text(0, 1, "表x"), 3);
    EXPECT_EQ(c.row(1), "表x");
    EXPECT_EQ(textColumns("表x"), 3);
    EXPECT_EQ(fitText("validation accuracy", 8), "validat…");
    EXPECT_EQ(fitText("short", 8), "short");
    EXPECT_EQ(decodeUtf8("a\xffz"), (std::u32string{U'a', U'\uFFFD', U'z'}));
    EXPECT_EQ(encodeUtf8(decodeUtf8("◐ running ⣿")), "◐ running ⣿");
}

TEST(TuiChart, ALineInBrailleWithLabelledAxes) {
    Canvas c(30, 8);
    ChartLine line;
    line.x = {1, 2, 3, 4, 5};
    line.y = {2.0, 1.0, 0.5, 0.25, 0.125};
    ASSERT_TRUE(drawChart(c, 0, 0, 30, 8, {line}, ChartFrame{}));
    // The halving series from 2 down to 0.125: labelled at the extremes and the middle row.
    const std::string golden = "    2│⠑⢄\n"
                               "     │  ⠑⢄\n"
                               " 1.25│    ⠑⢄\n"
                               "     │      ⠑⠢⢄⡀\n"
                               "     │         ⠈⠑⠢⠤⣀⣀\n"
                               "0.125│               ⠉⠉⠒⠒⠤⠤⠤⣀⣀\n"
                               "     └────────────────────────\n"
                               "      1           3          5";
    EXPECT_EQ(c.text(), golden) << c.text();
}

TEST(TuiChart, AsciiNaNsAndNoData) {
    Canvas c(24, 6);
    ChartLine line;
    line.x = {0, 1, 2, 3};
    line.y = {0.0, NAN, 1.0, 1.0};
    ChartFrame frame;
    frame.unicode = false;
    ASSERT_TRUE(drawChart(c, 0, 0, 24, 6, {line}, frame));
    for (int y = 0; y < c.height(); ++y)
        for (const char ch : c.row(y))
            EXPECT_TRUE(static_cast<unsigned char>(ch) < 0x80) << c.text();
    EXPECT_NE(c.text().find('*'), std::string::npos);
    Canvas empty(24, 6);
    EXPECT_FALSE(drawChart(empty, 0, 0, 24, 6, {ChartLine{}}, ChartFrame{}));
    EXPECT_NE(empty.text().find("no data yet"), std::string::npos);
}

TEST(TuiChart, Sparklines) {
    EXPECT_EQ(sparkline({1, 2, 3, 4, 5, 6, 7, 8}, 8), "▁▂▃▄▅▆▇█");
    EXPECT_EQ(sparkline({1, 2, 3, 4, 5, 6, 7, 8}, 3), "▁▅█");
    EXPECT_EQ(sparkline({2, 2}, 4), "▄▄");
    EXPECT_EQ(sparkline({0, 1}, 4, false), "_#");
    EXPECT_EQ(sparkline({}, 4), "");
    EXPECT_EQ(tickText(90, true), "1m30");
    EXPECT_EQ(tickText(0.9234), "0.923");
    EXPECT_EQ(tickText(12), "12");
}
