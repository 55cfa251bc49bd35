// Search spaces, their grid and random configurations, and Hyperband's plan.

#include "mppdl/core/error.h"
#include "mppdl/tune/search.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

using namespace mppdl;
using namespace mppdl::tune;

namespace {

SearchSpace parse(const std::string& json) { return parseSearchSpace(json, "space.json"); }

} // namespace

TEST(SearchSpace, ListsRangesAndDefaults) {
    const auto space = parse(R"({"architectures": ["mlp", "lenet5"], "lr": {"range": [0.001, 0.1], "scale": "log",
        "steps": 3}, "batch_size": [32, 64], "optimizer": "adam", "epochs": 2, "samples": 5, "seed": 7})");
    EXPECT_EQ(space.parameter("architecture").labels, (std::vector<std::string>{"mlp", "lenet5"}));
    EXPECT_EQ(space.parameter("optimizer").labels, (std::vector<std::string>{"adam"}));
    const auto& lr = space.parameter("lr");
    EXPECT_TRUE(lr.isRange());
    EXPECT_TRUE(lr.log);
    EXPECT_EQ(lr.steps, 3);
    EXPECT_EQ(space.parameter("batch_size").values, (std::vector<double>{32, 64}));
    EXPECT_EQ(space.parameter("momentum").values, (std::vector<double>{0})) << "PyTorch's default";
    EXPECT_EQ(space.parameter("epochs").values, (std::vector<double>{2}));
    EXPECT_EQ(space.samples, 5);
    EXPECT_EQ(space.seed, 7u);
    EXPECT_EQ(space.maxEpochs, 9);
    EXPECT_EQ(space.eta, 3);
}

// Every invalid value is named with its key and the file.
TEST(SearchSpace, AnInvalidValueIsNamed) {
    struct Case {
        const char* json;
        std::vector<std::string> parts;
    };
    const std::vector<Case> cases = {
        {R"({"architecture": "mlp", "lr": -0.1})", {"space.json", "\"lr\"", "-0.1", "positive learning rate"}},
        {R"({"architecture": "mlp", "lr": [0.1, 0]})", {"\"lr\"", "0", "positive"}},
        {R"({"architecture": "mlp", "batch_size": [64, 0]})", {"\"batch_size\"", "0", "batch size"}},
        {R"({"architecture": "mlp", "batch_size": 12.5})", {"\"batch_size\"", "12.5", "whole number"}},
        {R"({"architecture": "mlp", "momentum": 1.0})", {"\"momentum\"", "[0, 1)"}},
        {R"({"architecture": "mlp", "weight_decay": -1e-4})", {"\"weight_decay\"", "negative"}},
        {R"({"architecture": "mlp", "optimizer": ["sgd", "adagrad"]})", {"\"optimizer\"", "adagrad", "sgd, adam"}},
        {R"({"architecture": "mlp", "lr": []})", {"\"lr\"", "empty list"}},
        {R"({"architecture": "mlp", "lr": "fast"})", {"\"lr\"", "\"fast\"", "not a number"}},
        {R"({"architecture": "mlp", "lr": {"range": [0.1, 0.01]}})", {"\"lr\"", "low", "above its high"}},
        {R"({"architecture": "mlp", "weight_decay": {"range": [0, 0.1], "scale": "log"}})", {"log range", "above 0"}},
        {R"({"architecture": "mlp", "lr": {"range": [0.1, 0.2], "scale": "cubic"}})", {"cubic"}},
        {R"({"architecture": "mlp", "lr": {"range": [0.1, 0.2], "step": 3}})", {"unknown key \"step\""}},
        {R"({"architecture": "mlp", "learning_rate": 0.1})", {"unknown key \"learning_rate\"", "known: ", "lr"}},
        {R"({"architecture": [], "lr": 0.1})", {"\"architecture\"", "empty list"}},
        {R"({"lr": 0.1})", {"no \"architecture\""}},
        {R"({"architecture": "mlp", "epochs": 0})", {"\"epochs\"", "at least 1"}},
        {R"({"architecture": "mlp", "eta": 1})", {"\"eta\"", "at least 2"}},
        {R"({"architecture": "mlp", "samples": -3})", {"\"samples\""}},
        {R"({"architecture": "mlp", )", {"space.json", "not valid JSON"}},
        {R"([1, 2])", {"JSON object"}},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.json);
        try {
            parse(c.json);
            ADD_FAILURE() << "accepted";
        } catch (const ConfigError& e) {
            const std::string message = e.what();
            for (const auto& part : c.parts)
                EXPECT_NE(message.find(part), std::string::npos) << message << "\nlacks: " << part;
        }
    }
}

TEST(SearchSpace, GridIsEveryCombinationLastParameterFastest) {
    const auto space = parse(R"({"architecture": ["mlp", "lenet5"], "lr": [0.1, 0.01], "batch_size": [32, 64, 128],
        "epochs": 3})");
    const auto grid = gridConfigurations(space);
    ASSERT_EQ(grid.size(), 12u);
    EXPECT_EQ(grid[0].architecture, "mlp");
    EXPECT_EQ(grid[0].lr, 0.1);
    EXPECT_EQ(grid[0].batchSize, 32);
    EXPECT_EQ(grid[1].batchSize, 64) << "batch_size, the last parameter, turns fastest";
    EXPECT_EQ(grid[3].lr, 0.01);
    EXPECT_EQ(grid[6].architecture, "lenet5");
    std::set<std::string> distinct;
    for (const auto& c : grid) {
        EXPECT_EQ(c.epochs, 3);
        EXPECT_EQ(c.optimizer, "sgd");
        distinct.insert(c.toJson());
    }
    EXPECT_EQ(distinct.size(), 12u);
    EXPECT_EQ(Configuration::fromJson(grid[5].toJson()), grid[5]);
}

TEST(SearchSpace, GridRangesSpreadEvenlyInTheirScale) {
    auto grid = gridConfigurations(
        parse(R"({"architecture": "mlp", "lr": {"range": [0.001, 0.1], "scale": "log", "steps": 3}})"));
    ASSERT_EQ(grid.size(), 3u);
    EXPECT_NEAR(grid[0].lr, 0.001, 1e-12);
    EXPECT_NEAR(grid[1].lr, 0.01, 1e-12);
    EXPECT_NEAR(grid[2].lr, 0.1, 1e-12);
    grid = gridConfigurations(parse(R"({"architecture": "mlp", "batch_size": {"range": [16, 64], "steps": 4}})"));
    ASSERT_EQ(grid.size(), 4u);
    EXPECT_EQ(grid[1].batchSize, 32);
    EXPECT_EQ(grid[3].batchSize, 64);
    // A narrow integer range: rounding would repeat values; each is listed once.
    grid = gridConfigurations(parse(R"({"architecture": "mlp", "epochs": {"range": [1, 2], "steps": 5}})"));
    EXPECT_EQ(grid.size(), 2u);
    expectError<ConfigError>(
        [] { gridConfigurations(parse(R"({"architecture": "mlp", "lr": {"range": [0.001, 0.1]}})")); },
        {"\"lr\"", "grid search needs \"steps\""});
}

TEST(SearchSpace, RandomIsSeededAndStaysInTheSpace) {
    const auto space = parse(R"({"architecture": ["mlp", "lenet5"], "lr": {"range": [0.0001, 0.1], "scale": "log"},
        "momentum": {"range": [0.5, 0.99]}, "batch_size": [32, 64, 128], "optimizer": ["sgd", "adam"]})");
    const auto a = randomConfigurations(space, 400, 3), b = randomConfigurations(space, 400, 3);
    ASSERT_EQ(a.size(), 400u);
    for (size_t i = 0; i < a.size(); ++i)
        EXPECT_EQ(a[i], b[i]) << "the same seed draws the same search";
    EXPECT_FALSE(randomConfigurations(space, 20, 4) == std::vector<Configuration>(a.begin(), a.begin() + 20));
    int below = 0;
    std::set<int64_t> batches;
    std::set<std::string> archs;
    for (const auto& c : a) {
        EXPECT_GE(c.lr, 0.0001);
        EXPECT_LE(c.lr, 0.1);
        EXPECT_GE(c.momentum, 0.5);
        EXPECT_LE(c.momentum, 0.99);
        below += c.lr < std::sqrt(0.0001 * 0.1);
        batches.insert(c.batchSize);
        archs.insert(c.architecture);
    }
    // Log-uniform: half below the geometric middle (400 draws: 200 +- 3 sigma of 10).
    EXPECT_NEAR(below, 200, 35);
    EXPECT_EQ(batches, (std::set<int64_t>{32, 64, 128}));
    EXPECT_EQ(archs.size(), 2u);
    expectError<ConfigError>([&] { randomConfigurations(space, 0, 1); }, {"at least 1"});
}

// The paper's table (Li et al. 2018, R = 81, eta = 3), as MADlib's hyperband_schedule prints it.
TEST(Hyperband, PlanIsThePapersTable) {
    const auto plan = hyperbandPlan(81, 3);
    ASSERT_EQ(plan.size(), 5u);
    const std::vector<std::vector<std::pair<int, int>>> expected = {
        {{81, 1}, {27, 3}, {9, 9}, {3, 27}, {1, 81}},
        {{34, 3}, {11, 9}, {3, 27}, {1, 81}},
        {{15, 9}, {5, 27}, {1, 81}},
        {{8, 27}, {2, 81}},
        {{5, 81}},
    };
    for (size_t b = 0; b < plan.size(); ++b) {
        EXPECT_EQ(plan[b].s, int(4 - b));
        ASSERT_EQ(plan[b].rungs.size(), expected[b].size()) << "bracket " << plan[b].s;
        for (size_t i = 0; i < expected[b].size(); ++i) {
            EXPECT_EQ(plan[b].rungs[i].configurations, expected[b][i].first)
                << "bracket " << plan[b].s << " rung " << i;
            EXPECT_EQ(plan[b].rungs[i].epochs, expected[b][i].second) << "bracket " << plan[b].s << " rung " << i;
        }
    }
}

TEST(Hyperband, EpochsCountEachConfigurationOnceItContinues) {
    // R = 9, eta = 3: brackets (9x1, 3x3, 1x9), (5x3, 1x9), (3x9).
    const auto plan = hyperbandPlan(9, 3);
    ASSERT_EQ(plan.size(), 3u);
    EXPECT_EQ(plan[1].rungs.front().configurations, 5);
    EXPECT_EQ(plan[1].rungs.front().epochs, 3);
    EXPECT_EQ(hyperbandEpochs(plan), (9 * 1 + 3 * 2 + 1 * 6) + (5 * 3 + 1 * 6) + 3 * 9);
    EXPECT_EQ(hyperbandPlan(1, 3).size(), 1u);
    EXPECT_EQ(hyperbandPlan(1, 3).front().rungs.front().epochs, 1);
    expectError<ConfigError>([] { hyperbandPlan(0, 3); }, {"max_epochs"});
    expectError<ConfigError>([] { hyperbandPlan(9, 1); }, {"eta"});
}
