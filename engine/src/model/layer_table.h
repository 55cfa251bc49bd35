#pragma once

// Internal: the layer table behind layerTypes(). Each entry joins a type's public description with
// the functions that check it, infer its shape, count it and build it, so that adding a layer
// type means adding one entry in layers.cpp.

#include "mppdl/model/architecture.h"
#include "mppdl/model/layers.h"

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace mppdl::model::detail {

/// Messages about one layer; the caller adds the layer's name as Problem::where.
using Messages = std::vector<std::string>;

/// Integers in parameters and shapes are capped here so that shape arithmetic on two of them
/// cannot overflow int64; larger tensors and layers are reported as too large.
constexpr int64_t kMaxValue = int64_t{1} << 31;

/// a * b for non-negative values, saturating at int64's maximum instead of overflowing.
inline int64_t mulSat(int64_t a, int64_t b) {
    if (a == 0 || b == 0)
        return 0;
    if (a > std::numeric_limits<int64_t>::max() / b)
        return std::numeric_limits<int64_t>::max();
    return a * b;
}

/// a + b for non-negative values, saturating.
inline int64_t addSat(int64_t a, int64_t b) {
    if (a > std::numeric_limits<int64_t>::max() - b)
        return std::numeric_limits<int64_t>::max();
    return a + b;
}

/// The number of elements of a shape, saturating.
inline int64_t numel(const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape)
        n = mulSat(n, d);
    return n;
}

/// A layer's parameters after the generic checks of resolveParams(): every declared parameter
/// holds a value of its declared type (Float as double, Pair as a 2-element list, Padding as a
/// string or a 2-element list), defaults filled in. A parameter whose default is "null" is
/// absent unless written. The getters throw InternalError on a missing or mistyped value: the
/// table functions only run on resolved parameters, so that is a bug.
class LayerParams {
public:
    bool has(const std::string& name) const { return m_values.count(name) != 0; }
    const Param& get(const std::string& name) const;
    int64_t getInt(const std::string& name) const;
    double getFloat(const std::string& name) const;
    bool getBool(const std::string& name) const;
    /// A Pair, or a numeric Padding, as {h, w}.
    std::array<int64_t, 2> getPair(const std::string& name) const;
    const Shape& getShape(const std::string& name) const;
    void set(const std::string& name, Param value) { m_values[name] = std::move(value); }

private:
    std::map<std::string, Param> m_values;
};

/// Combines the outputs of several layers (Add, Concat); `arg` is the op's one setting.
using MergeFn = torch::Tensor (*)(const std::vector<torch::Tensor>& inputs, int64_t arg);

/// What a layer computes in the built module: a single-input module, a merge of several inputs,
/// or neither (the Input layer passes the network's input through).
struct LayerOp {
    torch::nn::AnyModule module;
    MergeFn merge = nullptr;
    int64_t mergeArg = 0;
};

/// Dropout that draws its masks from a generator the network owns (GraphModule::setGenerator)
/// rather than torch's global one: replicas training on several threads then draw reproducible
/// masks, and a checkpoint can save the stream. Without one it uses the global generator. The
/// arithmetic is at::dropout's on the CPU (bernoulli noise, divided by 1 - rate, multiplied).
class SeededDropoutImpl : public torch::nn::Cloneable<SeededDropoutImpl> {
public:
    explicit SeededDropoutImpl(double rate) : m_rate(rate) {}
    void reset() override {}
    torch::Tensor forward(const torch::Tensor& x);
    void setGenerator(std::shared_ptr<at::Generator> generator) { m_generator = std::move(generator); }

private:
    double m_rate;
    std::shared_ptr<at::Generator> m_generator;
};
TORCH_MODULE(SeededDropout);

/// What a layer's ONNX lowering writes into: the exporter's graph (engine/src/interop), abstract
/// here so that the layer table needs no ONNX headers. It knows the layer being lowered: its
/// inputs' tensor names and its built module's weights.
class OnnxGraph {
public:
    using Attribute = std::variant<int64_t, float, std::vector<int64_t>, std::string>;
    using Attributes = std::vector<std::pair<std::string, Attribute>>;

    virtual ~OnnxGraph() = default;
    /// The tensor names of the layer's inputs (for Input: the graph's normalized input).
    virtual const std::vector<std::string>& inputs() const = 0;
    /// The layer's parameter or buffer by its torch name ("weight", "running_var") as an
    /// initializer; returns the initializer's name.
    virtual std::string weight(const std::string& name) = 0;
    /// An int64 initializer of the layer (shapes, pads: operands that opset 13 takes as inputs),
    /// named after the layer and `suffix`; returns its name.
    virtual std::string constant(const std::string& suffix, const std::vector<int64_t>& values) = 0;
    /// Adds a node of operator `op` (ai.onnx, the exporter's opset); returns its output's name.
    virtual std::string node(const std::string& op, const std::vector<std::string>& inputs,
                             const Attributes& attributes = {}) = 0;
};

/// One row of the layer table.
struct LayerKind {
    LayerTypeInfo info;
    /// Range checks of the parameters alone (values already have their declared types).
    void (*checkParams)(const LayerParams& params, Messages& problems);
    /// The output shape for these input shapes (their number already checked against
    /// info.minInputs/maxInputs); nullopt plus a message naming the shapes when they do not fit.
    std::optional<Shape> (*inferShape)(const LayerParams& params, const std::vector<Shape>& inputs, Messages& problems);
    /// Trainable parameters; saturating arithmetic.
    int64_t (*countParams)(const LayerParams& params, const std::vector<Shape>& inputs, const Shape& output);
    /// Forward FLOPs per sample under the convention documented in layers.h; saturating.
    int64_t (*countFlops)(const LayerParams& params, const std::vector<Shape>& inputs, const Shape& output);
    /// Builds the op of a layer that analysis found valid, with fresh parameters.
    LayerOp (*build)(const LayerParams& params, const std::vector<Shape>& inputs, const Shape& output);
    /// Writes the layer's inference computation as ONNX nodes; returns the tensor name of its
    /// output. nullptr: the layer cannot be exported (the exporter names it).
    std::string (*toOnnx)(const LayerParams& params, const std::vector<Shape>& inputs, const Shape& output,
                          OnnxGraph& graph);
};

/// The table, in palette order.
const std::vector<LayerKind>& layerKinds();
/// nullptr when there is no such type.
const LayerKind* findLayerKind(const std::string& name);

/// Checks the parameters written for a layer against its type: unknown names (listing the
/// accepted ones), missing required ones, values of the wrong type or too large. Returns what it
/// could resolve; `problems` is non-empty when something was wrong.
LayerParams resolveParams(const LayerTypeInfo& info, const std::map<std::string, Param>& written, Messages& problems);

/// The candidate closest to `word` (case-insensitive edit distance) if it is close enough to be
/// a plausible typo, else an empty string.
std::string closestName(const std::string& word, const std::vector<std::string>& candidates);

/// The parameter value of a JSON value, nullopt for a value no parameter can hold (null, an
/// object, a list of anything but integers). Implemented in spec.cpp.
std::optional<Param> paramFromJson(const nlohmann::json& value);
/// A parameter value as JSON text, as toJson() writes it ("[3, 3]", "0.5", "\"same\"").
std::string formatParam(const Param& value);

} // namespace mppdl::model::detail
