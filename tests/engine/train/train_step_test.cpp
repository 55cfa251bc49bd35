// The run loop's shared pieces, one by one: the minibatch step, the NaN check, what a failure on a
// training thread becomes, and the loop counters a resume carries.

#include "mppdl/core/error.h"

#include "train/optimizer_factory.h"
#include "train/resume_state.h"
#include "train/train_step.h"
#include "train_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <new>
#include <stdexcept>
#include <string>

using namespace mppdl;
using namespace mppdl::train;

namespace {

/// A failure as a training thread would meet it, translated.
template <typename Throw>
std::exception_ptr translated(Throw&& fail) {
    try {
        fail();
    } catch (...) {
        return asEngineError(std::current_exception());
    }
    return nullptr;
}

/// The kind and message of an mppdl::Error behind `e`.
std::pair<ErrorKind, std::string> kindOf(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const Error& error) {
        return {error.kind(), error.what()};
    } catch (...) {
    }
    return {ErrorKind::Internal, "not an mppdl::Error"};
}

std::vector<torch::Tensor> parameters(model::GraphModule& m) {
    std::vector<torch::Tensor> out;
    for (const auto& p : m->parameters())
        out.push_back(p.detach().clone());
    return out;
}

} // namespace

TEST(TrainStep, OutOfMemoryIsADeviceErrorWhereverItComesFrom) {
    // CUDA's caching allocator, the CPU allocator, and the standard library's.
    auto [kind, message] = kindOf(
        translated([] { TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory. Tried 2 GiB"); }));
    EXPECT_EQ(kind, ErrorKind::Device);
    EXPECT_NE(message.find("CUDA out of memory. Tried 2 GiB"), std::string::npos) << message;
    EXPECT_NE(message.find("--batch-size"), std::string::npos) << "advice: " << message;
    std::tie(kind, message) = kindOf(translated(
        [] { TORCH_CHECK(false, "DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 bytes"); }));
    EXPECT_EQ(kind, ErrorKind::Device) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << "no backtrace: " << message;
    EXPECT_EQ(kindOf(translated([] { throw std::bad_alloc(); })).first, ErrorKind::Device);
}

TEST(TrainStep, OtherFailuresKeepTheirKindOrAreInternal) {
    auto [kind, message] = kindOf(translated([] { TORCH_CHECK(false, "shapes [2] and [3] differ"); }));
    EXPECT_EQ(kind, ErrorKind::Internal);
    EXPECT_EQ(message, "libtorch: shapes [2] and [3] differ");
    EXPECT_EQ(kindOf(translated([] { throw std::runtime_error("odd"); })).first, ErrorKind::Internal);
    // An mppdl::Error goes through as the same object, so its type survives a rethrow.
    const auto data = translated([] { throw DataError("row 3: not a number"); });
    EXPECT_THROW(std::rethrow_exception(data), DataError);
    EXPECT_THROW(std::rethrow_exception(translated([] { throw CancelledError(); })), CancelledError);
}

TEST(TrainStep, AMinibatchStepsOnlyWhenAsked) {
    torch::manual_seed(1);
    model::GraphModule module(bundledArchitecture("mlp"));
    OptimizerConfig sgd;
    sgd.lr = 0.1;
    auto optimizer = makeOptimizer(sgd, module->parameters());
    const auto x = torch::rand({8, 1, 28, 28});
    const auto y = torch::randint(0, 10, {8}, torch::kLong);
    const auto order = torch::arange(8, torch::kLong);
    EpochSums sums(torch::kCPU);

    const auto before = parameters(module);
    const auto gradientsOnly = trainMinibatch(module, *optimizer, x, y, order, 0, 5, false, sums);
    auto now = parameters(module);
    for (size_t i = 0; i < before.size(); ++i)
        EXPECT_TRUE(torch::equal(before[i], now[i])) << "all-reduce steps after its join, not here";
    for (const auto& p : module->parameters())
        EXPECT_TRUE(p.grad().defined());
    EXPECT_DOUBLE_EQ(sums.lossSum.item<double>(), double(gradientsOnly.loss.item<float>()) * 5);
    EXPECT_EQ(sums.correct.item<int64_t>(), gradientsOnly.hits.item<int64_t>());

    const auto stepped = trainMinibatch(module, *optimizer, x, y, order, 5, 8, true, sums);
    now = parameters(module);
    EXPECT_FALSE(torch::equal(before.front(), now.front())) << "the optimizer stepped";
    EXPECT_DOUBLE_EQ(sums.lossSum.item<double>(),
                     double(gradientsOnly.loss.item<float>()) * 5 + double(stepped.loss.item<float>()) * 3);
}

TEST(TrainStep, ANonFiniteLossNamesEpochStepAndSegment) {
    StepFigures figures{torch::tensor(std::nanf("")), torch::tensor(int64_t(0))};
    try {
        checkedLoss(figures, 3, 7, 2);
        FAIL() << "a NaN loss passed";
    } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find("NaN or infinite in epoch 3 on segment 2, step 7"), std::string::npos)
            << e.what();
    }
    figures.loss = torch::tensor(0.5f);
    EXPECT_FLOAT_EQ(checkedLoss(figures, 1, 1), 0.5f);
    EXPECT_NE(std::string(nonFiniteLoss(2, 40, false).what()).find("in epoch 2 at or before step 40"),
              std::string::npos);
}

TEST(TrainStep, LoopCountersSurviveTheirJsonWithoutValidation) {
    LoopState s;
    s.epochsDone = 4;
    s.globalStep = 352;
    s.bestEpoch = 3;
    s.bestValAccuracy = 0.81;
    s.epochsWithoutImprovement = 1;
    const auto back = LoopState::fromJson(s.toJson());
    EXPECT_EQ(back.epochsDone, 4);
    EXPECT_EQ(back.globalStep, 352);
    EXPECT_EQ(back.bestEpoch, 3);
    EXPECT_EQ(back.bestValAccuracy, 0.81);
    EXPECT_TRUE(std::isinf(back.bestValLoss)) << "JSON has no infinity: it travels as null";
    EXPECT_EQ(back.epochsWithoutImprovement, 1);
    EXPECT_FALSE(back.stoppedEarly);
}
