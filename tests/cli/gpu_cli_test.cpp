// The binary on a GPU: `mppdl devices`, training and prediction on cuda:0, and segments over
// processes whose c10d Gloo collectives reduce CUDA tensors. Skipped without a GPU (*_CUDA); run
// on the GPU machine through bench/gpu/check.sh.

#include "support/json_events.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include "engine/train/train_test_util.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

using namespace mppdl;

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

class GpuCli : public ScratchDirTest {};

std::string quick(int epochs, int limit) {
    return "train --data " + kFmnist + " --arch fmnist_cnn --epochs " + std::to_string(epochs) + " --limit " +
           std::to_string(limit) +
           " --batch-size 128 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 5 "
           "--no-project --json --device cuda:0";
}

} // namespace

TEST_F(GpuCli, DevicesNameTheGpu_CUDA) {
    SKIP_WITHOUT_CUDA();
    const auto r = runMppdl("devices");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("cuda:0"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("CUDA"), std::string::npos) << "the libtorch line names its CUDA: " << r.out;
}

TEST_F(GpuCli, TrainsAndPredictsOnTheGpu_CUDA) {
    SKIP_WITHOUT_CUDA();
    const auto r = runMppdl(quick(2, 6000) + " --save gpu.model");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_GT(finishedEvent(r.out).value("test_accuracy", 0.0), 0.75) << r.out;
    const auto predicted = runMppdl("predict --model gpu.model --data " + kFmnist +
                                    " --device cuda:0 --out p.csv --json");
    ASSERT_EQ(predicted.code, 0) << predicted.out;
    EXPECT_EQ(nlohmann::json::parse(predicted.out).at("rows"), 10000) << predicted.out;
    // The same weights score the same on the GPU as on the CPU.
    const auto gpu = runMppdl("eval --model gpu.model --data " + kFmnist + " --device cuda:0 --json");
    ASSERT_EQ(gpu.code, 0) << gpu.out;
    const auto cpu = runMppdl("eval --model gpu.model --data " + kFmnist + " --device cpu --json");
    ASSERT_EQ(cpu.code, 0) << cpu.out;
    EXPECT_NEAR(nlohmann::json::parse(gpu.out).at("accuracy").get<double>(),
                nlohmann::json::parse(cpu.out).at("accuracy").get<double>(), 0.002)
        << gpu.out << cpu.out;
}

// Model averaging and all-reduce over 2 processes sharing cuda:0: the Gloo collectives run on the
// CUDA tensors, and the processes train what 2 threads train (to the GPU's rounding: cuDNN's
// convolution gradients are not bit-reproducible).
TEST_F(GpuCli, ProcessesReduceCudaTensorsOverGloo_CUDA) {
    SKIP_WITHOUT_CUDA();
    for (const std::string strategy : {"model-averaging", "allreduce"}) {
        const std::string flags = quick(1, 4000) + " --segments 2 --strategy " + strategy;
        const auto threads = runMppdl(flags + " --save threads.model");
        ASSERT_EQ(threads.code, 0) << threads.out;
        const auto processes = runMppdl(flags + " --processes 2 --save processes.model");
        ASSERT_EQ(processes.code, 0) << processes.out;
        EXPECT_LT(relativeDifference(train::TrainedModel::load("threads.model"),
                                     train::TrainedModel::load("processes.model")),
                  1e-3)
            << strategy;
        EXPECT_NEAR(finishedEvent(threads.out).value("test_accuracy", 0.0),
                    finishedEvent(processes.out).value("test_accuracy", 1.0), 0.01)
            << strategy;
    }
}
