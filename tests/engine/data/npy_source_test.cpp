#include "mppdl/data/source.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

namespace {

std::vector<float> iota(size_t n) {
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i)
        v[i] = static_cast<float>(i) * 0.5f;
    return v;
}

} // namespace

TEST(DataNpy, FeaturesAndLabelsBesideThem) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy("<f4", {4, 2, 3}, bytesOf(iota(24))));
    dir.write("y.npy", npy("<i8", {4}, bytesOf(std::vector<int64_t>{1, 0, 2, 1})));
    const auto loaded = loadSource(x);
    EXPECT_EQ(loaded.kind, "npy");
    EXPECT_EQ(loaded.train.size(), 4);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(loaded.train.dtype(), "float32");
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"0", "1", "2"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({1, 0, 2, 1}, torch::kInt64)));
    EXPECT_FLOAT_EQ(loaded.train.features()[3][1][2].item<float>(), 23 * 0.5f);
}

TEST(DataNpy, EachSupportedDtype) {
    TempDir dir;
    const auto labels = dir.write("y.npy", npy("<i4", {3, 1}, bytesOf(std::vector<int32_t>{0, 1, 0})));
    SourceOptions options;
    options.label = labels;

    const auto u1 = loadSource(
        dir.write("u1.npy", npy("|u1", {3, 4}, std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\xff", 12))),
        options);
    EXPECT_EQ(u1.train.dtype(), "uint8");
    EXPECT_EQ(u1.train.features()[2][3].item<uint8_t>(), 255);

    const auto f8 = loadSource(dir.write("f8.npy", npy("<f8", {3}, bytesOf(std::vector<double>{1.5, -2, 3}))), options);
    EXPECT_EQ(f8.train.dtype(), "float32");
    EXPECT_EQ(f8.train.sampleShape(), (std::vector<int64_t>{1}));
    EXPECT_FLOAT_EQ(f8.train.features()[1][0].item<float>(), -2.0f);

    const auto i8 = loadSource(dir.write("i8.npy", npy("<i8", {3, 1}, bytesOf(std::vector<int64_t>{7, 8, 9}), 2)),
                               options);
    EXPECT_FLOAT_EQ(i8.train.features()[2][0].item<float>(), 9.0f);

    const auto i4 = loadSource(
        dir.write("i4.npy", npy("<i4", {3, 2}, bytesOf(std::vector<int32_t>{1, 2, 3, 4, 5, 6}), 3)), options);
    EXPECT_FLOAT_EQ(i4.train.features()[1][1].item<float>(), 4.0f);
    EXPECT_TRUE(i4.train.labels().equal(torch::tensor({0, 1, 0}, torch::kInt64)));
}

TEST(DataNpy, NameLabelsBesideAndWholeFloatLabels) {
    TempDir dir;
    const auto x = dir.write("digits.npy", npy("<f4", {2, 2}, bytesOf(iota(4))));
    dir.write("digits_labels.npy", npy("<f8", {2}, bytesOf(std::vector<double>{3, 1})));
    const auto loaded = loadSource(x);
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({3, 1}, torch::kInt64)));

    dir.write("digits_labels.npy", npy("<f8", {2}, bytesOf(std::vector<double>{0.5, 1})));
    expectError<DataError>([&] { loadSource(x); }, {"digits_labels.npy", "whole numbers", "0.5"});
}

TEST(DataNpy, DirectoryWithTrainAndTest) {
    TempDir dir;
    dir.write("d/x_train.npy", npy("<f4", {3, 2}, bytesOf(iota(6))));
    dir.write("d/y_train.npy", npy("<i8", {3}, bytesOf(std::vector<int64_t>{-1, 1, -1})));
    dir.write("d/x_test.npy", npy("<f4", {2, 2}, bytesOf(iota(4))));
    dir.write("d/y_test.npy", npy("<i8", {2}, bytesOf(std::vector<int64_t>{5, 1})));
    const auto loaded = loadSource(dir.file("d"));
    EXPECT_EQ(loaded.kind, "npy");
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.test.size(), 2);
    // Labels that are not 0..max map to their sorted distinct values, the same in both splits.
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"-1", "1", "5"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 1, 0}, torch::kInt64)));
    EXPECT_TRUE(loaded.test.labels().equal(torch::tensor({2, 1}, torch::kInt64)));

    SourceOptions options;
    options.limit = 2;
    EXPECT_EQ(loadSource(dir.file("d"), options).train.size(), 2);
}

TEST(DataNpy, ReshapesToTheDeclaredShape) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy("<f4", {2, 8}, bytesOf(iota(16))));
    dir.write("y.npy", npy("<i8", {2}, bytesOf(std::vector<int64_t>{0, 1})));
    SourceOptions options;
    options.shape = {2, 2, 2};
    EXPECT_EQ(loadSource(x, options).train.sampleShape(), (std::vector<int64_t>{2, 2, 2}));
    options.shape = {3, 3};
    expectError<ConfigError>([&] { loadSource(x, options); }, {"3x3", "9", "8"});
}

TEST(DataNpy, BadMagic) {
    TempDir dir;
    const auto x = dir.write("X.npy", "PK\x03\x04 not numpy at all");
    dir.write("y.npy", npy("<i8", {1}, bytesOf(std::vector<int64_t>{0})));
    expectError<DataError>([&] { loadSource(x); }, {x, "magic"});
}

TEST(DataNpy, UnsupportedDtypeIsNamed) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy(">f4", {1, 1}, std::string(4, '\0')));
    dir.write("y.npy", npy("<i8", {1}, bytesOf(std::vector<int64_t>{0})));
    expectError<DataError>([&] { loadSource(x); }, {x, "'>f4'", "<f4"});
    const auto c = dir.write("X.npy", npy("<c16", {1, 1}, std::string(16, '\0')));
    expectError<DataError>([&] { loadSource(c); }, {"'<c16'"});
}

TEST(DataNpy, FortranOrderIsRefused) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy("<f4", {2, 2}, bytesOf(iota(4)), 1, true));
    dir.write("y.npy", npy("<i8", {2}, bytesOf(std::vector<int64_t>{0, 1})));
    expectError<DataError>([&] { loadSource(x); }, {x, "Fortran"});
}

TEST(DataNpy, RowCountMismatchNamesBothFiles) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy("<f4", {3, 2}, bytesOf(iota(6))));
    const auto y = dir.write("y.npy", npy("<i8", {2}, bytesOf(std::vector<int64_t>{0, 1})));
    expectError<DataError>([&] { loadSource(x); }, {x, y, "3 rows", "2 labels"});
}

TEST(DataNpy, TruncatedDataAndMissingLabels) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy("<f4", {3, 2}, bytesOf(iota(5))));
    dir.write("y.npy", npy("<i8", {3}, bytesOf(std::vector<int64_t>{0, 1, 0})));
    expectError<DataError>([&] { loadSource(x); }, {x, "shorter than its header says"});

    const auto lonely = dir.write("lonely.npy", npy("<f4", {1, 1}, bytesOf(iota(1))));
    expectError<DataError>([&] { loadSource(lonely); }, {lonely, "lonely_labels.npy"});
}

// Images kept height x width x channels (Keras', MADlib's) are transposed once, at load.
TEST(DataNpy, ChannelsLastRowsAreTransposedToChannelsFirst) {
    TempDir dir;
    const auto x = dir.write("X.npy", npy("<f4", {2, 4, 5, 3}, bytesOf(iota(120))));
    dir.write("y.npy", npy("<i8", {2}, bytesOf(std::vector<int64_t>{0, 1})));
    SourceOptions options;
    options.layout = "hwc";
    const auto loaded = loadSource(x, options);
    EXPECT_EQ(loaded.layout, "hwc");
    ASSERT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{3, 4, 5}));
    const auto chw = loaded.train.features();
    const auto hwc = torch::arange(120, torch::kFloat32).mul(0.5).reshape({2, 4, 5, 3});
    EXPECT_TRUE(torch::equal(chw, hwc.permute({0, 3, 1, 2})));
    EXPECT_TRUE(chw.is_contiguous());
    ASSERT_FALSE(loaded.notes.empty());
    EXPECT_NE(loaded.notes.back().find("samples of 4x5x3 (height x width x channels, layout hwc) transposed to 3x4x5"),
              std::string::npos)
        << loaded.notes.back();

    // Read as they are (chw), a likely channels-last shape gets a hint.
    const auto asIs = loadSource(x, {});
    EXPECT_EQ(asIs.train.sampleShape(), (std::vector<int64_t>{4, 5, 3}));
    ASSERT_FALSE(asIs.notes.empty());
    EXPECT_NE(asIs.notes.back().find("if their channels come last, --layout hwc"), std::string::npos);

    // Flat rows read for a 3x4x5 network with hwc: taken as 4x5x3, then transposed.
    const auto flat = dir.write("F.npy", npy("<f4", {2, 60}, bytesOf(iota(120))));
    dir.write("F_labels.npy", npy("<i8", {2}, bytesOf(std::vector<int64_t>{0, 1})));
    SourceOptions forNetwork;
    forNetwork.layout = "hwc";
    forNetwork.flatShape = {3, 4, 5};
    EXPECT_TRUE(torch::equal(loadSource(flat, forNetwork).train.features(), chw));

    // 1-D samples cannot be channels last.
    SourceOptions tabular;
    tabular.layout = "hwc";
    try {
        loadSource(flat, tabular);
        ADD_FAILURE() << "hwc accepted for 1-D samples";
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("--layout hwc is for images kept height x width x channels"),
                  std::string::npos)
            << e.what();
    }
}
