#include "mppdl/core/text_table.h"

#include <gtest/gtest.h>

using namespace mppdl;

TEST(TextTable, AlignsColumns) {
    TextTable t({"layer", "params"}, {TextTable::Align::Left, TextTable::Align::Right});
    t.addRow({"conv1", "320"});
    t.addRow({"dense", "100,480"});
    t.addRule();
    t.addRow({"total", "100,800"});
    EXPECT_EQ(t.render(), "layer   params\n"
                          "--------------\n"
                          "conv1      320\n"
                          "dense  100,480\n"
                          "--------------\n"
                          "total  100,800\n");
}

TEST(TextTable, HumanFormats) {
    EXPECT_EQ(groupThousands(1234567), "1,234,567");
    EXPECT_EQ(groupThousands(-1000), "-1,000");
    EXPECT_EQ(humanCount(1.5e9), "1.50 G");
    EXPECT_EQ(humanCount(999), "999");
    EXPECT_EQ(humanDuration(12.34), "12.3s");
    EXPECT_EQ(humanDuration(245), "4m05s");
}

TEST(TextTable, FixedAndPercentText) {
    EXPECT_EQ(mppdl::fixedText(0.92345, 2), "0.92");
    EXPECT_EQ(mppdl::fixedText(3, 4), "3.0000");
    EXPECT_EQ(mppdl::percentText(0.9229), "92.29%");
    EXPECT_EQ(mppdl::percentText(1.0), "100.00%");
}
