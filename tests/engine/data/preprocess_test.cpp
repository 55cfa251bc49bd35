#include "mppdl/data/preprocess.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <numeric>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

namespace {

/// 100 uint8 images of 2x3x3, channel 1 brighter than channel 0; row r has label r % 4 and its
/// index in pixel (0, 0, 0) so that splits can be traced.
LoadedSource images() {
    torch::manual_seed(7);
    auto x = torch::randint(0, 200, {100, 2, 3, 3}, torch::kInt64);
    x.select(1, 1) += 55;
    x.select(1, 0).select(1, 0).select(1, 0).copy_(torch::arange(100));
    LoadedSource source;
    source.location = "memory";
    source.train = Dataset(x.to(torch::kUInt8), torch::arange(100) % 4, {"a", "b", "c", "d"});
    source.test = Dataset(x.slice(0, 0, 10).to(torch::kUInt8), torch::arange(10) % 4, {"a", "b", "c", "d"});
    return source;
}

std::vector<int64_t> rowIds(const Dataset& d, double scale = 1.0) {
    auto ids =
        (d.features().select(1, 0).select(1, 0).select(1, 0).to(torch::kFloat64) * scale).round().to(torch::kInt64);
    return {ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + ids.numel()};
}

} // namespace

TEST(DataPreprocess, ParseAndNameModes) {
    for (const auto mode : {Normalizer::Mode::None, Normalizer::Mode::Scale01, Normalizer::Mode::Standardize})
        EXPECT_EQ(parseNormalization(toString(mode)), mode);
    EXPECT_STREQ(toString(Normalizer::Mode::Scale01), "scale");
    expectError<ConfigError>([] { parseNormalization("zscore"); }, {"'zscore'", "none", "scale", "standardize"});
}

TEST(DataPreprocess, Scale01) {
    const auto source = images();
    const auto n = Normalizer::fit(Normalizer::Mode::Scale01, source.train);
    EXPECT_EQ(n.scale, 255.0);
    const auto out = n.apply(source.train);
    EXPECT_EQ(out.dtype(), "float32");
    EXPECT_LE(out.features().max().item<float>(), 1.0f);
    EXPECT_GE(out.features().min().item<float>(), 0.0f);
    EXPECT_TRUE(out.labels().equal(source.train.labels()));

    Dataset floats(torch::tensor({-4.0f, 2.0f, 1.0f, 0.5f}).view({2, 2}), torch::tensor({0, 1}, torch::kInt64), {});
    const auto f = Normalizer::fit(Normalizer::Mode::Scale01, floats);
    EXPECT_EQ(f.scale, 4.0);
    EXPECT_FLOAT_EQ(f.apply(floats).features().abs().max().item<float>(), 1.0f);

    Dataset zeros(torch::zeros({2, 2}), torch::tensor({0, 1}, torch::kInt64), {});
    EXPECT_EQ(Normalizer::fit(Normalizer::Mode::Scale01, zeros).scale, 1.0);
}

TEST(DataPreprocess, StandardizePerChannel) {
    const auto source = images();
    const auto n = Normalizer::fit(Normalizer::Mode::Standardize, source.train);
    ASSERT_EQ(n.mean.size(), 2u);
    EXPECT_GT(n.mean[1], n.mean[0]);
    const auto stats = computeStatistics(n.apply(source.train));
    for (size_t c = 0; c < 2; ++c) {
        EXPECT_NEAR(stats.channelMean[c], 0.0, 1e-5);
        EXPECT_NEAR(stats.channelStd[c], 1.0, 1e-5);
    }
}

TEST(DataPreprocess, StandardizeTabularRowsPerFeature) {
    Dataset rows(torch::tensor({1.0f, 100.0f, 3.0f, 300.0f, 5.0f, 200.0f}).view({3, 2}),
                 torch::tensor({0, 1, 0}, torch::kInt64), {});
    const auto n = Normalizer::fit(Normalizer::Mode::Standardize, rows);
    ASSERT_EQ(n.mean.size(), 2u);
    const auto x = n.apply(rows).features();
    EXPECT_NEAR(x.mean(0)[0].item<float>(), 0.0f, 1e-6);
    EXPECT_NEAR(x.mean(0)[1].item<float>(), 0.0f, 1e-6);
    EXPECT_NEAR(x.std(0, false)[1].item<float>(), 1.0f, 1e-5);

    Dataset other(torch::zeros({1, 3}), torch::tensor({0}, torch::kInt64), {});
    expectError<DataError>([&] { n.apply(other); }, {"2", "3"});
}

TEST(DataPreprocess, ValidationSplitIsSeeded) {
    const auto source = images();
    const auto a = prepare(source, 0.2, 42, Normalizer::Mode::Scale01);
    const auto b = prepare(source, 0.2, 42, Normalizer::Mode::Scale01);
    const auto c = prepare(source, 0.2, 43, Normalizer::Mode::Scale01);
    EXPECT_EQ(a.train.size(), 80);
    EXPECT_EQ(a.validation.size(), 20);
    EXPECT_EQ(a.test.size(), 10);
    EXPECT_EQ(a.train.dtype(), "float32");
    EXPECT_TRUE(a.validation.features().equal(b.validation.features()));
    EXPECT_TRUE(a.train.labels().equal(b.train.labels()));
    EXPECT_NE(rowIds(a.validation, 255), rowIds(c.validation, 255));

    // Every row lands in exactly one of the two sets.
    auto ids = rowIds(a.train, 255);
    const auto held = rowIds(a.validation, 255);
    ids.insert(ids.end(), held.begin(), held.end());
    std::sort(ids.begin(), ids.end());
    std::vector<int64_t> all(100);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(ids, all);

    const auto none = prepare(source, 0.0, 42, Normalizer::Mode::None);
    EXPECT_EQ(none.train.size(), 100);
    EXPECT_TRUE(none.validation.empty());
}

TEST(DataPreprocess, NormalizerIsFittedOnTrainingRowsOnly) {
    const auto source = images();
    const auto p = prepare(source, 0.3, 1, Normalizer::Mode::Standardize);
    const auto train = computeStatistics(p.train);
    for (size_t c = 0; c < 2; ++c) {
        EXPECT_NEAR(train.channelMean[c], 0.0, 1e-5);
        EXPECT_NEAR(train.channelStd[c], 1.0, 1e-5);
    }
    const auto refit = Normalizer::fit(Normalizer::Mode::Standardize, source.train);
    EXPECT_NE(refit.mean[0], p.normalizer.mean[0]);
}

TEST(DataPreprocess, BadFractions) {
    const auto source = images();
    expectError<ConfigError>([&] { prepare(source, 1.0, 1, Normalizer::Mode::None); }, {"validation"});
    expectError<ConfigError>([&] { prepare(source, -0.1, 1, Normalizer::Mode::None); }, {"validation"});
    expectError<ConfigError>([&] { prepare(source, 0.999, 1, Normalizer::Mode::None); }, {"no training rows"});
}

// Normalizing some rows straight from the source, in chunks, gives exactly what normalizing a
// copy of them gives, in every mode; 3000 rows make several chunks.
TEST(DataPreprocess, RowsNormalizedFromTheSourceEqualACopyNormalized) {
    auto x = torch::randint(0, 256, {3000, 2, 3, 3}, torch::kInt64).to(torch::kUInt8);
    const Dataset rows(x, torch::arange(3000) % 4, {"a", "b", "c", "d"});
    auto some = torch::randperm(3000, torch::kLong).slice(0, 0, 2500);
    some = std::get<0>(some.sort());
    for (const auto mode : {Normalizer::Mode::None, Normalizer::Mode::Scale01, Normalizer::Mode::Standardize}) {
        const auto n = Normalizer::fit(mode, rows.select(some));
        const auto direct = n.apply(rows, some);
        const auto copied = n.apply(rows.select(some));
        EXPECT_EQ(direct.dtype(), "float32");
        EXPECT_TRUE(direct.features().equal(copied.features())) << toString(mode);
        EXPECT_TRUE(direct.labels().equal(copied.labels()));
    }
}

// Fitted over some rows where they lie (out of core: a memory-mapped file), or over a copy of them:
// the same statistics and normalizer to every digit, and the chunks applyChunks() hands out hold
// exactly apply()'s values, for 8-bit and float data.
TEST(DataPreprocess, FittingAndApplyingSomeRowsInPlaceEqualsACopy) {
    const auto pixels = torch::randint(0, 256, {3000, 2, 3, 3}, torch::kInt64).to(torch::kUInt8);
    const auto floats = torch::randn({3000, 7}) * 40 + 3;
    auto some = std::get<0>(torch::randperm(3000, torch::kLong).slice(0, 0, 2600).sort());
    for (const auto& x : {pixels, floats}) {
        const Dataset rows(x, torch::arange(3000) % 4, {"a", "b", "c", "d"});
        const auto copy = rows.select(some);
        const auto a = computeStatistics(copy), b = computeStatistics(rows, some, Reduce());
        EXPECT_EQ(a.channelMean, b.channelMean);
        EXPECT_EQ(a.channelStd, b.channelStd);
        EXPECT_EQ(a.classCounts, b.classCounts);
        EXPECT_EQ(a.min, b.min);
        EXPECT_EQ(a.max, b.max);
        for (const auto mode : {Normalizer::Mode::Scale01, Normalizer::Mode::Standardize}) {
            const auto n = Normalizer::fit(mode, copy), m = Normalizer::fit(mode, rows, some, Reduce());
            EXPECT_EQ(n.scale, m.scale);
            EXPECT_EQ(n.mean, m.mean);
            EXPECT_EQ(n.std, m.std);
            auto sizes = x.sizes().vec();
            sizes[0] = some.size(0);
            auto out = torch::full(sizes, -1.0f);
            int64_t next = 0;
            m.applyChunks(rows, some, [&](int64_t begin, int64_t end) {
                EXPECT_EQ(begin, next);
                next = end;
                return out.slice(0, begin, end);
            });
            EXPECT_EQ(next, some.size(0));
            EXPECT_TRUE(out.equal(n.apply(copy).features())) << toString(mode);
        }
    }
}
