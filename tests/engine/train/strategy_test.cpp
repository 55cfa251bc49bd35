// Segment strategies on the engine's threads: model averaging against the single reference.

#include "mppdl/core/error.h"
#include "mppdl/train/trainer.h"

#include "model/graph_module.h"
#include "train/trained_model_impl.h"
#include "train_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>

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

// Every strategy's checkpoint holds what its segments need (EASGD's and an ensemble's replicas keep
// their own weights in the state): a resume repeats the run bit for bit.
class TrainStrategyResume : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainStrategyResume, ResumeOnThreadsIsBitForBit) {
    const auto arch = bundledArchitecture("fmnist_cnn");
    auto c = config(GetParam(), 3);
    if (GetParam() == "easgd")
        c.syncEvery = 4;
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

INSTANTIATE_TEST_SUITE_P(Strategies, TrainStrategyResume,
                         ::testing::Values("model-averaging", "easgd", "ensemble", "allreduce"));

namespace {

std::vector<RunEvent> segmentTests(const RecordingObserver& o) {
    std::vector<RunEvent> out;
    for (const auto& e : o.events())
        if (e.kind == EventKind::Evaluation && e.segment >= 0)
            out.push_back(e);
    return out;
}

} // namespace

// All-reduce averages the segments' gradients, weighted by rows: one step of it is one step of the
// single strategy on the union of the segments' minibatches (here each segment's whole shard of
// 480 rows against one minibatch of all 1920), up to float rounding.
TEST(TrainAllReduce, OneStepEqualsSingleOnTheUnionMinibatch) {
    for (const char* name : {"mlp", "lenet5"}) {
        const auto arch = bundledArchitecture(name);
        auto c = config("allreduce", 4);
        c.epochs = 1;
        c.batchSize = 480;
        RecordingObserver a, b;
        const auto reduced = train::train(c, arch, subset(), a);
        auto s = config("single", 1);
        s.epochs = 1;
        s.batchSize = 1920;
        const auto single = train::train(s, arch, subset(), b);
        EXPECT_LT(relativeDifference(reduced.model, single.model), 1e-5) << name;
        ASSERT_EQ(epochs(a, 0).size(), 1u);
        // The replicas never part: their distance from the merged model is zero.
        for (int seg = 0; seg < 4; ++seg)
            EXPECT_EQ(epochs(a, seg).front().metric("divergence", -1), 0.0) << name;
    }
}

TEST(TrainAllReduce, ManyStepsLearnLikeSingle) {
    auto c = config("allreduce", 4);
    c.batchSize = 8; // 4 x 8 rows a step: the single strategy's 32
    RecordingObserver a, b;
    const auto reduced = train::train(c, bundledArchitecture("lenet5"), subset(), a);
    const auto single = train::train(config("single", 1), bundledArchitecture("lenet5"), subset(), b);
    EXPECT_GT(reduced.test->accuracy, 0.6);
    EXPECT_NEAR(reduced.test->accuracy, single.test->accuracy, 0.06);
    EXPECT_EQ(epochs(a, -1).back().metric("merges"), 60); // 480 rows a segment in steps of 8
}

// With moving rate 0 nothing moves at the elastic steps: EASGD's replicas are N independent
// trainings (an ensemble's members, step for step) and the center keeps its initial weights.
TEST(TrainEasgd, MovingRateZeroIsIndependentTrainings) {
    const auto arch = bundledArchitecture("fmnist_cnn");
    auto c = config("easgd", 3);
    c.movingRate = 0.0;
    c.syncEvery = 5;
    RecordingObserver elastic, independent;
    const auto frozen = train::train(c, arch, subset(), elastic);
    const auto members = train::train(config("ensemble", 3), arch, subset(), independent);
    for (int s = 0; s < 3; ++s) {
        const auto a = epochs(elastic, s), b = epochs(independent, s);
        ASSERT_EQ(a.size(), 2u);
        ASSERT_EQ(b.size(), 2u);
        for (size_t e = 0; e < a.size(); ++e) {
            EXPECT_EQ(a[e].metric("train_loss"), b[e].metric("train_loss")) << "segment " << s;
            EXPECT_EQ(a[e].metric("train_accuracy"), b[e].metric("train_accuracy")) << "segment " << s;
        }
        EXPECT_GT(a.back().metric("divergence"), a.front().metric("divergence")) << "they drift away";
    }
    EXPECT_EQ(epochs(elastic, -1).back().metric("merges"), 4); // 640 rows, batch 32: 20 steps, tau 5

    // The center's parameters: the network's as the seed initializes them. (Its BatchNorm batch
    // count, an integer buffer, takes the replicas' largest at each elastic step.)
    torch::manual_seed(c.seed);
    const model::GraphModule initial(arch);
    const auto center = frozen.model.impl().members.front()->parameters();
    const auto expected = initial->parameters();
    ASSERT_EQ(center.size(), expected.size());
    for (size_t i = 0; i < center.size(); ++i)
        EXPECT_TRUE(torch::equal(center[i], expected[i])) << "parameter " << i;
}

TEST(TrainEasgd, DefaultMovingRateLearns) {
    auto c = config("easgd", 4);
    RecordingObserver events;
    const auto result = train::train(c, bundledArchitecture("lenet5"), subset(), events);
    EXPECT_GT(result.test->accuracy, 0.4);                    // chance is 0.1
    EXPECT_EQ(epochs(events, -1).back().metric("merges"), 2); // tau 10 over 15 steps a segment
    for (int s = 0; s < 4; ++s)
        EXPECT_GT(epochs(events, s).back().metric("divergence"), 0);
    c.movingRate = 1.5;
    EXPECT_FALSE(validate(c).empty());
}

// An ensemble of N copies of one network predicts what the network predicts.
TEST(TrainEnsemble, IdenticalMembersPredictLikeOneModel) {
    RecordingObserver events;
    const auto one = train::train(config("single", 1), bundledArchitecture("lenet5"), subset(), events);
    auto impl = std::make_unique<TrainedModel::Impl>();
    impl->architecture = one.model.architecture();
    impl->normalizer = one.model.normalizer();
    impl->classNames = one.model.classNames();
    const auto& module = one.model.impl().members.front();
    for (int i = 0; i < 3; ++i)
        impl->members.push_back(model::GraphModule(std::dynamic_pointer_cast<model::GraphModuleImpl>(module->clone())));
    const TrainedModel three(std::move(impl));
    EXPECT_EQ(three.members(), 3);
    const auto& test = fashionSubset(2400, 0.2, 9, 500).test;
    const auto expected = one.model.evaluate(test, "test");
    const auto actual = three.evaluate(test, "test");
    EXPECT_EQ(actual.confusion, expected.confusion);
    EXPECT_NEAR(actual.loss, expected.loss, 1e-5);
}

TEST(TrainEnsemble, MembersTrainApartAndTheirMeanIsScored) {
    auto c = config("ensemble", 3);
    RecordingObserver events;
    const auto result = train::train(c, bundledArchitecture("lenet5"), subset(), events);
    EXPECT_EQ(result.model.members(), 3);
    const auto members = segmentTests(events);
    ASSERT_EQ(members.size(), 3u);
    // The log loss of mean probabilities is at most the members' mean log loss (convexity).
    double meanLoss = 0;
    for (const auto& m : members)
        meanLoss += m.metric("test_loss") / 3;
    EXPECT_LE(result.test->loss, meanLoss);
    EXPECT_GT(result.test->accuracy, 0.5);
    for (int s = 0; s < 3; ++s)
        EXPECT_GT(epochs(events, s).back().metric("val_accuracy"), 0.3);
    EXPECT_EQ(epochs(events, -1).back().metric("merges", -1), -1) << "nothing is merged";

    // Saved and loaded, the ensemble predicts the same.
    const std::string path = ::testing::TempDir() + "/ensemble.model";
    result.model.save(path);
    const auto loaded = TrainedModel::load(path);
    EXPECT_EQ(loaded.members(), 3);
    const auto& test = fashionSubset(2400, 0.2, 9, 500).test;
    EXPECT_EQ(loaded.evaluate(test, "test").confusion, result.model.evaluate(test, "test").confusion);
}

// Prediction over segments (MADlib predicts on every segment at once): the rows are cut into
// shards predicted side by side, and the result is the one-segment prediction, in input order.
TEST(TrainedModelPredict, SegmentsPredictWhatOneSegmentPredictsInOrder) {
    auto c = config("ensemble", 3);
    c.epochs = 1;
    RecordingObserver events;
    const auto result = train::train(c, bundledArchitecture("lenet5"), subset(), events);
    ASSERT_EQ(result.model.members(), 3);
    const auto& test = fashionSubset(2400, 0.2, 9, 500).test;
    const auto reference = result.model.predict(test);
    ASSERT_EQ(reference.rows, test.size());
    EXPECT_EQ(reference.segments, 1);
    for (const int segments : {2, 3, 0, 100000}) {
        TrainedModel::PredictOptions options;
        options.segments = segments;
        options.batchSize = 7; // batches that straddle the shard boundaries
        options.devices = segments == 3 ? "cpu" : "";
        const auto p = result.model.predict(test, options);
        const int expected = segments == 0 ? at::get_num_threads() : std::min<int>(segments, int(test.size()));
        EXPECT_EQ(p.segments, expected) << segments;
        ASSERT_EQ(p.rows, reference.rows);
        ASSERT_EQ(p.probabilities.size(), reference.probabilities.size());
        double worst = 0;
        for (size_t i = 0; i < p.probabilities.size(); ++i)
            worst = std::max(worst, double(std::abs(p.probabilities[i] - reference.probabilities[i])));
        EXPECT_LT(worst, 1e-6) << segments << " segments";
        EXPECT_EQ(p.predicted, reference.predicted) << segments << " segments";
    }
    TrainedModel::PredictOptions negative;
    negative.segments = -1;
    EXPECT_THROW(result.model.predict(test, negative), ConfigError);
    TrainedModel::PredictOptions missing;
    missing.segments = 2;
    missing.devices = "cuda:7";
    EXPECT_THROW(result.model.predict(test, missing), DeviceError);
}

TEST(TrainEnsemble, OneMemberEqualsSingleBitForBit) {
    const auto arch = bundledArchitecture("fmnist_cnn");
    RecordingObserver a, b;
    const auto single = train::train(config("single", 1), arch, subset(), a);
    const auto ensemble = train::train(config("ensemble", 1), arch, subset(), b);
    EXPECT_TRUE(sameTensors(single.model, ensemble.model));
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
