#include "mppdl/core/error.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/devices.h"
#include "mppdl/train/trainer.h"

#include "train/trained_model_impl.h"
#include "train_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>

using namespace mppdl;
using namespace mppdl::train;

namespace {

model::Architecture architecture(const std::string& name) { return bundledArchitecture(name); }

/// A small real Fashion-MNIST subset: 2000 training rows, prepared once for all tests.
const data::PreparedData& subset() {
    static const data::PreparedData prepared = fashionSubset(2000, 0.2, 7, 1000);
    return prepared;
}

TrainConfig quickConfig() {
    TrainConfig c;
    c.epochs = 1;
    c.batchSize = 64;
    c.optimizer.lr = 0.05;
    c.optimizer.momentum = 0.9;
    c.schedule.name = "none"; // what these tests were written against, before cosine became the default
    c.seed = 3;
    c.threads = 0; // OMP_NUM_THREADS under ctest: parallel tests must not oversubscribe the cores
    return c;
}


bool sameWeights(const TrainedModel& a, const TrainedModel& b) { return sameTensors(a, b); }

} // namespace

TEST(TrainTrainer, LearnsFashionMnistSubset) {
    RecordingObserver events;
    auto config = quickConfig();
    config.epochs = 3;
    const auto result = train::train(config, architecture("mlp"), subset(), events);
    ASSERT_TRUE(result.test.has_value());
    ASSERT_TRUE(result.validation.has_value());
    EXPECT_EQ(result.epochsRun, 3);
    EXPECT_GT(result.validation->accuracy, 0.70);
    EXPECT_GT(result.test->accuracy, 0.70);
    EXPECT_EQ(result.test->samples, 1000);
    int64_t confusionTotal = 0;
    for (auto v : result.test->confusion)
        confusionTotal += v;
    EXPECT_EQ(confusionTotal, 1000);

    // The event stream: Started first, one Epoch per epoch, Finished last with the test accuracy.
    ASSERT_FALSE(events.events().empty());
    EXPECT_EQ(events.events().front().kind, EventKind::Started);
    EXPECT_EQ(events.events().back().kind, EventKind::Finished);
    EXPECT_DOUBLE_EQ(events.events().back().metric("test_accuracy"), result.test->accuracy);
    int epochs = 0;
    double lastWall = -1;
    for (const auto& e : events.events()) {
        epochs += e.kind == EventKind::Epoch;
        EXPECT_GE(e.wallSeconds, lastWall);
        lastWall = e.wallSeconds;
        if (e.kind == EventKind::Epoch) {
            EXPECT_TRUE(e.hasMetric("val_accuracy"));
            EXPECT_TRUE(e.hasMetric("train_loss"));
            EXPECT_GT(e.metric("images_per_sec"), 0);
        }
    }
    EXPECT_EQ(epochs, 3);
}

TEST(TrainTrainer, SameSeedSameWeightsBitForBit) {
    RecordingObserver a, b, c;
    auto config = quickConfig();
    config.epochs = 2;
    const auto first = train::train(config, architecture("fmnist_cnn"), subset(), a);
    const auto second = train::train(config, architecture("fmnist_cnn"), subset(), b);
    EXPECT_TRUE(sameWeights(first.model, second.model));
    EXPECT_EQ(first.test->loss, second.test->loss);

    config.seed = 4;
    const auto other = train::train(config, architecture("fmnist_cnn"), subset(), c);
    EXPECT_FALSE(sameWeights(first.model, other.model));
}

TEST(TrainTrainer, EveryOptimizerAndScheduleTrains) {
    for (const auto& optimizer : optimizerChoices()) {
        for (const auto& schedule : scheduleChoices()) {
            RecordingObserver events;
            auto config = quickConfig();
            config.epochs = 2;
            config.optimizer.name = optimizer.name;
            config.optimizer.lr = std::string(optimizer.name) == "sgd" ? 0.05 : 0.002;
            config.optimizer.momentum = std::string(optimizer.name) == "sgd" ? 0.9 : 0.0;
            config.optimizer.weightDecay = 1e-4;
            config.schedule.name = schedule.name;
            config.schedule.stepSize = 1;
            const auto result = train::train(config, architecture("mlp"), subset(), events);
            EXPECT_GT(result.test->accuracy, 0.6) << optimizer.name << " " << schedule.name;
        }
    }
}

TEST(TrainTrainer, ScheduleSetsTheLearningRatePerEpoch) {
    RecordingObserver events;
    auto config = quickConfig();
    config.epochs = 3;
    config.schedule.name = "step";
    config.schedule.stepSize = 1;
    config.schedule.gamma = 0.5;
    train::train(config, architecture("mlp"), subset(), events);
    std::vector<double> lrs;
    for (const auto& e : events.events())
        if (e.kind == EventKind::Epoch)
            lrs.push_back(e.metric("lr"));
    EXPECT_EQ(lrs, (std::vector<double>{0.05, 0.025, 0.0125}));
}

TEST(TrainTrainer, EarlyStoppingWhenValidationLossStopsFalling) {
    // 160 training rows and a large Adam step overfit within a few epochs: the validation loss
    // turns up and the run must stop long before its 40 epochs.
    auto data = subset();
    data.train = data.train.slice(0, 160);
    auto config = quickConfig();
    config.epochs = 40;
    config.batchSize = 32;
    config.optimizer.name = "adam";
    config.optimizer.lr = 0.01;
    config.optimizer.momentum = 0;
    config.earlyStoppingPatience = 2;
    RecordingObserver events;
    const auto result = train::train(config, architecture("mlp"), data, events);
    EXPECT_TRUE(result.stoppedEarly);
    EXPECT_LT(result.epochsRun, 40);
    // It stopped exactly `patience` epochs after the best validation loss.
    std::vector<double> valLoss;
    for (const auto& e : events.events())
        if (e.kind == EventKind::Epoch)
            valLoss.push_back(e.metric("val_loss"));
    ASSERT_EQ(int(valLoss.size()), result.epochsRun);
    const auto best = std::min_element(valLoss.begin(), valLoss.end()) - valLoss.begin();
    EXPECT_EQ(int(best) + 1 + config.earlyStoppingPatience, result.epochsRun);
}

TEST(TrainTrainer, CancelStopsBetweenMinibatches) {
    RecordingObserver events;
    std::atomic<bool> cancel{true};
    train::TrainControl control;
    control.cancel = &cancel;
    EXPECT_THROW(train::train(quickConfig(), architecture("mlp"), subset(), events, control), CancelledError);
    ASSERT_FALSE(events.events().empty());
    EXPECT_EQ(events.events().back().kind, EventKind::Cancelled);
}

TEST(TrainTrainer, NanLossNamesEpochAndStep) {
    auto data = subset();
    auto features = data.train.features().clone();
    features[70][0][3][3] = NAN; // row 70 lands in some minibatch of epoch 1
    data.train = data.train.withFeatures(features);
    RecordingObserver events;
    try {
        train::train(quickConfig(), architecture("mlp"), data, events);
        FAIL() << "a NaN loss must end the run";
    } catch (const DataError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("NaN or infinite in epoch 1, step "), std::string::npos) << message;
    }
    EXPECT_EQ(events.events().back().kind, EventKind::Failed);
    EXPECT_EQ(events.events().back().errorKind, "data");
}

TEST(TrainTrainer, InputShapeMismatchNamesBothShapes) {
    auto arch = architecture("mlp");
    for (auto& layer : arch.layers)
        if (layer.type == "Input")
            layer.params["shape"] = std::vector<int64_t>{3, 32, 32};
    RecordingObserver events;
    try {
        train::train(quickConfig(), arch, subset(), events);
        FAIL();
    } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("1x28x28"), std::string::npos) << message;
        EXPECT_NE(message.find("3x32x32"), std::string::npos) << message;
    }
}

TEST(TrainTrainer, ClassCountMismatchIsAConfigError) {
    auto arch = architecture("mlp");
    arch.layers.back().params["units"] = int64_t(7);
    RecordingObserver events;
    EXPECT_THROW(train::train(quickConfig(), arch, subset(), events), ConfigError);
}

TEST(TrainTrainer, InvalidConfigurationIsRefusedBeforeTraining) {
    auto config = quickConfig();
    config.batchSize = 0;
    RecordingObserver events;
    EXPECT_THROW(train::train(config, architecture("mlp"), subset(), events), ConfigError);
    config = quickConfig();
    config.earlyStoppingPatience = 2;
    config.data.validationFraction = 0;
    EXPECT_FALSE(validate(config).empty());
}

TEST(TrainTrainer, SavedModelEvaluatesTheSame) {
    RecordingObserver events;
    const auto result = train::train(quickConfig(), architecture("fmnist_cnn"), subset(), events);
    const auto path = (std::filesystem::temp_directory_path() / "mppdl_trainer_test_model.pt").string();
    result.model.save(path);
    const auto loaded = TrainedModel::load(path);
    EXPECT_TRUE(sameWeights(result.model, loaded));
    EXPECT_EQ(loaded.classNames(), subset().train.classNames());

    data::SourceOptions options;
    const auto source = data::loadSource(MPPDL_FASHION_MNIST_DIR, options);
    const auto evaluation = loaded.evaluate(source.test.slice(0, 1000), "test");
    EXPECT_NEAR(evaluation.accuracy, result.test->accuracy, 1e-12);
    EXPECT_NEAR(evaluation.loss, result.test->loss, 1e-6);
    std::filesystem::remove(path);
}

TEST(TrainTrainer, LoadingSomethingElseIsAStorageError) {
    const auto path = (std::filesystem::temp_directory_path() / "mppdl_not_a_model.pt").string();
    {
        std::ofstream out(path);
        out << "not a model";
    }
    EXPECT_THROW(TrainedModel::load(path), StorageError);
    EXPECT_THROW(TrainedModel::load(path + ".missing"), StorageError);
    std::filesystem::remove(path);
}

TEST(TrainDevices, CpuIsListedAndBadDevicesAreNamed) {
    const auto devices = listDevices();
    ASSERT_FALSE(devices.empty());
    EXPECT_EQ(devices.front().name, "cpu");
    EXPECT_EQ(checkDevice("cpu"), "cpu");
    try {
        checkDevice("tpu");
        FAIL();
    } catch (const DeviceError& e) {
        EXPECT_NE(std::string(e.what()).find("'tpu'"), std::string::npos);
    }
    if (!torch::cuda::is_available()) {
        EXPECT_THROW(checkDevice("cuda:0"), DeviceError);
    }
    EXPECT_THROW(checkDevice("cuda:99"), DeviceError);
}

TEST(TrainDevices, SegmentsAreDealtOverTheDevices) {
    EXPECT_EQ(segmentDevices("cpu", -1, 3), (std::vector<std::string>{"cpu", "cpu", "cpu"}));
    EXPECT_EQ(segmentDevices("cpu,cpu", -1, 2), (std::vector<std::string>{"cpu", "cpu"}));
    EXPECT_EQ(segmentDevices("cuda", 0, 2), (std::vector<std::string>{"cpu", "cpu"})) << "0 GPUs per host: the CPU";
    if (torch::cuda::device_count() >= 2) {
        EXPECT_EQ(segmentDevices("cuda:0,1", -1, 3), (std::vector<std::string>{"cuda:0", "cuda:1", "cuda:0"}));
        EXPECT_EQ(segmentDevices("cpu", 2, 3), (std::vector<std::string>{"cuda:0", "cuda:1", "cuda:0"}));
    }
    if (torch::cuda::device_count() == 0) {
        EXPECT_THROW(segmentDevices("cuda:0,1", -1, 2), DeviceError);
        EXPECT_THROW(segmentDevices("cpu", 2, 4), DeviceError);
    }
    EXPECT_THROW(segmentDevices("cpu,tpu", -1, 2), DeviceError);
}
