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

TEST(TuiCanvas, TextIsWrappedAfterSpaces) {
    EXPECT_EQ(wrapText("496 of the 10,000 test rows of class Shirt", 16),
              (std::vector<std::string>{"496 of the", "10,000 test rows", "of class Shirt"}));
    EXPECT_EQ(wrapText("abcdefghij klm", 4), (std::vector<std::string>{"abcd", "efgh", "ij", "klm"}));
    EXPECT_EQ(wrapText("表表表 x", 4), (std::vector<std::string>{"表表", "表 x"}));
    EXPECT_TRUE(wrapText("", 10).empty());
    EXPECT_TRUE(wrapText("text", 0).empty());
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

// A 4x8 image (a bright diagonal band on black, one grey corner) at 8 columns: each cell the mean
// of the two pixel rows it covers.
TEST(TuiPicture, AnImageInShadingCharacters) {
    const int h = 4, w = 8;
    std::vector<uint8_t> pixels(size_t(h * w), 0);
    for (int y = 0; y < h; ++y)
        for (int x = 2 * y; x < 2 * y + 2; ++x)
            pixels[size_t(y * w + x)] = 255;
    pixels[size_t(3 * w + 0)] = 128; // the bottom-left corner, grey, averaged with black above it
    EXPECT_EQ(pictureRows(h, w, 8), 2);
    EXPECT_EQ(pictureLines(pixels, h, w, 1, 8, 2), (std::vector<std::string>{"▒▒▒▒    ", "░   ▒▒▒▒"}));
    EXPECT_EQ(pictureLines(pixels, h, w, 1, 8, 2, false), (std::vector<std::string>{"::::    ", ".   ::::"}));
    // Colour pixels are averaged over their channels; a picture smaller than the image averages
    // whole blocks; too few pixels draw nothing.
    std::vector<uint8_t> rgb(size_t(h * w * 3), 0);
    for (size_t i = 0; i < rgb.size(); i += 3)
        rgb[i] = 255; // pure red: a third of full brightness
    EXPECT_EQ(pictureLines(rgb, h, w, 3, 2, 1), (std::vector<std::string>{"░░"}));
    EXPECT_EQ(pictureLines(pixels, h, w, 1, 1, 1), (std::vector<std::string>{"░"}));
    EXPECT_TRUE(pictureLines({1, 2}, h, w, 1, 8, 2).empty());
}
