#include "mppdl/interop/onnx.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "model/plan.h"
#include "train/normalizer_json.h"
#include "train/trained_model_impl.h"

#include <nlohmann/json.hpp>
#include <onnx/onnx_pb.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

namespace mppdl::interop {

namespace {

// Protobuf refuses messages of 2 GiB and more; larger models would need ONNX's external data.
constexpr int64_t kMaxModelBytes = (int64_t(1) << 31) - (int64_t(1) << 20);

void setAttribute(onnx::AttributeProto& a, const std::string& name, const model::detail::OnnxGraph::Attribute& value) {
    a.set_name(name);
    if (const auto* i = std::get_if<int64_t>(&value)) {
        a.set_type(onnx::AttributeProto::INT);
        a.set_i(*i);
    } else if (const auto* f = std::get_if<float>(&value)) {
        a.set_type(onnx::AttributeProto::FLOAT);
        a.set_f(*f);
    } else if (const auto* text = std::get_if<std::string>(&value)) {
        a.set_type(onnx::AttributeProto::STRING);
        a.set_s(*text);
    } else {
        a.set_type(onnx::AttributeProto::INTS);
        for (int64_t v : std::get<std::vector<int64_t>>(value))
            a.add_ints(v);
    }
}

void setTensorType(onnx::ValueInfoProto& info, const std::string& name, const std::vector<int64_t>& sampleShape) {
    info.set_name(name);
    auto* tensor = info.mutable_type()->mutable_tensor_type();
    tensor->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tensor->mutable_shape();
    shape->add_dim()->set_dim_param("batch");
    for (int64_t d : sampleShape)
        shape->add_dim()->set_dim_value(d);
}

/// The ModelProto's graph as the layer table's lowerings see it (model::detail::OnnxGraph): one
/// network at a time, names prefixed with the member ("member1.conv1") in an ensemble.
class ProtoGraph : public model::detail::OnnxGraph {
public:
    explicit ProtoGraph(onnx::GraphProto& graph) : m_graph(graph) {}

    /// Starts lowering one layer: the tensors it reads and the module that holds its weights.
    void beginLayer(const std::string& name, std::vector<std::string> inputs, torch::nn::Module* module) {
        m_layer = name;
        m_inputs = std::move(inputs);
        m_module = module;
        m_firstNodeOfLayer = -1;
    }

    const std::vector<std::string>& inputs() const override { return m_inputs; }

    std::string weight(const std::string& name) override {
        if (!m_module)
            throw InternalError("layer \"" + m_layer + "\" has no module holding \"" + name + "\"");
        torch::Tensor value;
        for (const auto& p : m_module->named_parameters(false))
            if (p.key() == name)
                value = p.value();
        for (const auto& b : m_module->named_buffers(false))
            if (b.key() == name)
                value = b.value();
        if (!value.defined())
            throw InternalError("layer \"" + m_layer + "\" has no weight \"" + name + "\"");
        return floatConstant(m_layer + "." + name, value);
    }

    std::string node(const std::string& op, const std::vector<std::string>& inputs,
                     const Attributes& attributes) override {
        // Named "<layer>/<op>" until endLayer() gives the layer's name to the node of its output.
        if (m_firstNodeOfLayer < 0)
            m_firstNodeOfLayer = m_graph.node_size();
        std::string name = m_layer + "/" + op;
        for (int i = 2; m_names.count(name); ++i)
            name = m_layer + "/" + op + std::to_string(i);
        return addNode(name, op, inputs, attributes);
    }

    std::string constant(const std::string& suffix, const std::vector<int64_t>& values) override {
        auto* t = m_graph.add_initializer();
        t->set_name(m_layer + "." + suffix);
        t->set_data_type(onnx::TensorProto::INT64);
        t->add_dims(int64_t(values.size()));
        for (int64_t v : values)
            t->add_int64_data(v);
        return t->name();
    }

    /// Ends the layer whose lowering returned `output`: the node that computes it, when the layer
    /// added it, takes the layer's name, so that the graph's tensors read as the design's layers.
    std::string endLayer(const std::string& output) {
        if (m_firstNodeOfLayer < 0)
            return output; // Input, Dropout: no node of its own
        for (int i = m_graph.node_size() - 1; i >= m_firstNodeOfLayer; --i) {
            auto* n = m_graph.mutable_node(i);
            if (n->output(0) == output) {
                n->set_name(m_layer);
                n->set_output(0, m_layer);
                m_names.insert(m_layer);
                return m_layer;
            }
        }
        return output;
    }

    std::string addNode(const std::string& name, const std::string& op, const std::vector<std::string>& inputs,
                        const Attributes& attributes = {}) {
        auto* n = m_graph.add_node();
        n->set_name(name);
        n->set_op_type(op);
        for (const auto& i : inputs)
            n->add_input(i);
        n->add_output(name);
        m_names.insert(name);
        for (const auto& [key, value] : attributes)
            setAttribute(*n->add_attribute(), key, value);
        return name;
    }

    /// A float32 initializer with the tensor's values and shape.
    std::string floatConstant(const std::string& name, const torch::Tensor& tensor) {
        const auto values = tensor.detach().to(torch::kCPU, torch::kFloat32).contiguous();
        auto* t = m_graph.add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::FLOAT);
        for (int64_t d : values.sizes())
            t->add_dims(d);
        // raw_data is little-endian, as float32 is on every platform libtorch runs on.
        t->set_raw_data(values.data_ptr<float>(), size_t(values.numel()) * sizeof(float));
        m_weightBytes += values.numel() * int64_t(sizeof(float));
        return name;
    }

    int64_t weightBytes() const { return m_weightBytes; }

private:
    onnx::GraphProto& m_graph;
    std::string m_layer;
    std::vector<std::string> m_inputs;
    torch::nn::Module* m_module = nullptr;
    int m_firstNodeOfLayer = -1;
    std::set<std::string> m_names; // of node outputs
    int64_t m_weightBytes = 0;
};

/// The normalizer as nodes on the raw input, the same arithmetic as Normalizer::apply: x / scale,
/// then (x - mean) / std per channel (dim 0 of a sample). Returns the normalized tensor's name.
std::string normalize(ProtoGraph& g, const data::Normalizer& n, const std::vector<int64_t>& sampleShape) {
    std::string x = kOnnxInput;
    if (n.mode == data::Normalizer::Mode::None)
        return x;
    if (n.scale != 1.0)
        x = g.addNode("normalize/scale", "Div", {x, g.floatConstant("normalize.scale", torch::tensor(float(n.scale)))});
    if (n.mode == data::Normalizer::Mode::Standardize) {
        // [C, 1, 1] for images, [F] for rows: broadcast against [batch, C, ...].
        std::vector<int64_t> view(sampleShape.size(), 1);
        view[0] = int64_t(n.mean.size());
        const auto mean = torch::tensor(n.mean, torch::kFloat64).to(torch::kFloat32).view(view);
        const auto stdev = torch::tensor(n.std, torch::kFloat64).to(torch::kFloat32).view(view);
        x = g.addNode("normalize/center", "Sub", {x, g.floatConstant("normalize.mean", mean)});
        x = g.addNode("normalize/standardize", "Div", {x, g.floatConstant("normalize.std", stdev)});
    }
    return x;
}

/// One network's logits from `input`: its layers up to the logits in execution order.
std::string lowerNetwork(ProtoGraph& g, const model::GraphModule& network, const std::string& input,
                         const std::string& prefix) {
    const auto& plan = network->plan();
    const auto& analysis = network->analysis();
    std::map<size_t, std::string> outputs;
    for (size_t i : network->logitsSteps()) {
        const auto& layer = plan.layers[i];
        const auto& info = analysis.layers[i];
        if (!layer.kind->toOnnx)
            throw ConfigError("layer \"" + info.name + "\" (" + layer.kind->info.name + ") of \"" +
                              network->architecture().name +
                              "\" cannot be exported to ONNX: mppdl has no ONNX "
                              "form of " +
                              layer.kind->info.name + " layers");
        std::vector<std::string> inputs;
        for (size_t p : layer.inputs)
            inputs.push_back(outputs.at(p));
        if (layer.inputs.empty())
            inputs.push_back(input);
        g.beginLayer(prefix + info.name, std::move(inputs), network->layerModule(i));
        outputs[i] = g.endLayer(layer.kind->toOnnx(layer.params, info.inputShapes, info.outputShape, g));
    }
    return outputs.at(network->logitsLayer());
}

std::string describe(const train::TrainedModel& model, const std::vector<int64_t>& sampleShape, int64_t classes) {
    std::string shape;
    for (int64_t d : sampleShape)
        shape += "x" + std::to_string(d);
    std::string text = "mppdl model \"" + model.architecture().name + "\"";
    if (model.members() > 1)
        text += ", an ensemble of " + std::to_string(model.members()) + " networks (the mean of their probabilities)";
    text += ". Input \"input\": float32 batch" + shape + ", raw values as mppdl reads them (" +
            data::toString(model.normalizer().mode) + " normalization is part of the graph; mppdl.normalization). " +
            "Output \"probabilities\": float32 batchx" + std::to_string(classes) +
            ", one column per class of mppdl.classes.";
    return text;
}

void writeFile(const std::string& path, const std::string& bytes) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (out)
            out.write(bytes.data(), std::streamsize(bytes.size()));
        if (!out || !out.flush()) {
            std::remove(tmp.c_str());
            throw StorageError(path + ": cannot write the ONNX file (" + std::strerror(errno) + ")");
        }
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string reason = std::strerror(errno);
        std::remove(tmp.c_str());
        throw StorageError(path + ": cannot write the ONNX file (" + reason + ")");
    }
}

} // namespace

OnnxSummary exportOnnx(const train::TrainedModel& model, const std::string& path, const OnnxOptions& options) {
    if (options.opset < kMinOnnxOpset || options.opset > kMaxOnnxOpset)
        throw ConfigError("ONNX opset " + std::to_string(options.opset) + " is not supported: mppdl writes opsets " +
                          std::to_string(kMinOnnxOpset) + " to " + std::to_string(kMaxOnnxOpset));
    const auto& impl = model.impl();
    if (impl.members.empty())
        throw InternalError("exporting a model that has no weights");
    const auto& analysis = impl.members.front()->analysis();
    const std::vector<int64_t> sampleShape = analysis.inputShape;
    const int64_t classes = int64_t(model.classNames().size());

    onnx::ModelProto proto;
    proto.set_ir_version(onnx::IR_VERSION);
    auto* opset = proto.add_opset_import();
    opset->set_domain("");
    opset->set_version(options.opset);
    proto.set_producer_name("mppdl");
    proto.set_producer_version(versionString());
    proto.set_model_version(1);
    proto.set_doc_string(options.docString.empty() ? describe(model, sampleShape, classes) : options.docString);

    auto& graph = *proto.mutable_graph();
    graph.set_name(model.architecture().name.empty() ? "mppdl" : model.architecture().name);
    setTensorType(*graph.add_input(), kOnnxInput, sampleShape);
    setTensorType(*graph.add_output(), kOnnxOutput, {classes});

    ProtoGraph g(graph);
    const std::string normalized = normalize(g, impl.normalizer, sampleShape);
    // The probabilities as TrainedModel::predict computes them: softmax of each network's logits,
    // averaged over an ensemble's members.
    std::vector<std::string> memberProbabilities;
    for (size_t m = 0; m < impl.members.size(); ++m) {
        const std::string prefix = impl.members.size() > 1 ? "member" + std::to_string(m) + "." : "";
        const std::string logits = lowerNetwork(g, impl.members[m], normalized, prefix);
        const std::string name = impl.members.size() > 1 ? prefix + kOnnxOutput : std::string(kOnnxOutput);
        memberProbabilities.push_back(g.addNode(name, "Softmax", {logits}, {{"axis", int64_t{1}}}));
    }
    if (impl.members.size() > 1) {
        const std::string sum = g.addNode("ensemble/sum", "Sum", memberProbabilities);
        g.addNode(kOnnxOutput, "Div",
                  {sum, g.floatConstant("ensemble.members", torch::tensor(float(impl.members.size())))});
    }

    auto addMeta = [&proto](const std::string& key, const std::string& value) {
        auto* p = proto.add_metadata_props();
        p->set_key(key);
        p->set_value(value);
    };
    const auto& n = impl.normalizer;
    addMeta("mppdl.classes", nlohmann::json(model.classNames()).dump());
    addMeta(
        "mppdl.normalization",
        nlohmann::json{{"mode", data::toString(n.mode)}, {"scale", n.scale}, {"mean", n.mean}, {"std", n.std}}.dump());
    addMeta("mppdl.input", "raw");
    // How a CSV's columns became the raw input: the feature columns by name and a text column's
    // categories in the order of their one-hot features (an unseen value: all of them 0).
    if (!n.encoding.empty())
        addMeta("mppdl.columns", train::encodingJson(n.encoding).dump());
    addMeta("mppdl.members", std::to_string(impl.members.size()));
    addMeta("mppdl.architecture", model::toJson(model.architecture()));
    for (const auto& [key, value] : options.metadata)
        addMeta(key, value);

    if (g.weightBytes() > kMaxModelBytes)
        throw ConfigError("the model has " + std::to_string(g.weightBytes() >> 20) +
                          " MiB of weights; an ONNX file in one piece holds under 2 GiB");
    std::string bytes;
    if (!proto.SerializeToString(&bytes))
        throw InternalError("the ONNX model could not be serialized");
    writeFile(path, bytes);

    OnnxSummary summary;
    summary.opset = options.opset;
    summary.nodes = graph.node_size();
    summary.initializers = graph.initializer_size();
    summary.weightBytes = g.weightBytes();
    summary.fileBytes = int64_t(bytes.size());
    summary.members = int64_t(impl.members.size());
    summary.classes = classes;
    summary.inputShape = sampleShape;
    return summary;
}

} // namespace mppdl::interop
