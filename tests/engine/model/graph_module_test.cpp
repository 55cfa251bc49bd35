#include "model/graph_module.h"
#include "model/model_test_util.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

namespace mppdl::model {
namespace {

using test::makeArchitecture;
using test::makeLayer;

Architecture smallCnn(bool softmax) {
    std::vector<Layer> layers = {
        makeLayer("input", "Input", {{"shape", Shape{1, 8, 8}}}),
        makeLayer("conv1", "Conv2D", {{"filters", int64_t{4}}, {"kernel_size", int64_t{3}}}),
        makeLayer("bn1", "BatchNorm"),
        makeLayer("relu1", "ReLU"),
        makeLayer("pool1", "MaxPool2D", {{"pool_size", int64_t{2}}}),
        makeLayer("flatten", "Flatten"),
        makeLayer("drop", "Dropout", {{"rate", 0.5}}),
        makeLayer("dense1", "Dense", {{"units", int64_t{5}}}),
    };
    if (softmax)
        layers.push_back(makeLayer("probs", "Softmax"));
    return makeArchitecture(std::move(layers));
}

TEST(ModelGraphModule, RegistersSubmodulesUnderLayerNames) {
    GraphModule module(smallCnn(false));
    std::set<std::string> keys;
    for (const auto& item : module->named_parameters())
        keys.insert(item.key());
    EXPECT_EQ(keys, (std::set<std::string>{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "dense1.weight",
                                           "dense1.bias"}));
    std::set<std::string> buffers;
    for (const auto& item : module->named_buffers())
        buffers.insert(item.key());
    EXPECT_TRUE(buffers.count("bn1.running_mean"));
    EXPECT_TRUE(buffers.count("bn1.running_var"));
}

TEST(ModelGraphModule, InvalidDesignThrowsConfigErrorListingEveryProblem) {
    Architecture design = smallCnn(false);
    design.layers[1].params["filters"] = int64_t{0};
    design.layers.push_back(makeLayer("extra", "Dense", {{"units", int64_t{2}}}, {"nowhere"}));
    try {
        GraphModule module(design);
        FAIL() << "expected ConfigError";
    } catch (const ConfigError& e) {
        const std::string message = e.what();
        EXPECT_NE(message.find("conv1: filters must be at least 1"), std::string::npos) << message;
        EXPECT_NE(message.find("extra: input \"nowhere\" is not a layer"), std::string::npos) << message;
    }
}

TEST(ModelGraphModule, WrongInputShapeIsAConfigError) {
    GraphModule module(smallCnn(false));
    EXPECT_THROW(module->forward(torch::zeros({2, 1, 9, 8})), ConfigError);
    EXPECT_THROW(module->forward(torch::zeros({2, 64})), ConfigError);
    EXPECT_NO_THROW(module->forward(torch::zeros({3, 1, 8, 8})));
}

TEST(ModelGraphModule, TrailingSoftmaxIsSkippedForLogits) {
    torch::manual_seed(1);
    GraphModule module(smallCnn(true));
    module->eval();
    EXPECT_TRUE(module->endsWithSoftmax());
    const torch::Tensor x = torch::randn({4, 1, 8, 8});
    const torch::Tensor probs = module->forward(x);
    const torch::Tensor logits = module->forwardLogits(x);
    EXPECT_TRUE(torch::allclose(probs.sum(1), torch::ones({4})));
    EXPECT_TRUE(torch::allclose(torch::softmax(logits, 1), probs));
    EXPECT_FALSE(torch::allclose(logits, probs));

    GraphModule plain(smallCnn(false));
    plain->eval();
    EXPECT_FALSE(plain->endsWithSoftmax());
    EXPECT_TRUE(torch::equal(plain->forward(x), plain->forwardLogits(x)));
}

TEST(ModelGraphModule, CloneGivesEqualOutputsAndIndependentParameters) {
    torch::manual_seed(2);
    GraphModule module(smallCnn(true));
    const torch::Tensor x = torch::randn({4, 1, 8, 8});
    module->train();
    module->forward(x); // moves the BatchNorm running statistics away from their start
    module->eval();
    auto copy = std::dynamic_pointer_cast<GraphModuleImpl>(module->clone());
    ASSERT_TRUE(copy);
    copy->eval();
    EXPECT_TRUE(torch::equal(module->forward(x), copy->forward(x)));
    EXPECT_TRUE(torch::equal(module->forwardLogits(x), copy->forwardLogits(x)));
    {
        torch::NoGradGuard noGrad;
        for (auto& p : copy->parameters())
            p.add_(1.0);
    }
    EXPECT_FALSE(torch::equal(module->forwardLogits(x), copy->forwardLogits(x)));
    // The copy runs its own submodules: reset() rebuilt them and clone() filled them.
    const auto own = copy->named_parameters();
    EXPECT_FALSE(torch::equal(own["dense1.weight"], module->named_parameters()["dense1.weight"]));
}

TEST(ModelGraphModule, EvalModeReachesDropoutAndBatchNorm) {
    torch::manual_seed(3);
    GraphModule module(smallCnn(false));
    const torch::Tensor x = torch::randn({4, 1, 8, 8});
    module->eval();
    EXPECT_TRUE(torch::equal(module->forward(x), module->forward(x)));
    module->train();
    EXPECT_FALSE(torch::equal(module->forward(x), module->forward(x)));
}

// Replicas on several threads must not share torch's global generator: each draws its dropout
// masks from its own, reproducibly, and leaves the global one alone.
TEST(ModelGraphModule, DropoutDrawsFromTheNetworksOwnGenerator) {
    torch::manual_seed(5);
    GraphModule a(smallCnn(false));
    auto b = std::dynamic_pointer_cast<GraphModuleImpl>(a->clone());
    const torch::Tensor x = torch::randn({4, 1, 8, 8});
    a->train();
    b->train();
    a->setGenerator(at::make_generator<at::CPUGeneratorImpl>(11));
    b->setGenerator(at::make_generator<at::CPUGeneratorImpl>(11));
    const auto globalBefore = at::detail::getDefaultCPUGenerator().get_state();
    const auto ya = a->forward(x);
    EXPECT_TRUE(torch::equal(ya, b->forward(x))) << "same seed, same masks";
    EXPECT_TRUE(torch::equal(globalBefore, at::detail::getDefaultCPUGenerator().get_state()))
        << "the global generator was used";
    b->setGenerator(at::make_generator<at::CPUGeneratorImpl>(12));
    EXPECT_FALSE(torch::equal(a->forward(x), b->forward(x))) << "another seed, other masks";
    // The arithmetic is at::dropout's: kept values are scaled by 1 / (1 - rate), the rest are zero.
    torch::Tensor in, out;
    for (const auto& [name, value] : a->forwardAll(x)) {
        if (name == "flatten")
            in = value;
        if (name == "drop")
            out = value;
    }
    ASSERT_TRUE(in.defined() && out.defined());
    const auto kept = out.ne(0);
    EXPECT_TRUE(torch::allclose(out.masked_select(kept), in.masked_select(kept) * 2.0));
    EXPECT_GT(kept.sum().item<int64_t>(), 0);
    EXPECT_LT(kept.sum().item<int64_t>(), out.numel());
}

TEST(ModelGraphModule, MergesComputeSumsAndConcatenations) {
    GraphModule module(makeArchitecture(
        {
            makeLayer("input", "Input", {{"shape", Shape{2, 3, 3}}}),
            makeLayer("twice", "Add", {}, {"input", "input"}),
            makeLayer("thrice", "Add", {}, {"input", "twice"}),
            makeLayer("cat", "Concat", {}, {"input", "thrice"}),
            makeLayer("cat_w", "Concat", {{"axis", int64_t{2}}}, {"input", "twice"}),
        },
        "cat"));
    const torch::Tensor x = torch::randn({2, 2, 3, 3});
    const torch::Tensor y = module->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 4, 3, 3}));
    EXPECT_TRUE(torch::allclose(y.slice(1, 0, 2), x));
    EXPECT_TRUE(torch::allclose(y.slice(1, 2, 4), 3 * x));
    const auto all = module->forwardAll(x);
    ASSERT_EQ(all.size(), 5u);
    EXPECT_EQ(all[4].first, "cat_w");
    EXPECT_EQ(all[4].second.sizes(), (std::vector<int64_t>{2, 2, 3, 6}));
}

TEST(ModelGraphModule, OutputLayerChoosesWhatForwardReturns) {
    Architecture design = smallCnn(false);
    design.output = "flatten";
    GraphModule module(design);
    EXPECT_EQ(module->forward(torch::randn({2, 1, 8, 8})).sizes(), (std::vector<int64_t>{2, 36}));
    EXPECT_EQ(module->analysis().numClasses(), 36);
}

TEST(ModelGraphModule, GradientsReachEveryParameter) {
    GraphModule module(smallCnn(true));
    module->forwardLogits(torch::randn({4, 1, 8, 8})).sum().backward();
    for (const auto& item : module->named_parameters())
        EXPECT_TRUE(item.value().grad().defined()) << item.key();
}

} // namespace
} // namespace mppdl::model
