#include "mppdl/model/keras.h"

#include "mppdl/core/error.h"
#include "mppdl/model/analysis.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <set>

namespace mppdl::model {

namespace {

using nlohmann::json;

// ---------------------------------------------------------------- Keras -> mppdl

const std::map<std::string, std::string> kActivationLayers = {
    {"relu", "ReLU"}, {"softmax", "Softmax"}, {"tanh", "Tanh"}, {"sigmoid", "Sigmoid"}};

std::string jsonQuoted(const std::string& s) { return json(s).dump(); }

struct KerasReader {
    std::string origin;
    Architecture arch;
    std::set<std::string> names;    // taken by layers so far
    std::set<std::string> reserved; // Keras' own names, kept for their layers
    Shape inputShape;
    bool haveInput = false;

    // Where messages about layers[index] start.
    std::string at(size_t index, const std::string& name, const std::string& cls) const {
        return origin + ": layers[" + std::to_string(index) + "] " + jsonQuoted(name) + " (" + cls + "): ";
    }

    // `wanted`, or with a counter when taken; a generated name also avoids Keras' own names.
    std::string uniqueName(const std::string& wanted, bool generated) {
        std::string name = wanted;
        for (int i = 2; names.count(name) || (generated && reserved.count(name)); ++i)
            name = wanted + "_" + std::to_string(i);
        names.insert(name);
        return name;
    }

    // The output shape of the last layer so far, from analyze(); empty if unknown.
    Shape currentShape() const {
        const auto analysis = analyze(arch);
        return analysis.ok() ? analysis.outputShape : Shape{};
    }
};

// An integer or a list of two integers as (h, w); `what` for messages.
std::array<int64_t, 2> pairOf(const json& v, const std::string& where, const std::string& key) {
    if (v.is_number_integer())
        return {v.get<int64_t>(), v.get<int64_t>()};
    if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number_integer())
        return {v[0].get<int64_t>(), v[1].get<int64_t>()};
    if (v.is_array() && v.size() == 1 && v[0].is_number_integer())
        return {v[0].get<int64_t>(), v[0].get<int64_t>()};
    throw ConfigError(where + key + " must be an integer or a list of two, not " + v.dump());
}

Param pairParam(const std::array<int64_t, 2>& p) {
    if (p[0] == p[1])
        return Param(p[0]);
    return Param(std::vector<int64_t>{p[0], p[1]});
}

// TensorFlow's "same" padding for one dimension: the total it pads.
int64_t samePadTotal(int64_t size, int64_t kernel, int64_t stride) {
    const int64_t out = (size + stride - 1) / stride;
    return std::max<int64_t>((out - 1) * stride + kernel - size, 0);
}

void checkChannelsLast(const json& config, const std::string& where) {
    if (config.contains("data_format") && !config["data_format"].is_null() && config["data_format"] != "channels_last")
        throw ConfigError(where + "data_format " + config["data_format"].dump() +
                          " is not supported; mppdl imports channels_last models only");
}

void checkOne(const json& config, const std::string& key, const std::string& where) {
    if (!config.contains(key) || config[key].is_null())
        return;
    const auto& v = config[key];
    bool one = false;
    if (v.is_number_integer())
        one = v.get<int64_t>() == 1;
    else if (v.is_array())
        one = std::all_of(v.begin(), v.end(), [](const json& e) { return e == 1; });
    if (!one)
        throw ConfigError(where + key + " " + v.dump() + " is not supported; mppdl needs 1");
}

// The activation of a Conv2D/Dense/Activation config: "" for linear; ConfigError for others.
std::string activationOf(const json& config, const std::string& where) {
    if (!config.contains("activation") || config["activation"].is_null())
        return "";
    const auto& v = config["activation"];
    std::string name;
    if (v.is_string())
        name = v.get<std::string>();
    else if (v.is_object() && v.contains("class_name") && v["class_name"].is_string())
        name = v["class_name"].get<std::string>(); // a serialized activation function
    else
        throw ConfigError(where + "activation " + v.dump() + " is not supported");
    if (name == "linear")
        return "";
    if (!kActivationLayers.count(name))
        throw ConfigError(where + "activation " + jsonQuoted(name) +
                          " is not supported; mppdl has relu, softmax, tanh, sigmoid and linear");
    return name;
}

// "valid" / "same" as mppdl padding for a window over the current input; `stride1Same` when
// mppdl's own "same" applies (Conv2D with stride 1).
std::optional<Param> paddingOf(KerasReader& r, const json& config, const std::array<int64_t, 2>& kernel,
                               const std::array<int64_t, 2>& stride, bool stride1Same, const std::string& where) {
    const std::string padding = config.contains("padding") && config["padding"].is_string()
                                    ? config["padding"].get<std::string>()
                                    : "valid";
    if (padding == "valid")
        return std::nullopt;
    if (padding != "same")
        throw ConfigError(where + "padding " + jsonQuoted(padding) + " is not supported; mppdl has valid and same");
    if (stride1Same && stride[0] == 1 && stride[1] == 1)
        return Param(std::string("same"));
    // Checked here too: TensorFlow's arithmetic below divides by the stride.
    for (int d = 0; d < 2; ++d)
        if (kernel[d] < 1 || stride[d] < 1)
            throw ConfigError(where + "kernel " + std::to_string(kernel[0]) + "x" + std::to_string(kernel[1]) +
                              " and strides " + std::to_string(stride[0]) + "x" + std::to_string(stride[1]) +
                              " must be positive");
    const Shape shape = r.currentShape();
    if (shape.size() != 3)
        throw ConfigError(where + "padding \"same\" needs a known 3-D input shape");
    std::array<int64_t, 2> pad{};
    for (int d = 0; d < 2; ++d) {
        const int64_t total = samePadTotal(shape[1 + d], kernel[d], stride[d]);
        if (total % 2 != 0)
            throw ConfigError(where + "padding \"same\" pads unevenly on a " + formatShape(shape) + " input (kernel " +
                              std::to_string(kernel[0]) + "x" + std::to_string(kernel[1]) + ", stride " +
                              std::to_string(stride[0]) + "x" + std::to_string(stride[1]) +
                              "); mppdl pads both sides equally");
        pad[d] = total / 2;
    }
    if (pad[0] == 0 && pad[1] == 0)
        return std::nullopt;
    return pairParam(pad);
}

void readInputShape(KerasReader& r, const json& config, const std::string& where) {
    const char* keys[] = {"batch_input_shape", "batch_shape"};
    for (const char* key : keys) {
        if (!config.contains(key) || config[key].is_null())
            continue;
        const auto& v = config[key];
        if (!v.is_array() || (v.size() != 2 && v.size() != 4))
            throw ConfigError(where + key + " " + v.dump() +
                              " is not supported; mppdl takes [null, H, W, C] or [null, F]");
        std::vector<int64_t> dims;
        for (size_t i = 1; i < v.size(); ++i) {
            if (!v[i].is_number_integer() || v[i].get<int64_t>() <= 0)
                throw ConfigError(where + key + " " + v.dump() + " needs positive sizes after the batch dimension");
            dims.push_back(v[i].get<int64_t>());
        }
        r.inputShape = dims.size() == 3 ? Shape{dims[2], dims[0], dims[1]} : Shape{dims[0]};
        r.haveInput = true;
        return;
    }
}

void addLayer(KerasReader& r, const std::string& name, const std::string& type,
              std::map<std::string, Param> params = {}, bool generated = false) {
    Layer layer;
    layer.name = r.uniqueName(name, generated);
    layer.type = type;
    layer.params = std::move(params);
    r.arch.layers.push_back(std::move(layer));
}

void addActivation(KerasReader& r, const std::string& layerName, const std::string& activation) {
    if (!activation.empty())
        addLayer(r, layerName + "_" + activation, kActivationLayers.at(activation), {}, true);
}

void readLayer(KerasReader& r, size_t index, const json& layer) {
    if (!layer.is_object() || !layer.contains("class_name") || !layer["class_name"].is_string())
        throw ConfigError(r.origin + ": layers[" + std::to_string(index) + "] is not a Keras layer object");
    const std::string cls = layer["class_name"].get<std::string>();
    const json config = layer.contains("config") && layer["config"].is_object() ? layer["config"] : json::object();
    std::string name = config.contains("name") && config["name"].is_string() ? config["name"].get<std::string>() : "";
    if (name.empty())
        name = cls + "_" + std::to_string(index);
    std::replace(name.begin(), name.end(), '.', '_'); // mppdl names have no dots
    const std::string where = r.at(index, name, cls);

    static const std::set<std::string> known = {"InputLayer", "Conv2D",       "MaxPooling2D", "Dense",
                                                "Dropout",    "Flatten",      "Activation",   "LeakyReLU",
                                                "MaxPool2D",  "Convolution2D"};
    if (!known.count(cls))
        throw ConfigError(where + "layer class " + cls +
                          " is not supported; mppdl imports InputLayer, Conv2D, MaxPooling2D, Dense, "
                          "Dropout, Flatten, Activation and LeakyReLU");

    readInputShape(r, config, where);
    if (!r.haveInput)
        throw ConfigError(where + "the first layer needs a batch_input_shape ([null, H, W, C] or [null, F])");
    if (r.arch.layers.empty()) {
        // An image model's rows are channels_last, as Keras (and MADlib, which feeds it) keep them.
        std::map<std::string, Param> input = {{"shape", Param(r.inputShape)}};
        if (r.inputShape.size() == 3)
            input["layout"] = Param(std::string("hwc"));
        addLayer(r, cls == "InputLayer" ? name : "input", "Input", std::move(input), cls != "InputLayer");
    }
    if (cls == "InputLayer")
        return;
    checkChannelsLast(config, where);

    if (cls == "Conv2D" || cls == "Convolution2D") {
        checkOne(config, "dilation_rate", where);
        checkOne(config, "groups", where);
        if (!config.contains("filters") || !config["filters"].is_number_integer())
            throw ConfigError(where + "filters must be an integer");
        if (!config.contains("kernel_size"))
            throw ConfigError(where + "kernel_size is missing");
        const auto kernel = pairOf(config["kernel_size"], where, "kernel_size");
        const auto stride = config.contains("strides") && !config["strides"].is_null()
                                ? pairOf(config["strides"], where, "strides")
                                : std::array<int64_t, 2>{1, 1};
        const std::string activation = activationOf(config, where);
        std::map<std::string, Param> params{{"filters", Param(config["filters"].get<int64_t>())},
                                            {"kernel_size", pairParam(kernel)}};
        if (stride[0] != 1 || stride[1] != 1)
            params["stride"] = pairParam(stride);
        if (auto padding = paddingOf(r, config, kernel, stride, true, where))
            params["padding"] = *padding;
        if (config.contains("use_bias") && config["use_bias"] == false)
            params["bias"] = Param(false);
        addLayer(r, name, "Conv2D", std::move(params));
        addActivation(r, r.arch.layers.back().name, activation);
    } else if (cls == "MaxPooling2D" || cls == "MaxPool2D") {
        const auto pool = config.contains("pool_size") && !config["pool_size"].is_null()
                              ? pairOf(config["pool_size"], where, "pool_size")
                              : std::array<int64_t, 2>{2, 2};
        const auto stride = config.contains("strides") && !config["strides"].is_null()
                                ? pairOf(config["strides"], where, "strides")
                                : pool;
        std::map<std::string, Param> params{{"pool_size", pairParam(pool)}};
        if (stride != pool)
            params["stride"] = pairParam(stride);
        if (auto padding = paddingOf(r, config, pool, stride, false, where))
            params["padding"] = *padding;
        addLayer(r, name, "MaxPool2D", std::move(params));
    } else if (cls == "Dense") {
        if (!config.contains("units") || !config["units"].is_number_integer())
            throw ConfigError(where + "units must be an integer");
        const std::string activation = activationOf(config, where);
        std::map<std::string, Param> params{{"units", Param(config["units"].get<int64_t>())}};
        if (config.contains("use_bias") && config["use_bias"] == false)
            params["bias"] = Param(false);
        addLayer(r, name, "Dense", std::move(params));
        addActivation(r, r.arch.layers.back().name, activation);
    } else if (cls == "Dropout") {
        if (!config.contains("rate") || !config["rate"].is_number())
            throw ConfigError(where + "rate must be a number");
        if (config.contains("noise_shape") && !config["noise_shape"].is_null())
            throw ConfigError(where + "noise_shape " + config["noise_shape"].dump() + " is not supported");
        addLayer(r, name, "Dropout", {{"rate", Param(config["rate"].get<double>())}});
    } else if (cls == "Flatten") {
        addLayer(r, name, "Flatten");
    } else if (cls == "Activation") {
        const std::string activation = activationOf(config, where);
        if (activation.empty())
            return; // linear: the identity
        addLayer(r, name, kActivationLayers.at(activation));
    } else if (cls == "LeakyReLU") {
        double slope = 0.3; // Keras' default
        for (const char* key : {"alpha", "negative_slope"})
            if (config.contains(key) && config[key].is_number())
                slope = config[key].get<double>();
        addLayer(r, name, "LeakyReLU", {{"negative_slope", Param(slope)}});
    }
}

// ---------------------------------------------------------------- mppdl -> Keras

std::array<int64_t, 2> pairParamValue(const Layer& layer, const std::string& key, std::array<int64_t, 2> fallback) {
    auto it = layer.params.find(key);
    if (it == layer.params.end())
        return fallback;
    if (const auto* i = std::get_if<int64_t>(&it->second))
        return {*i, *i};
    if (const auto* l = std::get_if<std::vector<int64_t>>(&it->second); l && l->size() == 2)
        return {(*l)[0], (*l)[1]};
    if (const auto* l = std::get_if<std::vector<int64_t>>(&it->second); l && l->size() == 1)
        return {(*l)[0], (*l)[0]};
    throw ConfigError("layer " + jsonQuoted(layer.name) + ": " + key + " is not an integer or a pair");
}

json pairJson(const std::array<int64_t, 2>& p) { return json::array({p[0], p[1]}); }

// Keras' padding name for mppdl padding on an input of `shape`; ConfigError when Keras has none.
std::string kerasPadding(const Layer& layer, const Shape& shape, const std::array<int64_t, 2>& kernel,
                         const std::array<int64_t, 2>& stride) {
    auto it = layer.params.find("padding");
    if (it != layer.params.end()) {
        if (const auto* s = std::get_if<std::string>(&it->second)) {
            if (*s == "valid" || *s == "same")
                return *s;
        }
    }
    const auto pad = pairParamValue(layer, "padding", {0, 0});
    if (pad[0] == 0 && pad[1] == 0)
        return "valid";
    if (shape.size() == 3) {
        bool same = true;
        for (int d = 0; d < 2; ++d) {
            const int64_t total = samePadTotal(shape[1 + d], kernel[d], stride[d]);
            // Equal padding gives Keras' output size, and TF pads both sides alike when the total is even.
            same = same && total == 2 * pad[d];
        }
        if (same)
            return "same";
    }
    throw ConfigError("layer " + jsonQuoted(layer.name) + " (" + layer.type + "): padding " + std::to_string(pad[0]) +
                      "x" + std::to_string(pad[1]) + " is neither Keras' valid nor its same padding on a " +
                      formatShape(shape) + " input");
}

const std::map<std::string, std::string> kActivationNames = {
    {"ReLU", "relu"}, {"Softmax", "softmax"}, {"Tanh", "tanh"}, {"Sigmoid", "sigmoid"}};

} // namespace

Architecture fromKerasJson(const std::string& text, const std::string& origin) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::parse_error& e) {
        throw ConfigError(origin + ": not JSON: " + e.what());
    }
    if (doc.is_string()) { // a JSON column read as text sometimes holds the model as a JSON string
        try {
            doc = json::parse(doc.get<std::string>());
        } catch (const json::parse_error& e) {
            throw ConfigError(origin + ": not a Keras model JSON: a string that is not JSON");
        }
    }
    if (!doc.is_object() || !doc.contains("class_name") || !doc["class_name"].is_string() || !doc.contains("config"))
        throw ConfigError(origin + ": not a Keras model JSON (an object with \"class_name\" and \"config\")");
    const std::string cls = doc["class_name"].get<std::string>();
    if (cls != "Sequential")
        throw ConfigError(origin + ": Keras model class " + cls +
                          " is not supported; mppdl imports Sequential models only");
    KerasReader r;
    r.origin = origin;
    const json& config = doc["config"];
    const json* layers = nullptr;
    if (config.is_array()) {
        layers = &config;
    } else if (config.is_object() && config.contains("layers") && config["layers"].is_array()) {
        layers = &config["layers"];
        if (config.contains("name") && config["name"].is_string())
            r.arch.name = config["name"].get<std::string>();
    } else {
        throw ConfigError(origin + ": the Sequential model's config has no \"layers\" list");
    }
    if (layers->empty())
        throw ConfigError(origin + ": the Sequential model has no layers");
    if (r.arch.name.empty())
        r.arch.name = "keras_model";
    r.arch.description = "Imported from Keras JSON (" + origin + ")";
    // Keras' own layer names are kept where they are free; reserve them so that generated
    // names ("input", "conv2d_relu") never take one a later layer has.
    for (const auto& layer : *layers)
        if (layer.is_object() && layer.contains("config") && layer["config"].is_object() &&
            layer["config"].contains("name") && layer["config"]["name"].is_string())
            r.reserved.insert(layer["config"]["name"].get<std::string>());
    for (size_t i = 0; i < layers->size(); ++i)
        readLayer(r, i, (*layers)[i]);
    if (r.arch.layers.empty())
        throw ConfigError(origin + ": the Sequential model has no layers");

    const auto analysis = analyze(r.arch);
    if (!analysis.ok())
        throw ConfigError(origin + ": the converted architecture is not valid:\n" + formatProblems(analysis.problems));
    return r.arch;
}

std::string toKerasJson(const Architecture& a) {
    const auto analysis = analyze(a);
    if (!analysis.ok())
        throw ConfigError("invalid architecture '" + a.name + "':\n" + formatProblems(analysis.problems));
    std::map<std::string, const LayerAnalysis*> shapes;
    for (const auto& l : analysis.layers)
        shapes[l.name] = &l;
    if (a.layers.empty() || a.layers.front().type != "Input")
        throw ConfigError("architecture '" + a.name + "': Keras' Sequential needs the Input layer first");
    for (size_t i = 1; i < a.layers.size(); ++i) {
        const auto& l = a.layers[i];
        if (!(l.inputs.empty() || (l.inputs.size() == 1 && l.inputs[0] == a.layers[i - 1].name)))
            throw ConfigError("layer " + jsonQuoted(l.name) + " (" + l.type +
                              "): Keras' Sequential takes a chain of layers, each fed by the one before");
    }
    if (!a.output.empty() && a.output != a.layers.back().name)
        throw ConfigError("architecture '" + a.name + "': the output must be the last layer for Keras' Sequential");

    const Shape& inShape = analysis.inputShape;
    json batchShape = json::array({nullptr});
    if (inShape.size() == 3) {
        batchShape.push_back(inShape[1]);
        batchShape.push_back(inShape[2]);
        batchShape.push_back(inShape[0]);
    } else {
        for (auto d : inShape)
            batchShape.push_back(d);
    }

    json layers = json::array();
    for (size_t i = 1; i < a.layers.size(); ++i) {
        const Layer& l = a.layers[i];
        const Shape in = shapes.count(l.name) && !shapes[l.name]->inputShapes.empty()
                             ? shapes[l.name]->inputShapes.front()
                             : Shape{};
        json cfg = {{"name", l.name}, {"trainable", true}, {"dtype", "float32"}};
        std::string cls;
        // An activation right after a Conv2D or Dense folds into it.
        auto foldActivation = [&]() -> std::string {
            if (i + 1 < a.layers.size()) {
                auto it = kActivationNames.find(a.layers[i + 1].type);
                if (it != kActivationNames.end()) {
                    ++i;
                    return it->second;
                }
            }
            return "linear";
        };
        auto boolParam = [&](const std::string& key, bool fallback) {
            auto it = l.params.find(key);
            const bool* b = it == l.params.end() ? nullptr : std::get_if<bool>(&it->second);
            return b ? *b : fallback;
        };
        if (l.type == "Conv2D") {
            cls = "Conv2D";
            const auto kernel = pairParamValue(l, "kernel_size", {1, 1});
            const auto stride = pairParamValue(l, "stride", {1, 1});
            const auto dilation = pairParamValue(l, "dilation", {1, 1});
            if (dilation[0] != 1 || dilation[1] != 1)
                throw ConfigError("layer " + jsonQuoted(l.name) + " (Conv2D): dilation is not written to Keras JSON");
            cfg["filters"] = std::get<int64_t>(l.params.at("filters"));
            cfg["kernel_size"] = pairJson(kernel);
            cfg["strides"] = pairJson(stride);
            cfg["padding"] = kerasPadding(l, in, kernel, stride);
            cfg["data_format"] = "channels_last";
            cfg["dilation_rate"] = json::array({1, 1});
            cfg["groups"] = 1;
            cfg["use_bias"] = boolParam("bias", true);
            cfg["activation"] = foldActivation();
        } else if (l.type == "MaxPool2D") {
            cls = "MaxPooling2D";
            const auto pool = pairParamValue(l, "pool_size", {1, 1});
            const auto stride = pairParamValue(l, "stride", pool);
            cfg["pool_size"] = pairJson(pool);
            cfg["strides"] = pairJson(stride);
            cfg["padding"] = kerasPadding(l, in, pool, stride);
            cfg["data_format"] = "channels_last";
        } else if (l.type == "Dense") {
            cls = "Dense";
            cfg["units"] = std::get<int64_t>(l.params.at("units"));
            cfg["use_bias"] = boolParam("bias", true);
            cfg["activation"] = foldActivation();
        } else if (l.type == "Dropout") {
            cls = "Dropout";
            const auto& rate = l.params.at("rate");
            cfg["rate"] = std::holds_alternative<double>(rate) ? std::get<double>(rate)
                                                               : static_cast<double>(std::get<int64_t>(rate));
            cfg["noise_shape"] = nullptr;
            cfg["seed"] = nullptr;
        } else if (l.type == "Flatten") {
            cls = "Flatten";
            cfg["data_format"] = "channels_last";
        } else if (kActivationNames.count(l.type)) {
            cls = "Activation";
            cfg["activation"] = kActivationNames.at(l.type);
        } else if (l.type == "LeakyReLU") {
            cls = "LeakyReLU";
            double slope = 0.01;
            if (auto it = l.params.find("negative_slope"); it != l.params.end())
                slope = std::holds_alternative<double>(it->second) ? std::get<double>(it->second)
                                                                   : static_cast<double>(std::get<int64_t>(it->second));
            cfg["alpha"] = slope;
        } else {
            throw ConfigError("layer " + jsonQuoted(l.name) + " (" + l.type +
                              "): Keras JSON export supports Conv2D, MaxPool2D, Dense, Dropout, Flatten, ReLU, "
                              "LeakyReLU, Softmax, Tanh and Sigmoid layers in a sequence");
        }
        if (layers.empty())
            cfg["batch_input_shape"] = batchShape;
        layers.push_back({{"class_name", cls}, {"config", cfg}});
    }
    if (layers.empty())
        throw ConfigError("architecture '" + a.name + "': Keras' Sequential needs at least one layer after Input");
    const json doc = {{"class_name", "Sequential"},
                      {"config", {{"name", a.name}, {"layers", layers}}},
                      {"keras_version", "2.11.0"},
                      {"backend", "tensorflow"}};
    return doc.dump() + "\n";
}

} // namespace mppdl::model
