// The engine on a GPU: device placement, segments sharing one GPU, prediction on the GPU.
// Named *_CUDA and skipped (not passed) without a GPU, as in PyTorch's own suite; they run on the
// GPU machine through bench/gpu/check.sh (docs/BENCHMARKS.md).

#include "mppdl/core/error.h"
#include "mppdl/train/trainer.h"

#include "train_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <cmath>

using namespace mppdl;
using namespace mppdl::train;

namespace {

const data::PreparedData& subset() {
    static const data::PreparedData prepared = fashionSubset(8000, 0.1, 3, 2000);
    return prepared;
}

TrainConfig gpuConfig(const std::string& strategy, int segments) {
    TrainConfig config;
    config.strategy = strategy;
    config.segments = segments;
    config.epochs = 2;
    config.batchSize = 128;
    config.optimizer.lr = 0.05;
    config.optimizer.momentum = 0.9;
    config.seed = 4;
    config.device = "cuda:0";
    return config;
}

double largestDifference(const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, double(std::abs(a[i] - b[i])));
    return worst;
}

} // namespace

// Runs everywhere: the skip macro is one statement, so the `else` below is this `if`'s (a bare `if`
// in the macro took it, and the branch never ran).
TEST(TrainGpu, SkipMacroIsOneStatement) {
    bool elseRan = false;
    if (std::getenv("MPPDL_NEVER_SET_THIS_VARIABLE"))
        SKIP_WITHOUT_CUDA();
    else
        elseRan = true;
    EXPECT_TRUE(elseRan);
}

TEST(TrainGpu, TrainsOnTheGpu_CUDA) {
    SKIP_WITHOUT_CUDA();
    RecordingObserver events;
    const auto result = train::train(gpuConfig("single", 1), bundledArchitecture("fmnist_cnn"), subset(), events);
    ASSERT_TRUE(result.test.has_value());
    EXPECT_GT(result.test->accuracy, 0.75);
    // Every parameter and buffer of the trained network lives on the GPU.
    for (const auto& t : allTensors(result.model))
        EXPECT_TRUE(t.is_cuda()) << t.device();
}

// The same weights predict the same classes on the GPU as on the CPU, in one segment and in
// several sharing the GPU; a model saved from the GPU loads on the CPU.
TEST(TrainGpu, GpuPredictionsMatchTheCpu_CUDA) {
    SKIP_WITHOUT_CUDA();
    RecordingObserver events;
    auto config = gpuConfig("single", 1);
    config.epochs = 1;
    const auto result = train::train(config, bundledArchitecture("lenet5"), subset(), events);
    const std::string path = ::testing::TempDir() + "/gpu.model";
    result.model.save(path);
    const auto onCpu = TrainedModel::load(path, "cpu");
    const auto onGpu = TrainedModel::load(path, "cuda:0");
    for (const auto& t : allTensors(onCpu))
        EXPECT_FALSE(t.is_cuda());
    const auto& test = subset().test;
    const auto cpu = onCpu.predict(test);
    const auto gpu = onGpu.predict(test);
    ASSERT_EQ(cpu.probabilities.size(), gpu.probabilities.size());
    EXPECT_LT(largestDifference(cpu.probabilities, gpu.probabilities), 1e-4);
    size_t same = 0;
    for (size_t i = 0; i < cpu.predicted.size(); ++i)
        same += cpu.predicted[i] == gpu.predicted[i];
    EXPECT_GE(double(same) / double(cpu.predicted.size()), 0.999);

    TrainedModel::PredictOptions four;
    four.segments = 4;
    four.devices = "cuda:0";
    const auto shared = onGpu.predict(test, four);
    EXPECT_EQ(shared.segments, 4);
    EXPECT_LT(largestDifference(gpu.probabilities, shared.probabilities), 1e-5);
    EXPECT_EQ(gpu.predicted, shared.predicted);
}

// MADlib's GPU sharing: four segments train side by side on one GPU, each with its own replica,
// and their merged model learns as one model does.
TEST(TrainGpu, FourSegmentsShareOneGpu_CUDA) {
    SKIP_WITHOUT_CUDA();
    for (const std::string strategy : {"model-averaging", "allreduce", "ensemble"}) {
        RecordingObserver events;
        const auto result = train::train(gpuConfig(strategy, 4), bundledArchitecture("fmnist_cnn"), subset(), events);
        ASSERT_TRUE(result.test.has_value()) << strategy;
        EXPECT_GT(result.test->accuracy, 0.7) << strategy;
        for (const auto& t : allTensors(result.model))
            EXPECT_TRUE(t.is_cuda()) << strategy;
    }
    // --gpus-per-host 1 deals every segment to cuda:0 as MADlib does on a host with one GPU.
    auto config = gpuConfig("model-averaging", 4);
    config.device = "cpu";
    config.gpusPerHost = 1;
    RecordingObserver events;
    const auto result = train::train(config, bundledArchitecture("fmnist_cnn"), subset(), events);
    ASSERT_TRUE(result.test.has_value());
    EXPECT_GT(result.test->accuracy, 0.7);
}

TEST(TrainGpu, AMissingGpuIsADeviceError_CUDA) {
    SKIP_WITHOUT_CUDA();
    auto config = gpuConfig("single", 1);
    config.device = "cuda:" + std::to_string(torch::cuda::device_count());
    RecordingObserver events;
    EXPECT_THROW(train::train(config, bundledArchitecture("mlp"), subset(), events), DeviceError);
}
