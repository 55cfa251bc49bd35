#include "model/model_test_util.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/architecture.h"

#include <gtest/gtest.h>

namespace mppdl::model {
namespace {

using test::hasProblem;
using test::makeArchitecture;
using test::makeLayer;

Layer input(Shape shape, const std::string& name = "input") { return makeLayer(name, "Input", {{"shape", shape}}); }

Layer conv(const std::string& name, int64_t filters, Param kernel, Param padding = std::string("valid"),
           std::vector<std::string> inputs = {}) {
    return makeLayer(name, "Conv2D", {{"filters", filters}, {"kernel_size", kernel}, {"padding", padding}},
                     std::move(inputs));
}

Layer dense(const std::string& name, int64_t units, std::vector<std::string> inputs = {}) {
    return makeLayer(name, "Dense", {{"units", units}}, std::move(inputs));
}

Layer plain(const std::string& name, const std::string& type, std::vector<std::string> inputs = {}) {
    return makeLayer(name, type, {}, std::move(inputs));
}

// Prints the problems when an expectation fails.
#define PROBLEMS(analysis) formatProblems((analysis).problems)

TEST(ModelAnalysis, ValidSequentialDesignHasShapesParamsAndFlops) {
    const Analysis a = analyze(
        makeArchitecture({input({1, 28, 28}), plain("flatten", "Flatten"), dense("dense1", 256), plain("relu1", "ReLU"),
                          dense("dense2", 128), plain("relu2", "ReLU"), dense("dense3", 10)}));
    ASSERT_TRUE(a.ok()) << PROBLEMS(a);
    ASSERT_EQ(a.layers.size(), 7u);
    EXPECT_EQ(a.layers[1].outputShape, Shape{784});
    EXPECT_EQ(a.layers[2].inputShapes, std::vector<Shape>{Shape{784}});
    EXPECT_EQ(a.layers[2].params, 784 * 256 + 256);
    EXPECT_EQ(a.layers[2].flops, 2 * 784 * 256 + 256);
    EXPECT_EQ(a.layers[3].flops, 256);
    EXPECT_EQ(a.totalParams, 235146);
    EXPECT_EQ(a.totalFlops, 2 * (784 * 256 + 256 * 128 + 128 * 10) + (256 + 128 + 10) + (256 + 128));
    EXPECT_EQ(a.inputShape, (Shape{1, 28, 28}));
    EXPECT_EQ(a.outputShape, Shape{10});
    EXPECT_EQ(a.outputLayer, "dense3");
    EXPECT_EQ(a.numClasses(), 10);
}

TEST(ModelAnalysis, ConvolutionAndPoolingArithmetic) {
    const Analysis a = analyze(makeArchitecture({
        input({3, 32, 32}),
        makeLayer(
            "c1", "Conv2D",
            {{"filters", int64_t{8}}, {"kernel_size", int64_t{3}}, {"stride", int64_t{2}}, {"padding", int64_t{1}}}),
        makeLayer("c2", "Conv2D",
                  {{"filters", int64_t{4}},
                   {"kernel_size", std::vector<int64_t>{3, 1}},
                   {"dilation", int64_t{2}},
                   {"bias", false}}),
        makeLayer("c3", "Conv2D",
                  {{"filters", int64_t{5}}, {"kernel_size", int64_t{4}}, {"padding", std::string("same")}}),
        makeLayer("p1", "MaxPool2D", {{"pool_size", int64_t{3}}}),
        makeLayer("p2", "AvgPool2D", {{"pool_size", int64_t{2}}, {"stride", int64_t{1}}, {"padding", int64_t{1}}}),
        makeLayer("bn", "BatchNorm"),
        plain("flat", "Flatten"),
        makeLayer("bn1d", "BatchNorm"),
        makeLayer("leaky", "LeakyReLU", {{"negative_slope", 0.2}}),
        makeLayer("drop", "Dropout", {{"rate", int64_t{0}}}),
    }));
    ASSERT_TRUE(a.ok()) << PROBLEMS(a);
    EXPECT_EQ(a.layers[1].outputShape, (Shape{8, 16, 16}));
    EXPECT_EQ(a.layers[1].params, 8 * 3 * 9 + 8);
    EXPECT_EQ(a.layers[1].flops, 2 * 3 * 9 * 8 * 16 * 16 + 8 * 16 * 16);
    EXPECT_EQ(a.layers[2].outputShape, (Shape{4, 12, 16})); // reach 5x1
    EXPECT_EQ(a.layers[2].params, 4 * 8 * 3);
    EXPECT_EQ(a.layers[3].outputShape, (Shape{5, 12, 16}));
    EXPECT_EQ(a.layers[4].outputShape, (Shape{5, 4, 5}));
    EXPECT_EQ(a.layers[4].flops, 9 * 5 * 4 * 5);
    EXPECT_EQ(a.layers[5].outputShape, (Shape{5, 5, 6}));
    EXPECT_EQ(a.layers[6].params, 10);
    EXPECT_EQ(a.layers[6].flops, 2 * 5 * 5 * 6);
    EXPECT_EQ(a.layers[8].outputShape, Shape{150});
    EXPECT_EQ(a.layers[8].params, 300);
    EXPECT_EQ(a.numClasses(), 150);
}

TEST(ModelAnalysis, MergesAndExplicitOutput) {
    const Analysis a = analyze(makeArchitecture(
        {input({3, 8, 8}), conv("a", 4, int64_t{3}, std::string("same")),
         conv("b", 6, int64_t{1}, std::string("valid"), {"input"}), makeLayer("cat", "Concat", {}, {"a", "b", "input"}),
         makeLayer("cat_w", "Concat", {{"axis", int64_t{-1}}}, {"a", "a"}),
         makeLayer("sum", "Add", {}, {"a", "a", "a"}), plain("head", "Flatten", {"cat"})},
        "head"));
    ASSERT_TRUE(a.ok()) << PROBLEMS(a);
    EXPECT_EQ(a.layers[3].outputShape, (Shape{13, 8, 8}));
    EXPECT_EQ(a.layers[4].outputShape, (Shape{4, 8, 16}));
    EXPECT_EQ(a.layers[5].flops, 2 * 4 * 8 * 8);
    EXPECT_EQ(a.outputLayer, "head");
    EXPECT_EQ(a.outputShape, Shape{13 * 64});
}

TEST(ModelAnalysis, ExecutionOrderFollowsInputsNotFileOrder) {
    const Analysis a = analyze(makeArchitecture(
        {input({4}), plain("out", "Softmax", {"d2"}), dense("d2", 3, {"d1"}), dense("d1", 5, {"input"})}));
    ASSERT_TRUE(a.ok()) << PROBLEMS(a);
    ASSERT_EQ(a.layers.size(), 4u);
    EXPECT_EQ(a.layers[1].name, "d1");
    EXPECT_EQ(a.layers[2].name, "d2");
    EXPECT_EQ(a.layers[3].name, "out");
}

TEST(ModelAnalysis, NoInputLayer) {
    const Analysis a = analyze(makeArchitecture({plain("flat", "Flatten"), dense("d", 3)}));
    EXPECT_TRUE(hasProblem(a, "architecture", {"no Input layer"})) << PROBLEMS(a);
    EXPECT_EQ(a.problems.size(), 1u) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(analyze(Architecture{}), "architecture", {"no layers"}));
}

TEST(ModelAnalysis, MoreThanOneInputLayer) {
    const Analysis a = analyze(
        makeArchitecture({input({4}), input({4}, "input2"), makeLayer("sum", "Add", {}, {"input", "input2"})}));
    EXPECT_TRUE(hasProblem(a, "architecture", {"more than one Input", "input, input2"})) << PROBLEMS(a);
}

TEST(ModelAnalysis, DuplicateEmptyAndDottedNames) {
    const Analysis a = analyze(
        makeArchitecture({input({4}), dense("d", 3), dense("d", 3), dense("", 2), dense("a.b", 2)}));
    EXPECT_TRUE(hasProblem(a, "d", {"more than one layer", "layers 2, 3"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "layer 4", {"empty name"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "a.b", {"'.'"})) << PROBLEMS(a);
}

TEST(ModelAnalysis, UnknownTypeSuggestsTheClosest) {
    const Analysis a = analyze(
        makeArchitecture({input({1, 28, 28}), makeLayer("c", "Conv2d", {{"filters", int64_t{4}}}), plain("d", "Dens"),
                          plain("l", "Linear"), plain("w", "Wibble"), dense("after", 3)}));
    EXPECT_TRUE(hasProblem(a, "c", {"unknown layer type \"Conv2d\"", "did you mean \"Conv2D\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "d", {"did you mean \"Dense\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "l", {"did you mean \"Dense\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "w", {"known types are Input, Conv2D"})) << PROBLEMS(a);
    // No follow-on noise: the Dense after them has no known input shape and stays silent.
    EXPECT_EQ(a.problems.size(), 4u) << PROBLEMS(a);
}

TEST(ModelAnalysis, ParameterProblems) {
    const Analysis a = analyze(makeArchitecture({
        input({1, 28, 28}),
        makeLayer("missing", "Conv2D", {{"filters", int64_t{4}}}),
        makeLayer("unknown", "Conv2D", {{"filter", int64_t{4}}, {"kernel_size", int64_t{3}}}),
        makeLayer("typed", "Conv2D", {{"filters", std::string("32")}, {"kernel_size", 3.5}}),
        makeLayer("zero", "Conv2D",
                  {{"filters", int64_t{0}}, {"kernel_size", int64_t{3}}, {"padding", std::string("full")}}),
        makeLayer("same2", "Conv2D",
                  {{"filters", int64_t{1}},
                   {"kernel_size", int64_t{3}},
                   {"padding", std::string("same")},
                   {"stride", int64_t{2}}}),
        makeLayer("drop", "Dropout", {{"rate", 1.5}}),
        makeLayer("pool", "MaxPool2D", {{"pool_size", int64_t{2}}, {"padding", int64_t{2}}}),
        makeLayer("flat", "Flatten", {{"units", int64_t{3}}}),
        makeLayer("shape", "Dense", {{"units", std::vector<int64_t>{1, 2, 3}}}),
        makeLayer("huge", "Dense", {{"units", int64_t{1} << 40}}),
        makeLayer("bn", "BatchNorm", {{"eps", int64_t{0}}, {"momentum", 2.0}}),
    }));
    EXPECT_TRUE(hasProblem(a, "missing", {"missing required parameter \"kernel_size\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "unknown",
                           {"unknown parameter \"filter\"", "did you mean \"filters\"",
                            "accepts filters, kernel_size, stride, padding, dilation, bias"}))
        << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "unknown", {"missing required parameter \"filters\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "typed", {"\"filters\" must be an integer, got a string (\"32\")"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "typed", {"\"kernel_size\"", "3.5"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "zero", {"filters must be at least 1, got 0"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "zero", {"padding must be", "\"full\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "same2", {"\"same\" needs stride 1"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "drop", {"rate", "1.5"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "pool", {"padding 2x2", "half of pool_size 2x2"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "flat", {"unknown parameter \"units\"", "Flatten takes no parameters"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "shape", {"\"units\" must be an integer, got a list ([1, 2, 3])"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "huge", {"\"units\" is too large"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "bn", {"eps must be positive"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "bn", {"momentum must be between 0 and 1"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(analyze(makeArchitecture({makeLayer("input", "Input", {{"shape", Shape{1, 0}}})})), "input",
                           {"positive", "[1, 0]"}));
}

TEST(ModelAnalysis, InputsThatAreNotLayers) {
    const Analysis a = analyze(makeArchitecture({input({4}), dense("dense1", 3), dense("d2", 2, {"dense_1"})}));
    EXPECT_TRUE(hasProblem(a, "d2", {"input \"dense_1\" is not a layer", "did you mean \"dense1\""})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "architecture", {"several layers feed no other layer", "dense1"})) << PROBLEMS(a);
}

TEST(ModelAnalysis, WrongNumberOfInputs) {
    const Analysis a = analyze(
        makeArchitecture({input({4}), dense("d", 3, {"input", "input"}), makeLayer("one", "Add", {}, {"d"}),
                          makeLayer("in2", "Input", {{"shape", Shape{4}}}, {"input"})},
                         "one"));
    EXPECT_TRUE(hasProblem(a, "d", {"Dense takes 1 input, got 2"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "one", {"Add takes at least 2 inputs, got 1"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "in2", {"Input takes no inputs, got 1"})) << PROBLEMS(a);
    const Analysis first = analyze(makeArchitecture({dense("d", 3), input({4})}));
    EXPECT_TRUE(hasProblem(first, "d", {"no input", "first layer"})) << PROBLEMS(first);
}

TEST(ModelAnalysis, CyclesNameTheirLayers) {
    const Analysis a = analyze(
        makeArchitecture({input({4}), makeLayer("a", "Add", {}, {"input", "c"}), dense("b", 4, {"a"}),
                          dense("c", 4, {"b"}), dense("after", 2, {"c"}), plain("self", "ReLU", {"self"})},
                         "after"));
    EXPECT_TRUE(hasProblem(a, "a", {"cycle", "a -> b -> c -> a"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "self", {"cycle", "self -> self"})) << PROBLEMS(a);
    EXPECT_EQ(a.problems.size(), 2u) << PROBLEMS(a); // nothing about "after"
    // Layers outside the cycles are still listed.
    ASSERT_EQ(a.layers.size(), 1u);
    EXPECT_EQ(a.layers[0].name, "input");
}

TEST(ModelAnalysis, SeveralSinksNeedAnOutput) {
    Architecture design = makeArchitecture({input({4}), dense("a", 3, {"input"}), dense("b", 2, {"input"})});
    Analysis a = analyze(design);
    EXPECT_TRUE(hasProblem(a, "architecture", {"several layers feed no other layer (a, b)", "\"output\""}))
        << PROBLEMS(a);
    design.output = "b";
    a = analyze(design);
    EXPECT_TRUE(a.ok()) << PROBLEMS(a);
    EXPECT_EQ(a.outputShape, Shape{2});
    design.output = "c";
    EXPECT_TRUE(hasProblem(analyze(design), "architecture", {"output \"c\" is not a layer"}));
}

TEST(ModelAnalysis, ShapeMisfitsNameTheNodeAndTheShapes) {
    const Analysis a = analyze(makeArchitecture(
        {
            input({1, 28, 28}),
            conv("conv1", 32, int64_t{3}, int64_t{1}),
            makeLayer("pool1", "MaxPool2D", {{"pool_size", int64_t{2}}}),
            conv("conv2", 64, int64_t{3}, std::string("same")),
            makeLayer("pool2", "MaxPool2D", {{"pool_size", int64_t{2}}}),
            dense("dense1", 10),
            plain("after", "ReLU"),
            makeLayer("add1", "Add", {}, {"pool1", "conv2"}),
            conv("conv3", 8, int64_t{5}, std::string("valid"), {"small"}),
            makeLayer("small", "MaxPool2D", {{"pool_size", int64_t{9}}}, {"pool1"}),
            makeLayer("cat", "Concat", {}, {"pool1", "pool2"}),
            makeLayer("catbad", "Concat", {{"axis", int64_t{3}}}, {"pool1", "pool1"}),
            makeLayer("bigpool", "AvgPool2D", {{"pool_size", int64_t{30}}}, {"input"}),
            conv("conv1d", 8, int64_t{3}, std::string("valid"), {"dense1"}),
            makeLayer("dil", "Conv2D",
                      {{"filters", int64_t{1}}, {"kernel_size", int64_t{3}}, {"dilation", int64_t{20}}}, {"input"}),
        },
        "after"));
    EXPECT_TRUE(hasProblem(a, "dense1", {"expects a 1-D input, got 64x7x7 (add a Flatten before it)"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "add1", {"input shapes differ: 32x14x14 vs 64x14x14"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "conv3", {"kernel 5x5 is larger than its padded input 1x1"})) << PROBLEMS(a);
    EXPECT_EQ(test::problemsOf(a, "small"), "");
    EXPECT_TRUE(hasProblem(a, "cat", {"32x14x14 vs 64x7x7"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "catbad", {"axis 3", "32x14x14"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "bigpool", {"pool 30x30 is larger than its padded input 28x28"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "dil", {"kernel 3x3 (dilated 41x41) is larger than its padded input 28x28"}))
        << PROBLEMS(a);
    // dense1 failed, so neither "after" nor "conv1d" adds noise about it.
    EXPECT_EQ(test::problemsOf(a, "after"), "");
    EXPECT_EQ(test::problemsOf(a, "conv1d"), "");
}

TEST(ModelAnalysis, KernelLargerThanPaddedInput) {
    const Analysis a = analyze(makeArchitecture({
        input({1, 12, 12}),
        makeLayer("pool", "MaxPool2D", {{"pool_size", int64_t{4}}}),
        conv("conv3", 8, int64_t{5}, int64_t{0}),
        plain("flat", "Flatten"),
    }));
    EXPECT_TRUE(hasProblem(a, "conv3", {"kernel 5x5 is larger than its padded input 3x3"})) << PROBLEMS(a);
    EXPECT_EQ(a.problems.size(), 1u) << PROBLEMS(a);
    // What is known is still reported for an editor.
    ASSERT_EQ(a.layers.size(), 4u);
    EXPECT_EQ(a.layers[1].outputShape, (Shape{1, 3, 3}));
    EXPECT_TRUE(a.layers[2].outputShape.empty());
    EXPECT_TRUE(a.outputShape.empty());
}

TEST(ModelAnalysis, ReportsEveryProblemNotJustTheFirst) {
    const Analysis a = analyze(makeArchitecture(
        {
            input({1, 28, 28}),
            makeLayer("d0", "Dense", {{"units", int64_t{0}}}),
            plain("x", "Nonsense", {"input"}),
            dense("d1", 4, {"input"}),
            dense("d2", 4, {"nowhere"}),
        },
        "d1"));
    EXPECT_TRUE(hasProblem(a, "d0", {"units"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "x", {"unknown layer type"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "d1", {"expects a 1-D input, got 1x28x28"})) << PROBLEMS(a);
    EXPECT_TRUE(hasProblem(a, "d2", {"\"nowhere\""})) << PROBLEMS(a);
    EXPECT_EQ(a.problems.size(), 4u) << PROBLEMS(a);
}

TEST(ModelAnalysis, TooLargeTensorsAreProblems) {
    const Analysis a = analyze(makeArchitecture({
        input({1 << 20, 1 << 20, 4}),
        plain("flat", "Flatten"),
    }));
    EXPECT_FALSE(a.ok());
    EXPECT_TRUE(hasProblem(a, "input", {"too large"}) || hasProblem(a, "flat", {"too large"})) << PROBLEMS(a);
    const Analysis b = analyze(makeArchitecture({input({1 << 16}), dense("d", int64_t{1} << 16)}));
    EXPECT_TRUE(hasProblem(b, "d", {"too many parameters"})) << PROBLEMS(b);
}

} // namespace
} // namespace mppdl::model
