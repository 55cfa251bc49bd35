#include "mppdl/data/distribution.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"
#include "mppdl/data/source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <set>

using namespace mppdl;
using namespace mppdl::data;
using mppdl::data::testing::expectError;

namespace {

/// The policies that place rows themselves ("database" takes the places the source read).
const std::vector<std::string> kPolicies = {"random", "hash", "round-robin", "by-label"};

/// `labels.size()` rows of two float features; row i holds (i, -i).
Dataset rowsWithLabels(const std::vector<int64_t>& labels, std::vector<std::string> classNames = {}) {
    const auto n = static_cast<int64_t>(labels.size());
    const auto i = torch::arange(n, torch::kFloat32).view({n, 1});
    return Dataset(torch::cat({i, -i}, 1), torch::tensor(at::ArrayRef<int64_t>(labels), torch::kInt64),
                   std::move(classNames));
}

/// 103 rows of 5 unbalanced classes, in a scrambled order: class (i * 7 + i / 10) % 5, with class 4
/// made rarer by folding half of it into class 0.
Dataset unbalanced() {
    std::vector<int64_t> labels;
    for (int64_t i = 0; i < 103; ++i) {
        int64_t c = (i * 7 + i / 10) % 5;
        if (c == 4 && i % 2 == 0)
            c = 0;
        labels.push_back(c);
    }
    return rowsWithLabels(labels);
}

std::vector<int64_t> toVector(const at::Tensor& t) {
    const auto c = t.to(torch::kCPU, torch::kInt64).contiguous();
    return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

std::vector<std::vector<int64_t>> toVectors(const std::vector<at::Tensor>& shards) {
    std::vector<std::vector<int64_t>> out;
    for (const auto& s : shards)
        out.push_back(toVector(s));
    return out;
}

/// Every row of 0..n-1 on exactly one of the `segments` shards, ascending within each, as int64.
void expectPartition(const std::vector<at::Tensor>& shards, int64_t n, int segments, const std::string& what) {
    ASSERT_EQ(static_cast<int>(shards.size()), segments) << what;
    std::vector<int> seen(static_cast<size_t>(n), 0);
    for (size_t s = 0; s < shards.size(); ++s) {
        ASSERT_TRUE(shards[s].defined()) << what << " segment " << s;
        EXPECT_EQ(shards[s].scalar_type(), torch::kInt64) << what << " segment " << s;
        EXPECT_EQ(shards[s].dim(), 1) << what << " segment " << s;
        const auto rows = toVector(shards[s]);
        for (size_t j = 0; j < rows.size(); ++j) {
            ASSERT_GE(rows[j], 0) << what;
            ASSERT_LT(rows[j], n) << what;
            ++seen[static_cast<size_t>(rows[j])];
            if (j > 0)
                EXPECT_LT(rows[j - 1], rows[j]) << what << " segment " << s << " is not in ascending row order";
        }
    }
    for (int64_t i = 0; i < n; ++i)
        EXPECT_EQ(seen[static_cast<size_t>(i)], 1) << what << ": row " << i << " held " << seen[size_t(i)] << " times";
}

void expectSizesWithinOne(const std::vector<at::Tensor>& shards, const std::string& what) {
    int64_t low = INT64_MAX, high = 0;
    for (const auto& s : shards) {
        low = std::min(low, s.size(0));
        high = std::max(high, s.size(0));
    }
    EXPECT_LE(high - low, 1) << what << ": sizes from " << low << " to " << high;
}

/// The first `limit` training rows of Fashion-MNIST, loaded once; empty when it is not installed.
const Dataset& fashionSubset() {
    static const Dataset rows = [] {
        const std::string location = MPPDL_FASHION_MNIST_DIR;
        if (!std::filesystem::exists(location + "/train-images-idx3-ubyte.gz"))
            return Dataset();
        SourceOptions options;
        options.limit = 3000;
        return loadSource(location, options).train;
    }();
    return rows;
}

#define REQUIRE_FASHION()                                                                                              \
    if (fashionSubset().empty())                                                                                       \
    GTEST_SKIP() << "Fashion-MNIST is not installed at " << MPPDL_FASHION_MNIST_DIR

} // namespace

TEST(DataDistribution, PolicyTable) {
    std::vector<std::string> names;
    for (const auto& p : distributionPolicies()) {
        names.push_back(p.name);
        EXPECT_GT(std::string(p.description).size(), 10u) << p.name;
        EXPECT_TRUE(p.assign != nullptr) << p.name;
        EXPECT_EQ(p.usesSeed, std::string(p.name) == "random") << p.name;
        EXPECT_EQ(p.usesKeys, std::string(p.name) == "hash") << p.name;
        EXPECT_EQ(p.fromSource, std::string(p.name) == "database") << p.name;
    }
    auto expected = kPolicies;
    expected.push_back("database");
    EXPECT_EQ(names, expected);
}

TEST(DataDistribution, DatabaseKeepsEachRowOnItsHomeSegmentThroughSubsets) {
    const auto rows = unbalanced();
    const int64_t n = rows.size();
    // Home segments as a database would give them: 3 segments in an irregular pattern.
    const auto home = torch::arange(n, torch::kInt64).mul(7).remainder(5).remainder(3);
    const auto placed = rows.withHomeSegments(home);
    const auto shards = distribute(placed, 3, "database", 99);
    expectPartition(shards, n, 3, "database over 3");
    for (int s = 0; s < 3; ++s)
        EXPECT_TRUE(torch::equal(shards[size_t(s)], torch::nonzero(home == s).reshape({-1}))) << "segment " << s;

    // A subset (a validation split, a slice) keeps each row's home segment.
    const auto picked = torch::tensor({5, 0, 11}, torch::kInt64);
    EXPECT_TRUE(torch::equal(placed.select(picked).homeSegments(), home.index_select(0, picked)));
    EXPECT_TRUE(torch::equal(placed.slice(2, 9).homeSegments(), home.slice(0, 2, 9)));
    EXPECT_TRUE(torch::equal(placed.withFeatures(rows.features().to(torch::kFloat32)).homeSegments(), home));

    expectError<ConfigError>([&] { distribute(rows, 3, "database", 0); }, {"'database' distribution", "pg:"});
    expectError<ConfigError>([&] { distribute(placed, 2, "database", 0); },
                             {"segment 2 of the database", "2 segments"});
}

TEST(DataDistribution, EveryPolicyCoversEveryRowOnceInAscendingOrder) {
    const auto rows = unbalanced();
    for (const auto& policy : kPolicies)
        for (const int segments : {1, 2, 3, 4, 5, 7, 10, 103}) {
            const std::string what = policy + " over " + std::to_string(segments);
            expectPartition(distribute(rows, segments, policy, 17), rows.size(), segments, what);
        }
}

TEST(DataDistribution, OneSegmentIsEveryRowInOrderForEveryPolicy) {
    const auto rows = unbalanced();
    const auto all = toVector(torch::arange(rows.size(), torch::kInt64));
    for (const auto& policy : kPolicies)
        for (const uint64_t seed : {0ULL, 1ULL, 12345ULL}) {
            const auto shards = distribute(rows, 1, policy, seed);
            ASSERT_EQ(shards.size(), 1u) << policy;
            EXPECT_EQ(toVector(shards[0]), all) << policy << " seed " << seed;
        }
    // Hash with keys too: whatever the keys, one segment holds everything in row order.
    const auto keys = torch::arange(rows.size(), torch::kInt64).mul(-31).add(5);
    EXPECT_EQ(toVector(distribute(rows, 1, "hash", 0, keys)[0]), all);
}

TEST(DataDistribution, RandomIsReproducibleForASeedAndEvenlySized) {
    const auto rows = unbalanced();
    const auto a = toVectors(distribute(rows, 4, "random", 7));
    const auto b = toVectors(distribute(rows, 4, "random", 7));
    EXPECT_EQ(a, b);
    const auto other = toVectors(distribute(rows, 4, "random", 8));
    EXPECT_NE(a, other) << "another seed should deal the rows differently";

    for (const int segments : {2, 3, 4, 6, 10, 50}) {
        const auto shards = distribute(rows, segments, "random", 3);
        expectSizesWithinOne(shards, "random over " + std::to_string(segments));
    }
    // Shuffled, not dealt in blocks or in turn.
    const auto blocks = toVector(torch::arange(26, torch::kInt64));
    EXPECT_NE(a[0], blocks);
    EXPECT_NE(a, toVectors(distribute(rows, 4, "round-robin", 0)));
}

TEST(DataDistribution, RandomKeepsTheClassMixOnRealData) {
    REQUIRE_FASHION();
    const auto& rows = fashionSubset();
    ASSERT_EQ(rows.size(), 3000);
    const auto shards = distribute(rows, 4, "random", 42);
    expectPartition(shards, rows.size(), 4, "random on Fashion-MNIST");
    const auto summary = summarize(rows, shards);
    EXPECT_DOUBLE_EQ(summary.skew, 1.0); // 3000 rows over 4: 750 each
    const auto total = computeStatistics(rows).classCounts;
    for (size_t s = 0; s < 4; ++s) {
        EXPECT_EQ(summary.segments[s].rows, 750);
        for (size_t c = 0; c < 10; ++c) {
            // IID: about a quarter of each class (binomial sd ~ 7.5 rows) on every segment.
            const double expected = double(total[c]) / 4.0;
            EXPECT_NEAR(double(summary.segments[s].classCounts[c]), expected, 40.0)
                << "segment " << s << " class " << c;
        }
    }
}

TEST(DataDistribution, RoundRobinDealsInTurn) {
    const auto rows = unbalanced();
    for (const int segments : {2, 3, 4, 10}) {
        const auto shards = toVectors(distribute(rows, segments, "round-robin", 99));
        for (int s = 0; s < segments; ++s)
            for (const auto i : shards[static_cast<size_t>(s)])
                EXPECT_EQ(i % segments, s) << "row " << i << " over " << segments;
        expectSizesWithinOne(distribute(rows, segments, "round-robin", 0), "round-robin");
    }
    // The seed does not matter.
    EXPECT_EQ(toVectors(distribute(rows, 3, "round-robin", 1)), toVectors(distribute(rows, 3, "round-robin", 2)));
}

TEST(DataDistribution, HashIsAFixedFunctionOfTheKey) {
    // splitmix64 of the row ordinal, mod 4: rows 0..7 go to 3,1,2,1,2,2,0,3. Fixed here so that a
    // change of the hash (which would move every table's rows) is caught.
    const auto rows = rowsWithLabels({0, 0, 0, 0, 0, 0, 0, 0});
    EXPECT_EQ(toVectors(distribute(rows, 4, "hash", 0)),
              (std::vector<std::vector<int64_t>>{{6}, {1, 3}, {2, 4, 5}, {0, 7}}));
    // The seed does not matter.
    EXPECT_EQ(toVectors(distribute(rows, 4, "hash", 123)), toVectors(distribute(rows, 4, "hash", 0)));

    // Given keys are hashed instead of the row number: 42 -> 1, -1 -> 0, 1000000007 -> 2, 0 -> 3 (mod 4)
    // and 42 -> 5, -1 -> 0, 1000000007 -> 5, 0 -> 2 (mod 7; segments 1, 3, 4, 6 stay empty).
    const auto four = rowsWithLabels({0, 1, 0, 1});
    const auto keys = torch::tensor(std::vector<int64_t>{42, -1, 1000000007, 0}, torch::kInt64);
    EXPECT_EQ(toVectors(distribute(four, 4, "hash", 0, keys)), (std::vector<std::vector<int64_t>>{{1}, {0}, {2}, {3}}));
    const auto eight = rowsWithLabels({0, 1, 0, 1, 0, 1, 0, 1});
    const auto eightKeys = torch::tensor(std::vector<int64_t>{42, -1, 1000000007, 0, 42, 42, 0, -1}, torch::kInt64);
    EXPECT_EQ(toVectors(distribute(eight, 7, "hash", 0, eightKeys)),
              (std::vector<std::vector<int64_t>>{{1, 7}, {}, {3, 6}, {}, {}, {0, 2, 4, 5}, {}}));
}

TEST(DataDistribution, HashUsesTheGivenKeys) {
    const auto rows = unbalanced();
    const int64_t n = rows.size();
    // Keys equal to the row numbers are the default.
    EXPECT_EQ(toVectors(distribute(rows, 5, "hash", 0, torch::arange(n, torch::kInt64))),
              toVectors(distribute(rows, 5, "hash", 0)));
    // One key for every row: all rows on one segment, as DISTRIBUTED BY a constant column would.
    const auto same = toVectors(distribute(rows, 5, "hash", 0, torch::full({n}, 42, torch::kInt64)));
    EXPECT_EQ(same[3].size(), static_cast<size_t>(n)); // splitmix64(42) mod 5 = 3
    // Rows with equal keys always share a segment.
    const auto keys = torch::arange(n, torch::kInt64).remainder(10);
    const auto shards = toVectors(distribute(rows, 3, "hash", 0, keys));
    std::vector<int> segmentOfKey(10, -1);
    for (size_t s = 0; s < shards.size(); ++s)
        for (const auto i : shards[s]) {
            auto& k = segmentOfKey[static_cast<size_t>(i % 10)];
            if (k < 0)
                k = static_cast<int>(s);
            EXPECT_EQ(k, static_cast<int>(s)) << "key " << i % 10;
        }
}

TEST(DataDistribution, HashSpreadsRealRowsEvenly) {
    REQUIRE_FASHION();
    const auto& rows = fashionSubset();
    const auto shards = distribute(rows, 4, "hash", 0);
    expectPartition(shards, rows.size(), 4, "hash on Fashion-MNIST");
    for (const auto& s : shards)
        EXPECT_NEAR(double(s.size(0)), 750.0, 75.0); // binomial sd ~ 24 rows
    EXPECT_LT(summarize(rows, shards).skew, 1.1);
}

TEST(DataDistribution, ByLabelPutsEachClassOnOneSegment) {
    REQUIRE_FASHION();
    const auto& rows = fashionSubset();
    ASSERT_EQ(rows.numClasses(), 10);
    const auto total = computeStatistics(rows).classCounts;
    for (const int segments : {2, 3, 4, 10}) {
        const auto shards = distribute(rows, segments, "by-label", 5);
        expectPartition(shards, rows.size(), segments, "by-label over " + std::to_string(segments));
        const auto summary = summarize(rows, shards);
        ASSERT_EQ(summary.segments.size(), static_cast<size_t>(segments));
        for (size_t c = 0; c < 10; ++c) {
            ASSERT_GT(total[c], 0);
            for (int s = 0; s < segments; ++s) {
                // Class c lives on segment c mod N only, with all its rows.
                const int64_t expected = static_cast<int>(c) % segments == s ? total[c] : 0;
                EXPECT_EQ(summary.segments[size_t(s)].classCounts[c], expected)
                    << "class " << c << " segment " << s << " of " << segments;
            }
        }
        // Skew from the labels directly: max over mean of the per-segment row counts.
        std::vector<int64_t> perSegment(static_cast<size_t>(segments), 0);
        for (size_t c = 0; c < 10; ++c)
            perSegment[c % size_t(segments)] += total[c];
        const double mean = double(rows.size()) / segments;
        const double skew = double(*std::max_element(perSegment.begin(), perSegment.end())) / mean;
        EXPECT_DOUBLE_EQ(summary.skew, skew) << segments;
        for (int s = 0; s < segments; ++s)
            EXPECT_EQ(summary.segments[size_t(s)].rows, perSegment[size_t(s)]);
    }
    // 4 segments take 3, 3, 2 and 2 classes: uneven on purpose.
    EXPECT_GT(summarize(rows, distribute(rows, 4, "by-label", 0)).skew, 1.05);
}

TEST(DataDistribution, ByLabelSplitsClassesWhenSegmentsOutnumberThem) {
    // Class 0 has 9 rows, class 1 has 3: of 4 segments class 0 gets three (3 rows each), class 1 one.
    const auto rows = rowsWithLabels({0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0});
    EXPECT_EQ(toVectors(distribute(rows, 4, "by-label", 0)),
              (std::vector<std::vector<int64_t>>{{0, 2, 3}, {5, 6, 7}, {9, 10, 11}, {1, 4, 8}}));

    // A class with one row cannot be split: the other class takes the remaining segments.
    const auto lopsided = rowsWithLabels({1, 1, 0, 1, 1, 1});
    const auto shards = distribute(lopsided, 6, "by-label", 0);
    expectPartition(shards, 6, 6, "lopsided");
    EXPECT_EQ(toVectors(shards), (std::vector<std::vector<int64_t>>{{2}, {0}, {1}, {3}, {4}, {5}}));

    // Every segment holds one class and none is empty, whatever the counts.
    const auto rows5 = unbalanced();
    for (const int segments : {6, 7, 11, 40, 103}) {
        const auto s = distribute(rows5, segments, "by-label", 0);
        const auto summary = summarize(rows5, s);
        for (size_t seg = 0; seg < summary.segments.size(); ++seg) {
            EXPECT_GT(summary.segments[seg].rows, 0) << segments << " segment " << seg;
            const auto& counts = summary.segments[seg].classCounts;
            EXPECT_EQ(std::count_if(counts.begin(), counts.end(), [](int64_t v) { return v > 0; }), 1)
                << segments << " segment " << seg;
        }
    }
}

TEST(DataDistribution, ByLabelSkipsClassesWithoutRows) {
    // Four classes named, class 1 has no rows: classes 0, 2, 3 go to segments 0, 1, 2.
    const auto rows = rowsWithLabels({3, 0, 2, 0, 3}, {"a", "b", "c", "d"});
    EXPECT_EQ(toVectors(distribute(rows, 3, "by-label", 0)), (std::vector<std::vector<int64_t>>{{1, 3}, {2}, {0, 4}}));
}

TEST(DataDistribution, SummarizeCountsRowsClassesAndSkew) {
    const auto rows = rowsWithLabels({0, 1, 2, 0, 1, 0, 2, 2, 2, 1, 0, 0}, {"a", "b", "c"});
    const std::vector<at::Tensor> shards = {torch::tensor({0, 1, 2, 3, 4, 5}, torch::kInt64),
                                            torch::tensor({6, 7, 8}, torch::kInt64),
                                            torch::tensor({9, 10, 11}, torch::kInt64)};
    const auto summary = summarize(rows, shards);
    ASSERT_EQ(summary.segments.size(), 3u);
    EXPECT_EQ(summary.segments[0].rows, 6);
    EXPECT_EQ(summary.segments[0].classCounts, (std::vector<int64_t>{3, 2, 1}));
    EXPECT_EQ(summary.segments[1].classCounts, (std::vector<int64_t>{0, 0, 3}));
    EXPECT_EQ(summary.segments[2].classCounts, (std::vector<int64_t>{2, 1, 0}));
    EXPECT_DOUBLE_EQ(summary.skew, 6.0 / 4.0);

    // An empty segment counts in the mean; perfectly even is 1.
    const auto withEmpty = summarize(rows, {torch::arange(12, torch::kInt64), torch::empty({0}, torch::kInt64)});
    EXPECT_EQ(withEmpty.segments[1].rows, 0);
    EXPECT_EQ(withEmpty.segments[1].classCounts, (std::vector<int64_t>{0, 0, 0}));
    EXPECT_DOUBLE_EQ(withEmpty.skew, 2.0);
    EXPECT_DOUBLE_EQ(summarize(rows, distribute(rows, 3, "round-robin", 0)).skew, 1.0);
    EXPECT_DOUBLE_EQ(summarize(Dataset(), {}).skew, 0.0);

    expectError<ConfigError>(
        [&] {
            summarize(rows, {torch::tensor({0, 12}, torch::kInt64)});
        },
        {"segment 0", "row 12", "12 rows"});
    expectError<ConfigError>([&] { summarize(rows, {torch::tensor({0, -1}, torch::kInt64)}); }, {"row -1"});
    expectError<ConfigError>([&] { summarize(rows, {torch::tensor({0.0f, 1.0f})}); }, {"segment 0", "integer"});
}

TEST(DataDistribution, BadInputsAreConfigErrors) {
    const auto five = rowsWithLabels({0, 1, 0, 1, 0});
    expectError<ConfigError>([&] { distribute(five, 8, "random", 0); }, {"cannot spread 5 rows over 8 segments"});
    expectError<ConfigError>([&] { distribute(Dataset(), 1, "round-robin", 0); },
                             {"cannot spread 0 rows over 1 segment"});
    expectError<ConfigError>([&] { distribute(five, 0, "random", 0); }, {"at least 1", "got 0"});
    expectError<ConfigError>([&] { distribute(five, -3, "hash", 0); }, {"at least 1", "got -3"});
    expectError<ConfigError>([&] { distribute(five, 2, "striped", 0); },
                             {"'striped'", "random, hash, round-robin, by-label"});
    expectError<ConfigError>([&] { distribute(five, 2, "hash", 0, torch::arange(4, torch::kInt64)); },
                             {"int64", "one entry per row (5)", "[4]"});
    expectError<ConfigError>([&] { distribute(five, 2, "hash", 0, torch::zeros({5}, torch::kFloat32)); },
                             {"int64", "Float"});
    expectError<ConfigError>(
        [&] {
            distribute(five, 2, "hash", 0, torch::zeros({5, 1}, torch::kInt64));
        },
        {"int64", "5x1"});
    expectError<ConfigError>([&] { distribute(five, 2, "random", 0, torch::arange(5, torch::kInt64)); },
                             {"'random'", "does not use keys"});
    // Exactly as many segments as rows is fine for every policy that cannot leave one empty.
    for (const char* policy : {"random", "round-robin", "by-label"})
        for (const auto& shard : distribute(five, 5, policy, 0))
            EXPECT_EQ(shard.size(0), 1) << policy;
}
