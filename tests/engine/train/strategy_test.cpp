// Segment strategies on the engine's threads: model averaging against the single reference.

#include "mppdl/core/error.h"
#include "mppdl/train/trainer.h"

#include "train/trained_model_impl.h"
#include "train_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::train;

namespace {

const data::PreparedData& subset() {
    static const data::PreparedData prepared = fashionSubset(2400, 0.2, 9, 500);
    return prepared;
}

TrainConfig config(const std::string& strategy, int segments) {
    TrainConfig c;
    c.strategy = strategy;
    c.segments = segments;
    c.epochs = 2;
    c.batchSize = 32;
    c.optimizer.lr = 0.05;
    c.optimizer.momentum = 0.9;
    c.seed = 21;
    return c;
}

std::vector<RunEvent> epochs(const RecordingObserver& o, int segment) {
    std::vector<RunEvent> out;
    for (const auto& e : o.events())
        if (e.kind == EventKind::Epoch && e.segment == segment)
            out.push_back(e);
    return out;
}

using Keep = KeepCheckpoints;

} // namespace

// The first correctness test: model averaging over one segment is the single strategy, bit
// for bit (fmnist_cnn: dropout and batch norm included), whatever the distribution policy.
TEST(TrainModelAveraging, OneSegmentEqualsSingleBitForBit) {
    const auto arch = bundledArchitecture("fmnist_cnn");
    RecordingObserver single;
    const auto reference = train::train(config("single", 1), arch, subset(), single);
    for (const char* policy : {"random", "by-label"}) {
        auto c = config("model-averaging", 1);
        c.distribution = policy;
        RecordingObserver averaged;
        const auto result = train::train(c, arch, subset(), averaged);
        EXPECT_TRUE(sameTensors(reference.model, result.model)) << policy;
        EXPECT_EQ(result.test->loss, reference.test->loss) << policy;
        const auto a = epochs(single, -1), b = epochs(averaged, -1);
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) {
            EXPECT_EQ(a[i].metric("train_loss"), b[i].metric("train_loss")) << policy;
            EXPECT_EQ(a[i].metric("val_accuracy"), b[i].metric("val_accuracy")) << policy;
        }
        ASSERT_EQ(epochs(averaged, 0).size(), 2u);
        EXPECT_EQ(epochs(averaged, 0).back().metric("divergence", -1), 0.0);
    }
}

TEST(TrainModelAveraging, FourSegmentsOnThreadsAreReproducibleAndLearn) {
    const auto arch = bundledArchitecture("lenet5");
    auto c = config("model-averaging", 4);
    RecordingObserver a, b;
    const auto first = train::train(c, arch, subset(), a);
    const auto second = train::train(c, arch, subset(), b);
    EXPECT_TRUE(sameTensors(first.model, second.model)) << "threads must not make runs differ";
    EXPECT_GT(first.test->accuracy, 0.4); // chance is 0.1; one merge per epoch costs accuracy early on

    for (int s = 0; s < 4; ++s) {
        const auto events = epochs(a, s);
        ASSERT_EQ(events.size(), 2u) << "segment " << s;
        EXPECT_GT(events.back().metric("divergence"), 0) << "replicas drift apart between merges";
        EXPECT_NEAR(events.back().metric("rows"), 1920.0 / 4, 1);
        EXPECT_GT(events.back().metric("images_per_sec"), 0);
    }
    const auto merged = epochs(a, -1);
    ASSERT_EQ(merged.size(), 2u);
    EXPECT_EQ(merged.back().metric("merges"), 1);
    EXPECT_GE(merged.back().metric("merge_seconds"), 0);

    RecordingObserver single;
    const auto reference = train::train(config("single", 1), arch, subset(), single);
    EXPECT_FALSE(sameTensors(first.model, reference.model));
}

TEST(TrainModelAveraging, SyncEveryMergesMoreOften) {
    auto c = config("model-averaging", 3);
    c.epochs = 1;
    c.syncEvery = 5; // 640 rows a segment, batch 32: 20 steps, so 4 merges
    RecordingObserver events;
    train::train(c, bundledArchitecture("mlp"), subset(), events);
    EXPECT_EQ(epochs(events, -1).back().metric("merges"), 4);
}

TEST(TrainModelAveraging, ResumeOnThreadsIsBitForBit) {
    const auto arch = bundledArchitecture("fmnist_cnn");
    auto c = config("model-averaging", 3);
    c.epochs = 3;
    c.distribution = "round-robin";
    RecordingObserver whole, rest;
    Keep kept;
    TrainControl control;
    control.checkpoints = &kept;
    const auto uninterrupted = train::train(c, arch, subset(), whole, control);
    ASSERT_EQ(kept.all.size(), 3u);
    TrainControl resume;
    resume.resumeFrom = &kept.all[0];
    const auto resumed = train::train(c, arch, subset(), rest, resume);
    EXPECT_TRUE(sameTensors(uninterrupted.model, resumed.model));
    EXPECT_EQ(resumed.test->loss, uninterrupted.test->loss);

    // A checkpoint of 3 segments cannot continue a 4-segment run.
    c.segments = 4;
    RecordingObserver failed;
    EXPECT_THROW(train::train(c, arch, subset(), failed, resume), ConfigError);
}

TEST(TrainModelAveraging, ConfigurationProblemsAreNamed) {
    auto c = config("single", 4);
    auto problems = validate(c);
    ASSERT_FALSE(problems.empty());
    EXPECT_NE(problems.front().find("model-averaging"), std::string::npos) << problems.front();
    c = config("nonsense", 2);
    problems = validate(c);
    ASSERT_FALSE(problems.empty());
    EXPECT_NE(problems.front().find("unknown strategy 'nonsense'"), std::string::npos) << problems.front();
    c = config("model-averaging", 2);
    c.distribution = "by-colour";
    EXPECT_FALSE(validate(c).empty());
    c = config("model-averaging", 5000);
    RecordingObserver events;
    EXPECT_THROW(train::train(c, bundledArchitecture("mlp"), subset(), events), ConfigError);
}
