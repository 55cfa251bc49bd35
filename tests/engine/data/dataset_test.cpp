#include "mppdl/data/dataset.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::data;
using mppdl::data::testing::expectError;

namespace {

Dataset sample() {
    // 6 samples of 2x1x2 (2 channels); row r holds r in channel 0 and 10 * r in channel 1.
    auto rows = torch::arange(6, torch::kFloat32).view({6, 1, 1, 1});
    auto channel0 = rows.expand({6, 1, 1, 2});
    auto features = torch::cat({channel0, channel0 * 10}, 1).contiguous();
    return Dataset(features, torch::tensor({0, 1, 2, 0, 1, 0}, torch::kInt64), {"a", "b", "c"});
}

} // namespace

TEST(DataDataset, DefaultIsEmpty) {
    Dataset d;
    EXPECT_TRUE(d.empty());
    EXPECT_EQ(d.size(), 0);
    EXPECT_TRUE(d.sampleShape().empty());
    EXPECT_EQ(d.numClasses(), 0);
}

TEST(DataDataset, ReportsShapeDtypeAndClasses) {
    const auto d = sample();
    EXPECT_EQ(d.size(), 6);
    EXPECT_EQ(d.sampleShape(), (std::vector<int64_t>{2, 1, 2}));
    EXPECT_EQ(d.dtype(), "float32");
    EXPECT_EQ(d.numClasses(), 3);
    EXPECT_EQ(d.classNames()[2], "c");
}

TEST(DataDataset, ChecksItsTensors) {
    expectError<InternalError>([] { Dataset(torch::zeros({3, 2}), torch::zeros({2}, torch::kInt64), {}); }, {"3", "2"});
    expectError<InternalError>(
        [] {
            Dataset(torch::zeros({3, 2}), torch::zeros({3}, torch::kFloat32), {});
        },
        {"int64"});
    expectError<InternalError>(
        [] {
            Dataset(torch::zeros({2, 2}), torch::tensor({0, 5}, torch::kInt64), {"a"});
        },
        {"5"});
}

TEST(DataDataset, NamesClassesWhenNoneAreGiven) {
    Dataset d(torch::zeros({2, 1}), torch::tensor({0, 3}, torch::kInt64), {});
    EXPECT_EQ(d.classNames(), (std::vector<std::string>{"0", "1", "2", "3"}));
}

TEST(DataDataset, SliceSelectAndWithFeatures) {
    const auto d = sample();
    const auto s = d.slice(2, 4);
    EXPECT_EQ(s.size(), 2);
    EXPECT_EQ(s.labels()[0].item<int64_t>(), 2);
    EXPECT_EQ(d.slice(4, 100).size(), 2);
    EXPECT_EQ(d.slice(5, 2).size(), 0);

    const auto picked = d.select(torch::tensor({5, 0}, torch::kInt64));
    EXPECT_EQ(picked.features()[0][0][0][0].item<float>(), 5.0f);
    EXPECT_EQ(picked.labels()[1].item<int64_t>(), 0);
    EXPECT_EQ(picked.classNames(), d.classNames());

    // A subset does not alias the set it came from.
    s.features().fill_(-1);
    EXPECT_EQ(d.features()[2][0][0][0].item<float>(), 2.0f);

    const auto other = d.withFeatures(torch::ones({6, 3}));
    EXPECT_EQ(other.sampleShape(), (std::vector<int64_t>{3}));
    EXPECT_TRUE(other.labels().equal(d.labels()));
    expectError<InternalError>([&] { d.withFeatures(torch::ones({5, 3})); }, {"5", "6"});
}

TEST(DataDataset, StatisticsPerChannel) {
    const auto stats = computeStatistics(sample());
    EXPECT_EQ(stats.classCounts, (std::vector<int64_t>{3, 2, 1}));
    ASSERT_EQ(stats.channelMean.size(), 2u);
    EXPECT_NEAR(stats.channelMean[0], 2.5, 1e-9);
    EXPECT_NEAR(stats.channelMean[1], 25.0, 1e-9);
    // Population std of 0..5 is sqrt(35/12).
    EXPECT_NEAR(stats.channelStd[0], std::sqrt(35.0 / 12.0), 1e-9);
    EXPECT_NEAR(stats.channelStd[1], 10 * std::sqrt(35.0 / 12.0), 1e-9);
    EXPECT_EQ(stats.min, 0.0);
    EXPECT_EQ(stats.max, 50.0);
}

TEST(DataDataset, StatisticsOfTabularRowsArePerFeature) {
    Dataset d(torch::tensor({1.0f, 100.0f, 3.0f, 300.0f}).view({2, 2}), torch::tensor({0, 1}, torch::kInt64), {});
    const auto stats = computeStatistics(d);
    ASSERT_EQ(stats.channelMean.size(), 2u);
    EXPECT_NEAR(stats.channelMean[0], 2.0, 1e-9);
    EXPECT_NEAR(stats.channelMean[1], 200.0, 1e-9);
    EXPECT_NEAR(stats.channelStd[1], 100.0, 1e-9);
}

TEST(DataDataset, FormatShape) {
    EXPECT_EQ(formatShape({1, 28, 28}), "1x28x28");
    EXPECT_EQ(formatShape({4}), "4");
    EXPECT_EQ(formatShape({}), "");
}
