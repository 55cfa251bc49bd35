#include "layer_table.h"
#include "mppdl/core/error.h"
#include "mppdl/model/layers.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace mppdl::model {

namespace detail {

namespace {

std::string pairText(const std::array<int64_t, 2>& p) { return std::to_string(p[0]) + "x" + std::to_string(p[1]); }

bool allAtLeast(const std::array<int64_t, 2>& p, int64_t minimum) { return p[0] >= minimum && p[1] >= minimum; }

// Shared checks and formulas ------------------------------------------------------------------

void noChecks(const LayerParams&, Messages&) {}

int64_t noParams(const LayerParams&, const std::vector<Shape>&, const Shape&) { return 0; }

int64_t noFlops(const LayerParams&, const std::vector<Shape>&, const Shape&) { return 0; }

int64_t onePerOutput(const LayerParams&, const std::vector<Shape>&, const Shape& out) { return numel(out); }

std::optional<Shape> sameShape(const LayerParams&, const std::vector<Shape>& in, Messages&) { return in[0]; }

bool needs3d(const std::vector<Shape>& in, Messages& problems) {
    if (in[0].size() == 3)
        return true;
    problems.push_back("expects a 3-D input (channels x height x width), got " + formatShape(in[0]) +
                       (in[0].size() == 1 ? " (a 1-D input cannot be convolved or pooled)" : ""));
    return false;
}

// Input -------------------------------------------------------------------------------------------

void inputCheck(const LayerParams& p, Messages& problems) {
    const Shape& shape = p.getShape("shape");
    if (shape.empty() || shape.size() > 3)
        problems.push_back("shape must have 1 to 3 dimensions ([features] or [channels, height, "
                           "width]), got " +
                           formatParam(shape));
    else if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 1; }))
        problems.push_back("shape dimensions must be positive, got " + formatParam(shape));
    const auto& layout = std::get<std::string>(p.get("layout"));
    if (layout != "chw" && layout != "hwc")
        problems.push_back("layout must be \"chw\" or \"hwc\", got \"" + layout + "\"");
    else if (layout == "hwc" && shape.size() != 3)
        problems.push_back("layout \"hwc\" is for a [channels, height, width] input, not " + formatParam(shape));
}

std::optional<Shape> inputShape(const LayerParams& p, const std::vector<Shape>&, Messages&) {
    return p.getShape("shape");
}

LayerOp buildNothing(const LayerParams&, const std::vector<Shape>&, const Shape&) { return {}; }

// Conv2D ------------------------------------------------------------------------------------------

bool isSamePadding(const LayerParams& p) {
    const Param& padding = p.get("padding");
    return std::holds_alternative<std::string>(padding) && std::get<std::string>(padding) == "same";
}

std::array<int64_t, 2> convPadding(const LayerParams& p) {
    if (std::holds_alternative<std::string>(p.get("padding")))
        return {0, 0}; // "valid"; "same" is handled apart
    return p.getPair("padding");
}

void convCheck(const LayerParams& p, Messages& problems) {
    if (p.getInt("filters") < 1)
        problems.push_back("filters must be at least 1, got " + std::to_string(p.getInt("filters")));
    if (!allAtLeast(p.getPair("kernel_size"), 1))
        problems.push_back("kernel_size must be at least 1, got " + pairText(p.getPair("kernel_size")));
    if (!allAtLeast(p.getPair("stride"), 1))
        problems.push_back("stride must be at least 1, got " + pairText(p.getPair("stride")));
    if (!allAtLeast(p.getPair("dilation"), 1))
        problems.push_back("dilation must be at least 1, got " + pairText(p.getPair("dilation")));
    const Param& padding = p.get("padding");
    if (std::holds_alternative<std::string>(padding)) {
        const std::string& mode = std::get<std::string>(padding);
        if (mode != "valid" && mode != "same")
            problems.push_back("padding must be \"valid\", \"same\", an integer or [h, w], got " +
                               formatParam(padding));
        else if (mode == "same" && p.getPair("stride") != std::array<int64_t, 2>{1, 1} &&
                 allAtLeast(p.getPair("stride"), 1))
            problems.push_back("padding \"same\" needs stride 1, got stride " + pairText(p.getPair("stride")) +
                               "; give the padding as a number");
    } else if (!allAtLeast(p.getPair("padding"), 0)) {
        problems.push_back("padding must not be negative, got " + pairText(p.getPair("padding")));
    }
}

std::optional<Shape> convShape(const LayerParams& p, const std::vector<Shape>& in, Messages& problems) {
    if (!needs3d(in, problems))
        return std::nullopt;
    const Shape& x = in[0];
    const int64_t filters = p.getInt("filters");
    if (isSamePadding(p))
        return Shape{filters, x[1], x[2]};
    const auto k = p.getPair("kernel_size");
    const auto s = p.getPair("stride");
    const auto d = p.getPair("dilation");
    const auto pad = convPadding(p);
    // Values are capped at 2^31 (resolveParams), so these cannot overflow.
    const std::array<int64_t, 2> reach{d[0] * (k[0] - 1) + 1, d[1] * (k[1] - 1) + 1};
    const std::array<int64_t, 2> padded{x[1] + 2 * pad[0], x[2] + 2 * pad[1]};
    if (padded[0] < reach[0] || padded[1] < reach[1]) {
        std::string dilated = d == std::array<int64_t, 2>{1, 1} ? "" : " (dilated " + pairText(reach) + ")";
        problems.push_back("kernel " + pairText(k) + dilated + " is larger than its padded input " + pairText(padded));
        return std::nullopt;
    }
    return Shape{filters, (padded[0] - reach[0]) / s[0] + 1, (padded[1] - reach[1]) / s[1] + 1};
}

int64_t convParams(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    const auto k = p.getPair("kernel_size");
    const int64_t filters = p.getInt("filters");
    const int64_t weights = mulSat(mulSat(mulSat(filters, in[0][0]), k[0]), k[1]);
    return addSat(weights, p.getBool("bias") ? filters : 0);
}

int64_t convFlops(const LayerParams& p, const std::vector<Shape>& in, const Shape& out) {
    const auto k = p.getPair("kernel_size");
    const int64_t macs = mulSat(mulSat(mulSat(in[0][0], k[0]), k[1]), numel(out));
    return addSat(mulSat(2, macs), p.getBool("bias") ? numel(out) : 0);
}

LayerOp convBuild(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    const auto k = p.getPair("kernel_size");
    auto options = torch::nn::Conv2dOptions(in[0][0], p.getInt("filters"), {k[0], k[1]})
                       .stride(torch::ExpandingArray<2>(p.getPair("stride")))
                       .dilation(torch::ExpandingArray<2>(p.getPair("dilation")))
                       .bias(p.getBool("bias"));
    if (isSamePadding(p))
        options.padding(torch::kSame);
    else
        options.padding(torch::ExpandingArray<2>(convPadding(p)));
    return {torch::nn::AnyModule(torch::nn::Conv2d(options))};
}

// Pooling -----------------------------------------------------------------------------------------

std::array<int64_t, 2> poolStride(const LayerParams& p) {
    return p.has("stride") ? p.getPair("stride") : p.getPair("pool_size");
}

void poolCheck(const LayerParams& p, Messages& problems) {
    const auto k = p.getPair("pool_size");
    const auto pad = p.getPair("padding");
    if (!allAtLeast(k, 1))
        problems.push_back("pool_size must be at least 1, got " + pairText(k));
    if (p.has("stride") && !allAtLeast(p.getPair("stride"), 1))
        problems.push_back("stride must be at least 1, got " + pairText(p.getPair("stride")));
    if (!allAtLeast(pad, 0))
        problems.push_back("padding must not be negative, got " + pairText(pad));
    else if (allAtLeast(k, 1) && (pad[0] > k[0] / 2 || pad[1] > k[1] / 2))
        problems.push_back("padding " + pairText(pad) + " must be at most half of pool_size " + pairText(k));
}

std::optional<Shape> poolShape(const LayerParams& p, const std::vector<Shape>& in, Messages& problems) {
    if (!needs3d(in, problems))
        return std::nullopt;
    const Shape& x = in[0];
    const auto k = p.getPair("pool_size");
    const auto s = poolStride(p);
    const auto pad = p.getPair("padding");
    const std::array<int64_t, 2> padded{x[1] + 2 * pad[0], x[2] + 2 * pad[1]};
    if (padded[0] < k[0] || padded[1] < k[1]) {
        problems.push_back("pool " + pairText(k) + " is larger than its padded input " + pairText(padded));
        return std::nullopt;
    }
    return Shape{x[0], (padded[0] - k[0]) / s[0] + 1, (padded[1] - k[1]) / s[1] + 1};
}

int64_t poolFlops(const LayerParams& p, const std::vector<Shape>&, const Shape& out) {
    const auto k = p.getPair("pool_size");
    return mulSat(mulSat(k[0], k[1]), numel(out));
}

LayerOp maxPoolBuild(const LayerParams& p, const std::vector<Shape>&, const Shape&) {
    auto options = torch::nn::MaxPool2dOptions(torch::ExpandingArray<2>(p.getPair("pool_size")))
                       .stride(torch::ExpandingArray<2>(poolStride(p)))
                       .padding(torch::ExpandingArray<2>(p.getPair("padding")));
    return {torch::nn::AnyModule(torch::nn::MaxPool2d(options))};
}

LayerOp avgPoolBuild(const LayerParams& p, const std::vector<Shape>&, const Shape&) {
    auto options = torch::nn::AvgPool2dOptions(torch::ExpandingArray<2>(p.getPair("pool_size")))
                       .stride(torch::ExpandingArray<2>(poolStride(p)))
                       .padding(torch::ExpandingArray<2>(p.getPair("padding")));
    return {torch::nn::AnyModule(torch::nn::AvgPool2d(options))};
}

// BatchNorm ---------------------------------------------------------------------------------------

void batchNormCheck(const LayerParams& p, Messages& problems) {
    const double momentum = p.getFloat("momentum");
    const double eps = p.getFloat("eps");
    if (!(momentum >= 0 && momentum <= 1))
        problems.push_back("momentum must be between 0 and 1, got " + formatParam(momentum));
    if (!(eps > 0 && std::isfinite(eps)))
        problems.push_back("eps must be positive, got " + formatParam(eps));
}

std::optional<Shape> batchNormShape(const LayerParams&, const std::vector<Shape>& in, Messages& problems) {
    if (in[0].size() == 1 || in[0].size() == 3)
        return in[0];
    problems.push_back("expects a 3-D (channels x height x width) or 1-D input, got " + formatShape(in[0]));
    return std::nullopt;
}

int64_t batchNormParams(const LayerParams&, const std::vector<Shape>& in, const Shape&) { return mulSat(2, in[0][0]); }

int64_t batchNormFlops(const LayerParams&, const std::vector<Shape>&, const Shape& out) {
    return mulSat(2, numel(out));
}

LayerOp batchNormBuild(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    const int64_t features = in[0][0];
    if (in[0].size() == 3)
        return {torch::nn::AnyModule(torch::nn::BatchNorm2d(
            torch::nn::BatchNormOptions(features).momentum(p.getFloat("momentum")).eps(p.getFloat("eps"))))};
    return {torch::nn::AnyModule(torch::nn::BatchNorm1d(
        torch::nn::BatchNormOptions(features).momentum(p.getFloat("momentum")).eps(p.getFloat("eps"))))};
}

// Dropout -----------------------------------------------------------------------------------------

} // namespace

torch::Tensor SeededDropoutImpl::forward(const torch::Tensor& x) {
    if (!is_training() || m_rate == 0)
        return x;
    auto noise = at::empty_like(x);
    if (m_generator && m_generator->defined())
        noise.bernoulli_(1 - m_rate, *m_generator);
    else
        noise.bernoulli_(1 - m_rate);
    noise.div_(1 - m_rate);
    return x * noise;
}

namespace {

void dropoutCheck(const LayerParams& p, Messages& problems) {
    const double rate = p.getFloat("rate");
    if (!(rate >= 0 && rate < 1))
        problems.push_back("rate must be at least 0 and below 1, got " + formatParam(rate));
}

LayerOp dropoutBuild(const LayerParams& p, const std::vector<Shape>&, const Shape&) {
    return {torch::nn::AnyModule(SeededDropout(p.getFloat("rate")))};
}

// Flatten, Dense ----------------------------------------------------------------------------------

std::optional<Shape> flattenShape(const LayerParams&, const std::vector<Shape>& in, Messages&) {
    return Shape{numel(in[0])};
}

LayerOp flattenBuild(const LayerParams&, const std::vector<Shape>&, const Shape&) {
    return {torch::nn::AnyModule(torch::nn::Flatten())};
}

void denseCheck(const LayerParams& p, Messages& problems) {
    if (p.getInt("units") < 1)
        problems.push_back("units must be at least 1, got " + std::to_string(p.getInt("units")));
}

std::optional<Shape> denseShape(const LayerParams& p, const std::vector<Shape>& in, Messages& problems) {
    if (in[0].size() != 1) {
        problems.push_back("expects a 1-D input, got " + formatShape(in[0]) + " (add a Flatten before it)");
        return std::nullopt;
    }
    return Shape{p.getInt("units")};
}

int64_t denseParams(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    const int64_t units = p.getInt("units");
    return addSat(mulSat(in[0][0], units), p.getBool("bias") ? units : 0);
}

int64_t denseFlops(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    const int64_t units = p.getInt("units");
    return addSat(mulSat(2, mulSat(in[0][0], units)), p.getBool("bias") ? units : 0);
}

LayerOp denseBuild(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    return {torch::nn::AnyModule(
        torch::nn::Linear(torch::nn::LinearOptions(in[0][0], p.getInt("units")).bias(p.getBool("bias"))))};
}

// Activations -------------------------------------------------------------------------------------

LayerOp reluBuild(const LayerParams&, const std::vector<Shape>&, const Shape&) {
    return {torch::nn::AnyModule(torch::nn::ReLU())};
}

void leakyReluCheck(const LayerParams& p, Messages& problems) {
    if (!std::isfinite(p.getFloat("negative_slope")))
        problems.push_back("negative_slope must be a finite number");
}

LayerOp leakyReluBuild(const LayerParams& p, const std::vector<Shape>&, const Shape&) {
    return {torch::nn::AnyModule(
        torch::nn::LeakyReLU(torch::nn::LeakyReLUOptions().negative_slope(p.getFloat("negative_slope"))))};
}

LayerOp tanhBuild(const LayerParams&, const std::vector<Shape>&, const Shape&) {
    return {torch::nn::AnyModule(torch::nn::Tanh())};
}

LayerOp sigmoidBuild(const LayerParams&, const std::vector<Shape>&, const Shape&) {
    return {torch::nn::AnyModule(torch::nn::Sigmoid())};
}

LayerOp softmaxBuild(const LayerParams&, const std::vector<Shape>&, const Shape&) {
    // Dimension 1 of the batched tensor: the features of a 1-D sample, the channels of a 3-D one.
    return {torch::nn::AnyModule(torch::nn::Softmax(torch::nn::SoftmaxOptions(1)))};
}

// Merges ------------------------------------------------------------------------------------------

std::optional<Shape> addShape(const LayerParams&, const std::vector<Shape>& in, Messages& problems) {
    for (size_t i = 1; i < in.size(); ++i) {
        if (in[i] != in[0]) {
            problems.push_back("input shapes differ: " + formatShape(in[0]) + " vs " + formatShape(in[i]));
            return std::nullopt;
        }
    }
    return in[0];
}

int64_t addFlops(const LayerParams&, const std::vector<Shape>& in, const Shape& out) {
    return mulSat(static_cast<int64_t>(in.size()) - 1, numel(out));
}

torch::Tensor addMerge(const std::vector<torch::Tensor>& inputs, int64_t) {
    torch::Tensor sum = inputs[0] + inputs[1];
    for (size_t i = 2; i < inputs.size(); ++i)
        sum.add_(inputs[i]);
    return sum;
}

LayerOp addBuild(const LayerParams&, const std::vector<Shape>&, const Shape&) {
    LayerOp op;
    op.merge = addMerge;
    return op;
}

std::optional<Shape> concatShape(const LayerParams& p, const std::vector<Shape>& in, Messages& problems) {
    const int64_t rank = static_cast<int64_t>(in[0].size());
    int64_t axis = p.getInt("axis");
    if (axis < -rank || axis >= rank) {
        problems.push_back("axis " + std::to_string(axis) + " does not exist in its " + std::to_string(rank) +
                           "-D inputs (" + formatShape(in[0]) + ")");
        return std::nullopt;
    }
    if (axis < 0)
        axis += rank;
    Shape out = in[0];
    for (size_t i = 1; i < in.size(); ++i) {
        bool fits = in[i].size() == in[0].size();
        for (int64_t d = 0; fits && d < rank; ++d)
            fits = d == axis || in[i][d] == in[0][d];
        if (!fits) {
            problems.push_back("input shapes do not fit for concatenation along axis " + std::to_string(axis) + ": " +
                               formatShape(in[0]) + " vs " + formatShape(in[i]) + " (all other dimensions must agree)");
            return std::nullopt;
        }
        out[axis] = addSat(out[axis], in[i][axis]);
    }
    return out;
}

torch::Tensor concatMerge(const std::vector<torch::Tensor>& inputs, int64_t dim) { return torch::cat(inputs, dim); }

LayerOp concatBuild(const LayerParams& p, const std::vector<Shape>& in, const Shape&) {
    int64_t axis = p.getInt("axis");
    if (axis < 0)
        axis += static_cast<int64_t>(in[0].size());
    LayerOp op;
    op.merge = concatMerge;
    op.mergeArg = axis + 1; // past the batch dimension
    return op;
}

// ONNX lowerings --------------------------------------------------------------------------------
// Inference semantics only (Dropout is the identity, BatchNorm uses its running statistics), with
// the attributes spelled out rather than left to ONNX defaults, so that a reader's defaults cannot
// differ from torch's.

using Attrs = OnnxGraph::Attributes;

std::vector<int64_t> pairList(const std::array<int64_t, 2>& p) { return {p[0], p[1]}; }

// ONNX pads are [top, left, bottom, right].
std::vector<int64_t> symmetricPads(const std::array<int64_t, 2>& p) { return {p[0], p[1], p[0], p[1]}; }

std::string inputOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.inputs()[0];
}

std::string identityOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.inputs()[0];
}

std::string convOnnx(const LayerParams& p, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    const auto k = p.getPair("kernel_size");
    const auto d = p.getPair("dilation");
    std::vector<int64_t> pads;
    if (isSamePadding(p)) {
        // torch's "same": d * (k - 1) zeros in all, the odd one at the end (bottom, right).
        const int64_t h = d[0] * (k[0] - 1), w = d[1] * (k[1] - 1);
        pads = {h / 2, w / 2, h - h / 2, w - w / 2};
    } else {
        pads = symmetricPads(convPadding(p));
    }
    std::vector<std::string> inputs{g.inputs()[0], g.weight("weight")};
    if (p.getBool("bias"))
        inputs.push_back(g.weight("bias"));
    return g.node("Conv", inputs,
                  Attrs{{"kernel_shape", pairList(k)},
                        {"strides", pairList(p.getPair("stride"))},
                        {"dilations", pairList(d)},
                        {"pads", pads},
                        {"group", int64_t{1}}});
}

Attrs poolAttributes(const LayerParams& p, const std::array<int64_t, 2>& padding) {
    return {{"kernel_shape", pairList(p.getPair("pool_size"))},
            {"strides", pairList(poolStride(p))},
            {"pads", symmetricPads(padding)},
            {"ceil_mode", int64_t{0}}};
}

std::string maxPoolOnnx(const LayerParams& p, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("MaxPool", {g.inputs()[0]}, poolAttributes(p, p.getPair("padding")));
}

std::string avgPoolOnnx(const LayerParams& p, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    // torch counts the padding zeros in the mean. ONNX says so with count_include_pad = 1, but
    // readers ignore it (OpenCV 4.6 always leaves the padding out), so the zeros are made
    // explicit: a Pad node, then a pool without padding, which every reader computes alike.
    const auto pad = p.getPair("padding");
    std::string x = g.inputs()[0];
    if (pad[0] != 0 || pad[1] != 0)
        x = g.node("Pad", {x, g.constant("pads", {0, 0, pad[0], pad[1], 0, 0, pad[0], pad[1]})},
                   Attrs{{"mode", std::string("constant")}});
    Attrs attributes = poolAttributes(p, {0, 0});
    attributes.emplace_back("count_include_pad", int64_t{1});
    return g.node("AveragePool", {x}, attributes);
}

std::string batchNormOnnx(const LayerParams& p, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("BatchNormalization",
                  {g.inputs()[0], g.weight("weight"), g.weight("bias"), g.weight("running_mean"),
                   g.weight("running_var")},
                  Attrs{{"epsilon", static_cast<float>(p.getFloat("eps"))}});
}

std::string flattenOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("Flatten", {g.inputs()[0]}, Attrs{{"axis", int64_t{1}}});
}

std::string denseOnnx(const LayerParams& p, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    std::vector<std::string> inputs{g.inputs()[0], g.weight("weight")};
    if (p.getBool("bias"))
        inputs.push_back(g.weight("bias"));
    // torch's Linear keeps the weight as [out, in]: y = x W^T + b.
    return g.node("Gemm", inputs,
                  Attrs{{"alpha", 1.0f}, {"beta", 1.0f}, {"transA", int64_t{0}}, {"transB", int64_t{1}}});
}

std::string reluOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("Relu", {g.inputs()[0]});
}

std::string leakyReluOnnx(const LayerParams& p, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("LeakyRelu", {g.inputs()[0]}, Attrs{{"alpha", static_cast<float>(p.getFloat("negative_slope"))}});
}

std::string tanhOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("Tanh", {g.inputs()[0]});
}

std::string sigmoidOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node("Sigmoid", {g.inputs()[0]});
}

std::string softmaxOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    // Opset 13's Softmax normalizes along the one axis, as torch does (older opsets flattened).
    return g.node("Softmax", {g.inputs()[0]}, Attrs{{"axis", int64_t{1}}});
}

std::string addOnnx(const LayerParams&, const std::vector<Shape>&, const Shape&, OnnxGraph& g) {
    return g.node(g.inputs().size() == 2 ? "Add" : "Sum", g.inputs());
}

std::string concatOnnx(const LayerParams& p, const std::vector<Shape>& in, const Shape&, OnnxGraph& g) {
    int64_t axis = p.getInt("axis");
    if (axis < 0)
        axis += static_cast<int64_t>(in[0].size());
    return g.node("Concat", g.inputs(), Attrs{{"axis", axis + 1}}); // past the batch dimension
}

// The table ---------------------------------------------------------------------------------------

/// Layers that hold weights or change a sample's shape: Input, convolution, pooling, normalization,
/// Dropout, Flatten, Dense.
std::vector<LayerKind> shapingKinds() {
    using T = ParamType;
    return {
        {{"Input",
          "input",
          "The network's input; one sample's shape, without the batch dimension.",
          {{"shape", T::Shape, nullptr, "[channels, height, width] or [features]"},
           {"layout", T::String, "\"chw\"",
            "where the data keeps a sample's channels: \"chw\" (channels first) or \"hwc\" (height x width x "
            "channels, Keras' channels_last), transposed to chw when the rows are read"}},
          0,
          0},
         inputCheck,
         inputShape,
         noParams,
         noFlops,
         buildNothing,
         inputOnnx},
        {{"Conv2D",
          "convolution",
          "2-D convolution over channels x height x width.",
          {{"filters", T::Int, nullptr, "number of output channels"},
           {"kernel_size", T::Pair, nullptr, "kernel height and width: an integer or [h, w]"},
           {"stride", T::Pair, "1", "step between applications: an integer or [h, w]"},
           {"padding", T::Padding, "\"valid\"",
            "\"valid\" (none), \"same\" (output as large as the input; stride 1 only), an integer "
            "or [h, w] of zeros on each side"},
           {"dilation", T::Pair, "1", "spacing between kernel elements: an integer or [h, w]"},
           {"bias", T::Bool, "true", "whether to add a learned bias per filter"}},
          1,
          1},
         convCheck,
         convShape,
         convParams,
         convFlops,
         convBuild,
         convOnnx},
        {{"MaxPool2D",
          "pooling",
          "The maximum over each pool_size window.",
          {{"pool_size", T::Pair, nullptr, "window height and width: an integer or [h, w]"},
           {"stride", T::Pair, "null", "step between windows; defaults to pool_size"},
           {"padding", T::Pair, "0", "implicit padding on each side, at most half of pool_size"}},
          1,
          1},
         poolCheck,
         poolShape,
         noParams,
         poolFlops,
         maxPoolBuild,
         maxPoolOnnx},
        {{"AvgPool2D",
          "pooling",
          "The mean over each pool_size window.",
          {{"pool_size", T::Pair, nullptr, "window height and width: an integer or [h, w]"},
           {"stride", T::Pair, "null", "step between windows; defaults to pool_size"},
           {"padding", T::Pair, "0", "zero padding on each side, at most half of pool_size (zeros count in the mean)"}},
          1,
          1},
         poolCheck,
         poolShape,
         noParams,
         poolFlops,
         avgPoolBuild,
         avgPoolOnnx},
        {{"BatchNorm",
          "normalization",
          "Batch normalization per channel (3-D input) or per feature (1-D input).",
          {{"momentum", T::Float, "0.1", "weight of the current batch in the running statistics"},
           {"eps", T::Float, "1e-05", "added to the variance for numerical stability"}},
          1,
          1},
         batchNormCheck,
         batchNormShape,
         batchNormParams,
         batchNormFlops,
         batchNormBuild,
         batchNormOnnx},
        {{"Dropout",
          "core",
          "Zeroes each element with probability rate while training.",
          {{"rate", T::Float, nullptr, "probability of dropping an element, in [0, 1)"}},
          1,
          1},
         dropoutCheck,
         sameShape,
         noParams,
         noFlops,
         dropoutBuild,
         identityOnnx},
        {{"Flatten", "core", "Reshapes a sample to one dimension.", {}, 1, 1},
         noChecks,
         flattenShape,
         noParams,
         noFlops,
         flattenBuild,
         flattenOnnx},
        {{"Dense",
          "core",
          "Fully connected layer over a 1-D input.",
          {{"units", T::Int, nullptr, "number of outputs"}, {"bias", T::Bool, "true", "whether to add a learned bias"}},
          1,
          1},
         denseCheck,
         denseShape,
         denseParams,
         denseFlops,
         denseBuild,
         denseOnnx},
    };
}

/// Element-wise activations, and the merges of a DAG (Add, Concat).
std::vector<LayerKind> elementwiseKinds() {
    using T = ParamType;
    return {
        {{"ReLU", "activation", "max(x, 0).", {}, 1, 1},
         noChecks,
         sameShape,
         noParams,
         onePerOutput,
         reluBuild,
         reluOnnx},
        {{"LeakyReLU",
          "activation",
          "x for x >= 0, negative_slope * x otherwise.",
          {{"negative_slope", T::Float, "0.01", "slope for negative inputs"}},
          1,
          1},
         leakyReluCheck,
         sameShape,
         noParams,
         onePerOutput,
         leakyReluBuild,
         leakyReluOnnx},
        {{"Tanh", "activation", "Hyperbolic tangent.", {}, 1, 1},
         noChecks,
         sameShape,
         noParams,
         onePerOutput,
         tanhBuild,
         tanhOnnx},
        {{"Sigmoid", "activation", "1 / (1 + exp(-x)).", {}, 1, 1},
         noChecks,
         sameShape,
         noParams,
         onePerOutput,
         sigmoidBuild,
         sigmoidOnnx},
        {{"Softmax",
          "activation",
          "Probabilities over the features (1-D input) or the channels (3-D input). As the last "
          "layer, training uses the logits before it.",
          {},
          1,
          1},
         noChecks,
         sameShape,
         noParams,
         onePerOutput,
         softmaxBuild,
         softmaxOnnx},
        {{"Add", "merge", "Element-wise sum of two or more inputs of equal shape.", {}, 2, -1},
         noChecks,
         addShape,
         noParams,
         addFlops,
         addBuild,
         addOnnx},
        {{"Concat",
          "merge",
          "Joins two or more inputs along an axis; the other dimensions must agree.",
          {{"axis", T::Int, "0", "per-sample axis to join along (0: channels or features)"}},
          2,
          -1},
         noChecks,
         concatShape,
         noParams,
         noFlops,
         concatBuild,
         concatOnnx},
    };
}

/// The one table of layer types, in the order the palette and `mppdl arch layers` list them.
std::vector<LayerKind> makeTable() {
    auto table = shapingKinds();
    for (auto& kind : elementwiseKinds())
        table.push_back(std::move(kind));
    return table;
}

std::string lower(const std::string& s) {
    std::string out = s;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return out;
}

size_t editDistance(const std::string& a, const std::string& b) {
    std::vector<size_t> row(b.size() + 1);
    for (size_t j = 0; j <= b.size(); ++j)
        row[j] = j;
    for (size_t i = 1; i <= a.size(); ++i) {
        size_t diagonal = row[0];
        row[0] = i;
        for (size_t j = 1; j <= b.size(); ++j) {
            const size_t above = row[j];
            row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
            diagonal = above;
        }
    }
    return row[b.size()];
}

std::string describeValue(const Param& value) {
    struct Kind {
        const char* operator()(int64_t) const { return "an integer"; }
        const char* operator()(double) const { return "a real number"; }
        const char* operator()(bool) const { return "a boolean"; }
        const char* operator()(const std::string&) const { return "a string"; }
        const char* operator()(const std::vector<int64_t>&) const { return "a list"; }
    };
    return std::string(std::visit(Kind{}, value)) + " (" + formatParam(value) + ")";
}

bool tooLarge(int64_t v) { return v > kMaxValue || v < -kMaxValue; }

// The value of a written parameter in its declared type, or a message saying why not.
std::optional<Param> convert(const ParamInfo& info, const Param& value, std::string& error) {
    const std::string name = std::string("\"") + info.name + "\"";
    auto wrongType = [&] {
        error = name + " must be " + toString(info.type) + ", got " + describeValue(value);
        return std::nullopt;
    };
    auto checkedPair = [&](const std::vector<int64_t>& list) -> std::optional<Param> {
        if (list.size() != 2)
            return wrongType();
        if (tooLarge(list[0]) || tooLarge(list[1])) {
            error = name + " is too large: " + formatParam(list);
            return std::nullopt;
        }
        return Param(list);
    };
    auto checkedInt = [&](int64_t v) -> std::optional<int64_t> {
        if (!tooLarge(v))
            return v;
        error = name + " is too large: " + std::to_string(v);
        return std::nullopt;
    };
    switch (info.type) {
    case ParamType::Int:
        if (auto v = std::get_if<int64_t>(&value)) {
            if (auto checked = checkedInt(*v))
                return Param(*checked);
            return std::nullopt;
        }
        return wrongType();
    case ParamType::Float:
        if (auto v = std::get_if<double>(&value))
            return Param(*v);
        if (auto v = std::get_if<int64_t>(&value))
            return Param(static_cast<double>(*v));
        return wrongType();
    case ParamType::Bool:
        if (std::holds_alternative<bool>(value))
            return value;
        return wrongType();
    case ParamType::String:
        if (std::holds_alternative<std::string>(value))
            return value;
        return wrongType();
    case ParamType::Padding:
        if (std::holds_alternative<std::string>(value))
            return value;
        [[fallthrough]];
    case ParamType::Pair:
        if (auto v = std::get_if<int64_t>(&value)) {
            if (auto checked = checkedInt(*v))
                return Param(std::vector<int64_t>{*checked, *checked});
            return std::nullopt;
        }
        if (auto v = std::get_if<std::vector<int64_t>>(&value))
            return checkedPair(*v);
        return wrongType();
    case ParamType::Shape:
        if (auto v = std::get_if<std::vector<int64_t>>(&value)) {
            if (std::any_of(v->begin(), v->end(), tooLarge)) {
                error = name + " is too large: " + formatParam(*v);
                return std::nullopt;
            }
            return value;
        }
        return wrongType();
    }
    return wrongType();
}

} // namespace

const Param& LayerParams::get(const std::string& name) const {
    auto it = m_values.find(name);
    if (it == m_values.end())
        throw InternalError("layer parameter \"" + name + "\" was not resolved");
    return it->second;
}

int64_t LayerParams::getInt(const std::string& name) const {
    if (auto v = std::get_if<int64_t>(&get(name)))
        return *v;
    throw InternalError("layer parameter \"" + name + "\" is not an integer");
}

double LayerParams::getFloat(const std::string& name) const {
    if (auto v = std::get_if<double>(&get(name)))
        return *v;
    throw InternalError("layer parameter \"" + name + "\" is not a real number");
}

bool LayerParams::getBool(const std::string& name) const {
    if (auto v = std::get_if<bool>(&get(name)))
        return *v;
    throw InternalError("layer parameter \"" + name + "\" is not a boolean");
}

std::array<int64_t, 2> LayerParams::getPair(const std::string& name) const {
    auto v = std::get_if<std::vector<int64_t>>(&get(name));
    if (v && v->size() == 2)
        return {(*v)[0], (*v)[1]};
    throw InternalError("layer parameter \"" + name + "\" is not an [h, w] pair");
}

const Shape& LayerParams::getShape(const std::string& name) const {
    if (auto v = std::get_if<std::vector<int64_t>>(&get(name)))
        return *v;
    throw InternalError("layer parameter \"" + name + "\" is not a list");
}

const std::vector<LayerKind>& layerKinds() {
    static const std::vector<LayerKind> table = makeTable();
    return table;
}

const LayerKind* findLayerKind(const std::string& name) {
    for (const auto& kind : layerKinds())
        if (name == kind.info.name)
            return &kind;
    return nullptr;
}

LayerParams resolveParams(const LayerTypeInfo& info, const std::map<std::string, Param>& written, Messages& problems) {
    LayerParams resolved;
    std::vector<std::string> accepted;
    for (const auto& p : info.params)
        accepted.push_back(p.name);
    for (const auto& [key, value] : written) {
        if (std::find(accepted.begin(), accepted.end(), key) != accepted.end())
            continue;
        std::string message = "unknown parameter \"" + key + "\"";
        const std::string guess = closestName(key, accepted);
        if (!guess.empty())
            message += " (did you mean \"" + guess + "\"?)";
        if (accepted.empty()) {
            message += "; " + std::string(info.name) + " takes no parameters";
        } else {
            message += "; " + std::string(info.name) + " accepts ";
            for (size_t i = 0; i < accepted.size(); ++i)
                message += (i ? ", " : "") + accepted[i];
        }
        problems.push_back(message);
    }
    for (const auto& p : info.params) {
        auto it = written.find(p.name);
        if (it != written.end()) {
            std::string error;
            if (auto value = convert(p, it->second, error))
                resolved.set(p.name, std::move(*value));
            else
                problems.push_back(error);
        } else if (p.defaultValue == nullptr) {
            problems.push_back(std::string("missing required parameter \"") + p.name + "\" (" + toString(p.type) +
                               ": " + p.description + ")");
        } else {
            auto value = paramFromJson(nlohmann::json::parse(p.defaultValue));
            std::string error;
            if (value)
                value = convert(p, *value, error);
            // "null" defaults leave the parameter absent; the layer derives it.
            if (value)
                resolved.set(p.name, std::move(*value));
        }
    }
    return resolved;
}

std::string closestName(const std::string& word, const std::vector<std::string>& candidates) {
    const std::string w = lower(word);
    std::string best;
    size_t bestDistance = std::string::npos;
    for (const auto& candidate : candidates) {
        const size_t d = editDistance(w, lower(candidate));
        if (d < bestDistance) {
            bestDistance = d;
            best = candidate;
        }
    }
    // A plausible typo: a few edits, and fewer than half of the word.
    const size_t limit = std::max<size_t>(1, std::min<size_t>(3, w.size() / 2));
    return bestDistance <= limit ? best : std::string();
}

} // namespace detail

const char* toString(ParamType type) {
    switch (type) {
    case ParamType::Int: return "an integer";
    case ParamType::Float: return "a number";
    case ParamType::Bool: return "true or false";
    case ParamType::String: return "a string";
    case ParamType::Pair: return "an integer or an [h, w] pair";
    case ParamType::Shape: return "a list of integers";
    case ParamType::Padding: return "\"valid\", \"same\", an integer or an [h, w] pair";
    }
    return "a value";
}

const std::vector<LayerTypeInfo>& layerTypes() {
    static const std::vector<LayerTypeInfo> infos = [] {
        std::vector<LayerTypeInfo> out;
        for (const auto& kind : detail::layerKinds())
            out.push_back(kind.info);
        return out;
    }();
    return infos;
}

const LayerTypeInfo* findLayerType(const std::string& name) {
    const detail::LayerKind* kind = detail::findLayerKind(name);
    // layerTypes() mirrors the table in order, so the same index finds the public entry.
    return kind ? &layerTypes()[static_cast<size_t>(kind - detail::layerKinds().data())] : nullptr;
}

} // namespace mppdl::model
