// Checkpoints, resume and warm start: the trainer's half of the project store's promises.

#include "mppdl/core/error.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/trainer.h"

#include "train/trained_model_impl.h"
#include "train_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::train;

namespace {

model::Architecture architecture(const std::string& name) { return bundledArchitecture(name); }

const data::PreparedData& subset() {
    static const data::PreparedData prepared = fashionSubset(1200, 0.25, 5, 500);
    return prepared;
}

TrainConfig config(const std::string& optimizer) {
    TrainConfig c;
    c.epochs = 3;
    c.batchSize = 50;
    c.optimizer.name = optimizer;
    c.optimizer.lr = optimizer == "sgd" ? 0.05 : 0.002;
    c.optimizer.momentum = optimizer == "sgd" ? 0.9 : 0.0;
    c.schedule.name = "cosine";
    c.seed = 11;
    return c;
}

using Keep = KeepCheckpoints;

bool sameWeights(const TrainedModel& a, const TrainedModel& b) { return sameTensors(a, b); }

std::vector<RunEvent> epochEvents(const RecordingObserver& o) {
    std::vector<RunEvent> out;
    for (const auto& e : o.events())
        if (e.kind == EventKind::Epoch)
            out.push_back(e);
    return out;
}

} // namespace

// fmnist_cnn has Dropout (the network's own generator) and the optimizers keep state (momentum, Adam's
// moments and step): a resume must restore all of it to repeat the run bit for bit.
class TrainResume : public ::testing::TestWithParam<std::string> {};

TEST_P(TrainResume, ResumedRunEqualsUninterruptedBitForBit) {
    const auto arch = architecture("fmnist_cnn");
    const auto c = config(GetParam());
    RecordingObserver whole;
    Keep kept;
    TrainControl control;
    control.checkpoints = &kept;
    const auto uninterrupted = train::train(c, arch, subset(), whole, control);
    ASSERT_EQ(kept.all.size(), 3u);
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(kept.all[i].epoch, i + 1);
        ASSERT_TRUE(kept.all[i].valAccuracy.has_value());
        EXPECT_FALSE(kept.all[i].weights.empty());
        EXPECT_FALSE(kept.all[i].state.empty());
    }
    EXPECT_GT(kept.all[1].wallSeconds, kept.all[0].wallSeconds);

    // Torch's global generator is deliberately disturbed: the resume must not depend on it.
    torch::manual_seed(999);
    (void)torch::rand({10});
    RecordingObserver rest;
    Keep keptAgain;
    TrainControl resume;
    resume.resumeFrom = &kept.all[0];
    resume.checkpoints = &keptAgain;
    const auto resumed = train::train(c, arch, subset(), rest, resume);
    EXPECT_EQ(resumed.epochsRun, 3);
    EXPECT_TRUE(sameWeights(uninterrupted.model, resumed.model));
    // The serialized weights are byte-identical too (the CLI test compares runs by their blobs).
    // Not the state: libtorch keys optimizer state by tensor addresses, which differ per process.
    ASSERT_EQ(keptAgain.all.size(), 2u);
    EXPECT_TRUE(keptAgain.all.back().weights == kept.all.back().weights);
    ASSERT_TRUE(resumed.test && uninterrupted.test);
    EXPECT_EQ(resumed.test->loss, uninterrupted.test->loss);
    EXPECT_EQ(resumed.bestEpoch, uninterrupted.bestEpoch);

    const auto a = epochEvents(whole), b = epochEvents(rest);
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(b.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
        EXPECT_EQ(b[i].epoch, a[i + 1].epoch);
        EXPECT_EQ(b[i].step, a[i + 1].step);
        for (const char* name : {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"})
            EXPECT_EQ(b[i].metric(name), a[i + 1].metric(name)) << name << " of epoch " << b[i].epoch;
        // The resumed run's clock continues from the checkpoint's.
        EXPECT_GE(b[i].wallSeconds, kept.all[0].wallSeconds);
    }
    EXPECT_EQ(rest.events().front().kind, EventKind::Started);
    EXPECT_NE(rest.events().front().message.find("resuming after epoch 1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, TrainResume, ::testing::Values("sgd", "adam"));

TEST(TrainCheckpoint, ResumeAfterTheLastEpochOnlyEvaluates) {
    const auto arch = architecture("mlp");
    auto c = config("sgd");
    c.epochs = 2;
    RecordingObserver first, second;
    Keep kept;
    TrainControl control;
    control.checkpoints = &kept;
    const auto whole = train::train(c, arch, subset(), first, control);
    TrainControl resume;
    resume.resumeFrom = &kept.all.back();
    const auto again = train::train(c, arch, subset(), second, resume);
    EXPECT_TRUE(epochEvents(second).empty());
    EXPECT_EQ(again.epochsRun, 2);
    EXPECT_EQ(again.test->loss, whole.test->loss);
    ASSERT_TRUE(again.validation);
    EXPECT_EQ(again.validation->accuracy, whole.validation->accuracy);
}

TEST(TrainCheckpoint, WeightsBecomeAModelThatEvaluatesLikeTheRun) {
    const auto arch = architecture("lenet5");
    auto c = config("sgd");
    c.epochs = 1;
    RecordingObserver events;
    Keep kept;
    TrainControl control;
    control.checkpoints = &kept;
    const auto result = train::train(c, arch, subset(), events, control);
    const auto info = modelInfoJson(subset().normalizer, subset().train.classNames());
    const auto model = TrainedModel::fromWeights(arch, info, kept.all.back().weights, "cpu", "run 1, epoch 1");
    EXPECT_TRUE(sameWeights(model, result.model));
    EXPECT_EQ(model.classNames(), subset().train.classNames());
}

TEST(TrainCheckpoint, WarmStartBeginsWhereTheOtherRunEnded) {
    const auto arch = architecture("mlp");
    auto c = config("sgd");
    c.epochs = 3;
    RecordingObserver pre;
    Keep kept;
    TrainControl control;
    control.checkpoints = &kept;
    train::train(c, arch, subset(), pre, control);
    const double lastLoss = epochEvents(pre).back().metric("train_loss");

    c.epochs = 1;
    RecordingObserver cold, warm;
    train::train(c, arch, subset(), cold);
    TrainControl warmStart;
    warmStart.initialWeights = &kept.all.back().weights;
    warmStart.initialWeightsFrom = "run 1, epoch 3";
    train::train(c, arch, subset(), warm, warmStart);
    const double coldLoss = epochEvents(cold).front().metric("train_loss");
    const double warmLoss = epochEvents(warm).front().metric("train_loss");
    // One more epoch from trained weights starts near where they ended, far below a cold start.
    EXPECT_LT(warmLoss, coldLoss * 0.8);
    EXPECT_LT(warmLoss, lastLoss * 1.2);
    EXPECT_NE(warm.events().front().message.find("warm start from run 1, epoch 3"), std::string::npos);
}

TEST(TrainCheckpoint, WarmStartFromAnotherShapeNamesTheParameter) {
    RecordingObserver events;
    Keep kept;
    TrainControl control;
    control.checkpoints = &kept;
    auto c = config("sgd");
    c.epochs = 1;
    train::train(c, architecture("mlp"), subset(), events, control);

    auto other = architecture("mlp");
    for (auto& layer : other.layers)
        if (layer.type == "Dense") {
            layer.params["units"] = int64_t(17);
            break;
        }
    TrainControl warm;
    warm.initialWeights = &kept.all.back().weights;
    warm.initialWeightsFrom = "run 4, epoch 1";
    RecordingObserver failed;
    try {
        train::train(c, other, subset(), failed, warm);
        FAIL() << "expected a ConfigError";
    } catch (const ConfigError& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("run 4, epoch 1"), std::string::npos) << what;
        EXPECT_NE(what.find("in this architecture"), std::string::npos) << what;
        EXPECT_NE(what.find("17"), std::string::npos) << what;
    }
    EXPECT_EQ(failed.events().back().kind, EventKind::Failed);
}

TEST(TrainCheckpoint, DamagedStateIsAStorageError) {
    Checkpoint bad;
    bad.epoch = 1;
    RecordingObserver events;
    auto c = config("sgd");
    c.epochs = 2;
    {
        Keep kept;
        TrainControl control;
        control.checkpoints = &kept;
        c.epochs = 1;
        train::train(c, architecture("mlp"), subset(), events, control);
        bad = kept.all.back();
    }
    c.epochs = 2;
    bad.state = "not an archive";
    TrainControl resume;
    resume.resumeFrom = &bad;
    EXPECT_THROW(train::train(c, architecture("mlp"), subset(), events, resume), StorageError);
}

TEST(TrainConfigJson, RoundTripsEveryField) {
    TrainConfig c;
    c.data.location = "/data/x.csv";
    c.data.source.kind = "csv";
    c.data.source.label = "species";
    c.data.source.header = false;
    c.data.source.delimiter = '\t';
    c.data.source.shape = {1, 2, 3};
    c.data.source.limit = 77;
    c.data.validationFraction = 0.3;
    c.data.normalization = data::Normalizer::Mode::Standardize;
    c.epochs = 9;
    c.batchSize = 33;
    c.optimizer.name = "adamw";
    c.optimizer.lr = 0.003;
    c.optimizer.weightDecay = 0.01;
    c.optimizer.beta1 = 0.8;
    c.schedule.name = "step";
    c.schedule.stepSize = 4;
    c.schedule.gamma = 0.5;
    c.seed = 12345678901234ULL;
    c.device = "cuda:1";
    c.threads = 3;
    c.earlyStoppingPatience = 2;
    const auto back = trainConfigFromJson(toJson(c));
    EXPECT_EQ(toJson(back), toJson(c));
    EXPECT_EQ(back.data.source.delimiter, '\t');
    EXPECT_EQ(back.data.source.header, std::optional<bool>(false));
    EXPECT_EQ(back.seed, c.seed);
    EXPECT_EQ(back.data.normalization, data::Normalizer::Mode::Standardize);

    EXPECT_EQ(toJson(trainConfigFromJson("{}")), toJson(TrainConfig{}));
    try {
        trainConfigFromJson(R"({"epochs": "three"})");
        FAIL();
    } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("\"epochs\""), std::string::npos);
    }
    EXPECT_THROW(trainConfigFromJson("[1]"), ConfigError);
    EXPECT_THROW(trainConfigFromJson("{"), ConfigError);
}
