#include "mppdl/train/optimizers.h"

#include "mppdl/core/error.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mppdl::train;

TEST(TrainOptimizers, EveryListedOptimizerValidates) {
    for (const auto& choice : optimizerChoices()) {
        OptimizerConfig c;
        c.name = choice.name;
        EXPECT_TRUE(validate(c).empty()) << choice.name;
    }
}

TEST(TrainOptimizers, BadSettingsAreNamed) {
    OptimizerConfig c;
    c.name = "sgdd";
    c.lr = -1;
    c.momentum = 0;
    c.nesterov = true;
    const auto problems = validate(c);
    ASSERT_EQ(problems.size(), 3u);
    EXPECT_NE(problems[0].find("unknown optimizer 'sgdd'"), std::string::npos);
    EXPECT_NE(problems[0].find("adamw"), std::string::npos) << "lists the known ones";
    EXPECT_NE(problems[1].find("learning rate"), std::string::npos);
    EXPECT_NE(problems[2].find("nesterov"), std::string::npos);
}

TEST(TrainSchedules, StepAndCosine) {
    ScheduleConfig none;
    none.name = "none";
    EXPECT_DOUBLE_EQ(scheduledLearningRate(none, 0.1, 7, 10), 0.1);

    ScheduleConfig step;
    step.name = "step";
    step.stepSize = 3;
    step.gamma = 0.5;
    EXPECT_DOUBLE_EQ(scheduledLearningRate(step, 0.1, 0, 10), 0.1);
    EXPECT_DOUBLE_EQ(scheduledLearningRate(step, 0.1, 2, 10), 0.1);
    EXPECT_DOUBLE_EQ(scheduledLearningRate(step, 0.1, 3, 10), 0.05);
    EXPECT_DOUBLE_EQ(scheduledLearningRate(step, 0.1, 9, 10), 0.0125);

    ScheduleConfig cosine;
    cosine.name = "cosine";
    cosine.minLr = 0.001;
    EXPECT_DOUBLE_EQ(scheduledLearningRate(cosine, 0.1, 0, 10), 0.1);
    EXPECT_NEAR(scheduledLearningRate(cosine, 0.1, 5, 10), 0.0505, 1e-12);
    // The last epoch is not wasted at the floor, as in PyTorch's CosineAnnealingLR(T_max=epochs).
    EXPECT_NEAR(scheduledLearningRate(cosine, 0.1, 9, 10), 0.001 + 0.0495 * (1 + std::cos(0.9 * M_PI)), 1e-12);
    EXPECT_GT(scheduledLearningRate(cosine, 0.1, 9, 10), 0.001);
}

TEST(TrainSchedules, UnknownScheduleIsAProblem) {
    ScheduleConfig s;
    s.name = "linear";
    ASSERT_EQ(validate(s).size(), 1u);
    EXPECT_NE(validate(s)[0].find("cosine"), std::string::npos);
}

// Each optimizer starts from its own learning rate: SGD's recipe, Adam's and RMSprop's PyTorch ones.
TEST(TrainOptimizers, EachOptimizerHasItsDefaults) {
    const OptimizerConfig plain;
    EXPECT_EQ(plain.name, "sgd");
    EXPECT_DOUBLE_EQ(plain.lr, defaultsOf("sgd").lr);
    EXPECT_DOUBLE_EQ(plain.momentum, defaultsOf("sgd").momentum);
    EXPECT_DOUBLE_EQ(defaultsOf("sgd").lr, 0.05);
    EXPECT_DOUBLE_EQ(defaultsOf("sgd").momentum, 0.9);
    EXPECT_DOUBLE_EQ(defaultsOf("adam").lr, 0.001);
    EXPECT_DOUBLE_EQ(defaultsOf("adam").momentum, 0.0);
    EXPECT_DOUBLE_EQ(defaultsOf("rmsprop").lr, 0.01);
    for (const auto& choice : optimizerChoices())
        EXPECT_TRUE(validate(defaultsOf(choice.name)).empty()) << choice.name;
    EXPECT_THROW(defaultsOf("sgdd"), mppdl::ConfigError);
}
