// Rows and distributions as plain values, for views without libtorch.

#include "mppdl/data/preview.h"

#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::data;

namespace {

/// Six 1x2x2 images, labels 0,0,1,1,2,2; image i holds 10i, 10i+1, 10i+2, 10i+3.
Dataset sixImages(torch::Dtype dtype) {
    const auto pixels = (torch::arange(6).view({6, 1, 1, 1}) * 10 + torch::arange(4).view({1, 1, 2, 2})).to(dtype);
    return Dataset(pixels, torch::tensor({0, 0, 1, 1, 2, 2}, torch::kInt64), {"a", "b", "c"});
}

} // namespace

TEST(DataPreview, RowsComeOneClassAtATime) {
    const auto rows = previewRows(sixImages(torch::kUInt8), 4);
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0].row, 0); // the first of each class, then the second of the first class
    EXPECT_EQ(rows[1].row, 2);
    EXPECT_EQ(rows[2].row, 4);
    EXPECT_EQ(rows[3].row, 1);
    EXPECT_EQ(rows[2].label, 2);
    EXPECT_EQ(rows[1].pixels, (std::vector<uint8_t>{20, 21, 22, 23})); // uint8 images as they are
    EXPECT_EQ(rows[1].values, (std::vector<double>{20, 21, 22, 23}));
    EXPECT_EQ(previewRows(sixImages(torch::kUInt8), 100).size(), 6u); // no more than there are
    EXPECT_TRUE(previewRows(sixImages(torch::kUInt8), 0).empty());
}

TEST(DataPreview, RowsAtGivenPositionsInTheirOrder) {
    const auto rows = previewRowsAt(sixImages(torch::kUInt8), {5, 1, 9, -1});
    ASSERT_EQ(rows.size(), 2u); // 9 and -1 are not rows
    EXPECT_EQ(rows[0].row, 5);
    EXPECT_EQ(rows[0].label, 2);
    EXPECT_EQ(rows[1].pixels, (std::vector<uint8_t>{10, 11, 12, 13}));
    EXPECT_EQ(labelsOf(sixImages(torch::kUInt8)), (std::vector<int64_t>{0, 0, 1, 1, 2, 2}));
}

TEST(DataPreview, FloatImagesAreScaledFromTheirRange) {
    const auto rows = previewRows(sixImages(torch::kFloat32), 6);
    // 0..53 over 0..255: the first pixel of row 0 is black, the last of row 5 white.
    EXPECT_EQ(rows.front().pixels.front(), 0);
    EXPECT_EQ(rows.back().row, 5);
    EXPECT_EQ(rows.back().pixels.back(), 255);
}

TEST(DataPreview, TableRowsHaveValuesAndNoPixels) {
    const Dataset table(torch::arange(12, torch::kFloat32).view({3, 4}), torch::tensor({1, 0, 1}, torch::kInt64), {});
    EXPECT_FALSE(isImageShape(table.sampleShape()));
    const auto rows = previewRows(table, 2, 3);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0].row, 1); // class 0 first
    EXPECT_TRUE(rows[0].pixels.empty());
    EXPECT_EQ(rows[0].values, (std::vector<double>{4, 5, 6})); // at most 3 values
}

TEST(DataPreview, DistributionAsTheSegmentsWouldHoldIt) {
    const auto summary = previewDistribution(sixImages(torch::kUInt8), 3, "by-label");
    ASSERT_EQ(summary.segments.size(), 3u);
    for (int s = 0; s < 3; ++s) {
        EXPECT_EQ(summary.segments[size_t(s)].rows, 2);
        EXPECT_EQ(summary.segments[size_t(s)].classCounts[size_t(s)], 2); // class s on segment s
    }
    EXPECT_DOUBLE_EQ(summary.skew, 1.0);
    EXPECT_THROW(previewDistribution(sixImages(torch::kUInt8), 7, "random"), ConfigError); // more segments than rows
}
