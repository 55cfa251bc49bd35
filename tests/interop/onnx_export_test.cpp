// ONNX export: every layer type has an ONNX form, the files pass libonnx's C++ checker and describe
// the model (input, output, dynamic batch, metadata), ensembles are one graph, and refusals name
// what is wrong. The numbers themselves are compared by independent readers in
// onnx_readers_test.py.

#include "mppdl/core/error.h"
#include "mppdl/interop/onnx.h"
#include "mppdl/model/architecture.h"

#include "model/layer_table.h"
#include "train/trained_model_impl.h"

#include "support/expect_error.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

using namespace mppdl;
namespace fs = std::filesystem;

namespace {

const std::string kEveryLayer = std::string(MPPDL_SOURCE_DIR) + "/tests/interop/every_layer.json";

/// A model of the architecture with fresh (seeded) weights, as a trained run would hold.
train::TrainedModel freshModel(const std::string& architecturePath, int64_t members,
                               data::Normalizer::Mode mode = data::Normalizer::Mode::Standardize) {
    torch::manual_seed(7);
    auto impl = std::make_unique<train::TrainedModel::Impl>();
    impl->architecture = model::loadArchitecture(architecturePath);
    impl->normalizer.mode = mode;
    impl->normalizer.scale = 255;
    impl->normalizer.mean = {0.286};
    impl->normalizer.std = {0.353};
    for (int i = 0; i < 10; ++i)
        impl->classNames.push_back("class " + std::to_string(i));
    impl->build(members);
    impl->toDeviceForInference();
    return train::TrainedModel(std::move(impl));
}

onnx::ModelProto readModel(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    onnx::ModelProto proto;
    EXPECT_TRUE(proto.ParseFromIstream(&in)) << path;
    return proto;
}

std::map<std::string, std::string> metadata(const onnx::ModelProto& proto) {
    std::map<std::string, std::string> out;
    for (const auto& p : proto.metadata_props())
        out[p.key()] = p.value();
    return out;
}

class OnnxExport : public ScratchDirTest {};

} // namespace

TEST(OnnxLayers, EveryLayerTypeHasAnOnnxForm) {
    for (const auto& kind : model::detail::layerKinds())
        EXPECT_NE(kind.toOnnx, nullptr) << kind.info.name << " has no ONNX lowering";
    // The test architecture holds every type, so the readers' test covers each one.
    std::set<std::string> used;
    for (const auto& layer : model::loadArchitecture(kEveryLayer).layers)
        used.insert(layer.type);
    for (const auto& type : model::layerTypes())
        EXPECT_TRUE(used.count(type.name)) << "every_layer.json lacks a " << type.name << " layer";
}

TEST_F(OnnxExport, EveryLayerPassesTheCheckerAndDescribesTheModel) {
    const auto model = freshModel(kEveryLayer, 1);
    const auto summary = interop::exportOnnx(model, path("m.onnx"), {13, {{"mppdl.run", "run 4"}}, ""});
    EXPECT_NO_THROW(onnx::checker::check_model(path("m.onnx")));
    const auto proto = readModel(path("m.onnx"));

    EXPECT_EQ(proto.opset_import(0).version(), 13);
    EXPECT_EQ(proto.producer_name(), "mppdl");
    ASSERT_EQ(proto.graph().input_size(), 1);
    const auto& input = proto.graph().input(0);
    EXPECT_EQ(input.name(), "input");
    const auto& dims = input.type().tensor_type().shape().dim();
    ASSERT_EQ(dims.size(), 4);
    EXPECT_EQ(dims[0].dim_param(), "batch");
    EXPECT_EQ(dims[1].dim_value(), 1);
    EXPECT_EQ(dims[3].dim_value(), 28);
    EXPECT_EQ(proto.graph().output(0).name(), "probabilities");
    EXPECT_EQ(proto.graph().output(0).type().tensor_type().shape().dim(1).dim_value(), 10);

    // Nodes carry the design's layer names; weights keep torch's names.
    std::set<std::string> nodes, initializers;
    for (const auto& n : proto.graph().node())
        nodes.insert(n.name());
    for (const auto& t : proto.graph().initializer())
        initializers.insert(t.name());
    for (const char* layer : {"conv_same", "bn_channels", "sum3", "joined", "avg_pool", "dense_nobias"})
        EXPECT_TRUE(nodes.count(layer)) << layer;
    EXPECT_TRUE(nodes.count("avg_pool/Pad")) << "the average pool's padding is an explicit Pad";
    for (const char* weight : {"conv_same.weight", "conv_same.bias", "bn_features.running_var", "dense_nobias.weight",
                               "normalize.mean", "normalize.std"})
        EXPECT_TRUE(initializers.count(weight)) << weight;
    EXPECT_FALSE(initializers.count("dense_nobias.bias"));
    EXPECT_EQ(summary.initializers, int64_t(initializers.size()));
    EXPECT_EQ(summary.nodes, proto.graph().node_size());
    EXPECT_EQ(summary.fileBytes, int64_t(fs::file_size(path("m.onnx"))));

    const auto meta = metadata(proto);
    EXPECT_EQ(nlohmann::json::parse(meta.at("mppdl.classes")).size(), 10u);
    EXPECT_EQ(nlohmann::json::parse(meta.at("mppdl.normalization")).at("mode"), "standardize");
    EXPECT_EQ(meta.at("mppdl.input"), "raw");
    EXPECT_EQ(meta.at("mppdl.run"), "run 4");
    EXPECT_EQ(model::parseArchitecture(meta.at("mppdl.architecture")), model.architecture());
}

TEST_F(OnnxExport, AnEnsembleIsOneGraphAveragingItsMembers) {
    const auto model = freshModel(std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/mlp.json", 3,
                                  data::Normalizer::Mode::Scale01);
    const auto summary = interop::exportOnnx(model, path("e.onnx"), {17, {}, ""});
    EXPECT_NO_THROW(onnx::checker::check_model(path("e.onnx")));
    const auto proto = readModel(path("e.onnx"));
    EXPECT_EQ(summary.members, 3);
    EXPECT_EQ(metadata(proto).at("mppdl.members"), "3");
    int softmaxes = 0;
    const onnx::NodeProto* sum = nullptr;
    for (const auto& n : proto.graph().node()) {
        softmaxes += n.op_type() == "Softmax";
        if (n.op_type() == "Sum")
            sum = &n;
    }
    EXPECT_EQ(softmaxes, 3);
    ASSERT_NE(sum, nullptr);
    EXPECT_EQ(sum->input_size(), 3);
    std::set<std::string> initializers;
    for (const auto& t : proto.graph().initializer())
        initializers.insert(t.name());
    EXPECT_TRUE(initializers.count("member0.dense1.weight"));
    EXPECT_TRUE(initializers.count("member2.dense1.weight"));
}

TEST_F(OnnxExport, RefusalsNameTheProblemAndLeaveNothing) {
    const auto model = freshModel(kEveryLayer, 1);
    expectError<ConfigError>(
        [&] {
            interop::exportOnnx(model, path("a.onnx"), {12, {}, ""});
        },
        {"opset 12", "13 to 17"});
    expectError<ConfigError>([&] { interop::exportOnnx(model, path("a.onnx"), {18, {}, ""}); }, {"opset 18"});
    const std::string missingDir = path("no/such/dir/m.onnx");
    expectError<StorageError>([&] { interop::exportOnnx(model, missingDir); }, {missingDir, "cannot write"});
    EXPECT_TRUE(fs::is_empty(m_dir)) << "a refused export left a file behind";

    // A layer type without an ONNX form (as a new entry of the table would be until it has one) is
    // named with its type. The table is const for everyone else; the test lifts that for a moment.
    auto& kind = const_cast<model::detail::LayerKind&>(*model::detail::findLayerKind("Sigmoid"));
    const auto saved = kind.toOnnx;
    kind.toOnnx = nullptr;
    expectError<ConfigError>([&] { interop::exportOnnx(model, path("b.onnx")); },
                             {"layer \"sigmoid\" (Sigmoid)", "cannot be exported to ONNX"});
    kind.toOnnx = saved;
    EXPECT_FALSE(fs::exists(path("b.onnx")));
}
