#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::train;

// GPU tests: named *_CUDA and skipped (not passed) without a GPU, as in PyTorch's own suite.

TEST(TrainGpu, TrainsOnTheGpu_CUDA) {
    if (!torch::cuda::is_available())
        GTEST_SKIP() << "no CUDA device";
    data::SourceOptions options;
    options.limit = 5000;
    const auto source = data::loadSource(MPPDL_FASHION_MNIST_DIR, options);
    const auto prepared = data::prepare(source, 0.1, 1, data::Normalizer::Mode::Scale01);
    TrainConfig config;
    config.epochs = 2;
    config.batchSize = 128;
    config.optimizer.lr = 0.05;
    config.optimizer.momentum = 0.9;
    config.device = "cuda:0";
    RecordingObserver events;
    const auto result = train::train(
        config, model::loadArchitecture(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/fmnist_cnn.json"),
        prepared, events);
    ASSERT_TRUE(result.test.has_value());
    EXPECT_GT(result.test->accuracy, 0.75);
}
