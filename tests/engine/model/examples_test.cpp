#include "model/graph_module.h"
#include "model/model_test_util.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>

namespace mppdl::model {
namespace {

TEST(ModelExamples, AnalyzeCleanlyAndMatchARealForwardPass) {
    torch::manual_seed(0);
    for (const auto& file : test::exampleFiles()) {
        SCOPED_TRACE(file);
        const Architecture design = loadArchitecture(test::examplePath(file));
        EXPECT_FALSE(design.description.empty());
        const Analysis analysis = analyze(design);
        ASSERT_TRUE(analysis.ok()) << formatProblems(analysis.problems);

        GraphModule module(design);
        std::vector<int64_t> batch = {2};
        batch.insert(batch.end(), analysis.inputShape.begin(), analysis.inputShape.end());
        const auto outputs = module->forwardAll(torch::randn(batch));
        ASSERT_EQ(outputs.size(), analysis.layers.size());
        for (size_t i = 0; i < outputs.size(); ++i) {
            const LayerAnalysis& layer = analysis.layers[i];
            EXPECT_EQ(outputs[i].first, layer.name);
            std::vector<int64_t> expected = {2};
            expected.insert(expected.end(), layer.outputShape.begin(), layer.outputShape.end());
            EXPECT_EQ(outputs[i].second.sizes().vec(), expected) << layer.name;
        }

        std::map<std::string, int64_t> perLayer;
        int64_t total = 0;
        for (const auto& item : module->named_parameters()) {
            const std::string& key = item.key();
            perLayer[key.substr(0, key.find('.'))] += item.value().numel();
            total += item.value().numel();
        }
        EXPECT_EQ(analysis.totalParams, total);
        for (const auto& layer : analysis.layers)
            EXPECT_EQ(layer.params, perLayer[layer.name]) << layer.name;
        EXPECT_EQ(analysis.numClasses(), 10);
        EXPECT_GT(analysis.totalFlops, 0);
    }
}

TEST(ModelExamples, KnownParameterCounts) {
    const std::map<std::string, int64_t> expected = {
        {"mlp.json", 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10}, // 235,146
        {"lenet5.json", 61706},
        {"fmnist_cnn.json", 421834},
        {"cifar_cnn6.json", 1250858}, // the Keras cifar10_cnn example's summary
    };
    for (const auto& [file, params] : expected)
        EXPECT_EQ(analyze(loadArchitecture(test::examplePath(file))).totalParams, params) << file;
    EXPECT_EQ(analyze(loadArchitecture(test::examplePath("mlp.json"))).totalParams, 235146);
}

TEST(ModelExamples, DesignsEndAsDocumented) {
    const Analysis cifar = analyze(loadArchitecture(test::examplePath("cifar_cnn6.json")));
    EXPECT_EQ(cifar.layers.back().type, "Softmax");
    const Analysis vgg = analyze(loadArchitecture(test::examplePath("vgg11.json")));
    int convolutions = 0;
    for (const auto& layer : vgg.layers)
        convolutions += layer.type == "Conv2D";
    EXPECT_EQ(convolutions, 8);
    EXPECT_EQ(vgg.layers[vgg.layers.size() - 9].outputShape, (Shape{512, 1, 1})); // last pool
    int adds = 0;
    for (const auto& layer : analyze(loadArchitecture(test::examplePath("resnet_tiny.json"))).layers)
        adds += layer.type == "Add";
    EXPECT_EQ(adds, 2);
}

} // namespace
} // namespace mppdl::model
