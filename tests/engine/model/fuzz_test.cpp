#include "model/graph_module.h"
#include "model/model_test_util.h"
#include "mppdl/core/error.h"
#include "mppdl/model/keras.h"
#include "mppdl/model/layers.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace mppdl::model {
namespace {

using nlohmann::json;

class Mutator {
public:
    explicit Mutator(unsigned seed) : m_random(seed) {}

    size_t below(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(m_random); }

    json randomValue() {
        static const json values[] = {
            0,      -1,      1,   2,    3,     5,      7,      64,        1000,        0.5,           1.5,        -0.1,
            "same", "valid", "x", true, false, {2, 2}, {0, 3}, {1, 2, 3}, {3, 28, 28}, json::array(), {1, 28, 28}};
        return values[below(std::size(values))];
    }

    std::string randomName(const json& layers) {
        if (!layers.empty() && below(5) != 0) {
            const json& layer = layers[below(layers.size())];
            if (layer.contains("name") && layer["name"].is_string())
                return layer["name"];
        }
        static const char* const others[] = {"nowhere", "", "input", "a.b"};
        return others[below(std::size(others))];
    }

    std::string randomType() {
        const auto& types = layerTypes();
        if (below(6) == 0)
            return below(2) ? "Conv3D" : "dense";
        return types[below(types.size())].name;
    }

    void mutate(json& doc) {
        json& layers = doc["layers"];
        if (layers.empty()) {
            layers.push_back({{"type", randomType()}});
            return;
        }
        const size_t i = below(layers.size());
        json& layer = layers[i];
        static const char* const keys[] = {"filters",  "kernel_size", "stride", "padding",        "units",
                                           "rate",     "pool_size",   "shape",  "axis",           "bias",
                                           "dilation", "momentum",    "eps",    "negative_slope", "bogus"};
        switch (below(11)) {
        case 0: { // set a parameter, often one the type has
            std::string key = keys[below(std::size(keys))];
            for (const auto& item : layer.items())
                if (item.key() != "name" && item.key() != "type" && item.key() != "inputs" && below(2))
                    key = item.key();
            layer[key] = randomValue();
            break;
        }
        case 1: // scale a numeric parameter
            for (auto& item : layer.items())
                if (item.value().is_number_integer() && below(2))
                    item.value() = item.value().get<int64_t>() * static_cast<int64_t>(below(4)) +
                                   static_cast<int64_t>(below(3)) - 1;
            break;
        case 2: layers.erase(i); break;
        case 3: layers.insert(layers.begin() + static_cast<std::ptrdiff_t>(below(layers.size())), layer); break;
        case 4: std::swap(layers[i], layers[below(layers.size())]); break;
        case 5: layer["type"] = randomType(); break;
        case 6: {
            json inputs = json::array();
            const size_t n = 1 + below(3);
            for (size_t k = 0; k < n; ++k)
                inputs.push_back(randomName(layers));
            layer["inputs"] = inputs;
            break;
        }
        case 7: {
            std::vector<std::string> params;
            for (const auto& item : layer.items())
                if (item.key() != "type")
                    params.push_back(item.key());
            if (!params.empty())
                layer.erase(params[below(params.size())]);
            break;
        }
        case 8: layer["name"] = randomName(layers); break;
        case 9: doc["output"] = randomName(layers); break;
        default:
            layers.insert(layers.begin() + static_cast<std::ptrdiff_t>(below(layers.size() + 1)),
                          json{{"type", randomType()}});
            break;
        }
    }

    // Damages the text itself, for the JSON parser and the structural checks.
    void damage(std::string& text) {
        static const char chars[] = "{}[],:\"0a- \n";
        const size_t at = below(text.size());
        if (below(2))
            text.erase(at, 1 + below(3));
        else
            text.insert(at, 1, chars[below(sizeof(chars) - 1)]);
    }

private:
    std::mt19937 m_random;
};

/// MPPDL_FUZZ_ROUNDS and MPPDL_FUZZ_SEED run a longer or different search by hand.
int fuzzRounds(int fallback) {
    const char* text = std::getenv("MPPDL_FUZZ_ROUNDS");
    return text ? std::atoi(text) : fallback;
}
unsigned fuzzSeed(unsigned fallback) {
    const char* text = std::getenv("MPPDL_FUZZ_SEED");
    return text ? static_cast<unsigned>(std::atol(text)) : fallback;
}

/// Builds a valid `design` and runs a batch of two through it, checking the output's shape; false
/// for a design too big for a unit test (mutations make some).
bool buildsAndRuns(const Architecture& design, const Analysis& analysis) {
    if (analysis.totalParams > 20'000'000 || analysis.totalFlops > 1'000'000'000)
        return false;
    GraphModule module(design);
    std::vector<int64_t> batch = {2};
    batch.insert(batch.end(), analysis.inputShape.begin(), analysis.inputShape.end());
    const torch::Tensor y = module->forward(torch::randn(batch));
    std::vector<int64_t> expected = {2};
    expected.insert(expected.end(), analysis.outputShape.begin(), analysis.outputShape.end());
    EXPECT_EQ(y.sizes().vec(), expected);
    return true;
}

TEST(ModelFuzz, MutatedExamplesNeverBreakParsingAnalysisOrTheBuilder) {
    torch::manual_seed(0);
    std::vector<json> examples;
    for (const auto& file : test::exampleFiles()) {
        std::ifstream in(test::examplePath(file));
        examples.push_back(json::parse(in));
    }
    const int rounds = fuzzRounds(400);
    Mutator mutator(fuzzSeed(12345u));
    int parsed = 0, valid = 0, built = 0;
    for (int round = 0; round < rounds; ++round) {
        json doc = examples[mutator.below(examples.size())];
        const size_t mutations = 1 + mutator.below(3);
        for (size_t m = 0; m < mutations; ++m)
            mutator.mutate(doc);
        std::string text = doc.dump(2);
        if (mutator.below(6) == 0)
            mutator.damage(text);
        SCOPED_TRACE("round " + std::to_string(round) + ":\n" + text);

        Architecture design;
        try {
            design = parseArchitecture(text, "fuzz.json");
        } catch (const ConfigError&) {
            continue;
        } catch (const std::exception& e) {
            FAIL() << "parse threw something other than ConfigError: " << e.what();
        }
        ++parsed;
        Analysis analysis;
        try {
            analysis = analyze(design);
        } catch (const std::exception& e) {
            FAIL() << "analyze threw: " << e.what();
        }
        if (!analysis.ok()) {
            for (const auto& p : analysis.problems)
                EXPECT_FALSE(p.where.empty() || p.message.empty()) << formatProblems({p});
            continue;
        }
        ++valid;
        try {
            built += buildsAndRuns(design, analysis) ? 1 : 0;
        } catch (const std::exception& e) {
            FAIL() << "a design analyze() accepts failed to build or run: " << e.what();
        }
    }
    // The mutations must exercise all three outcomes, or the test proves little.
    EXPECT_GT(parsed, rounds / 2);
    EXPECT_GT(parsed - valid, rounds / 4);
    EXPECT_GT(built, rounds / 10);
    std::cout << "fuzzed " << rounds << " architecture JSONs: parsed " << parsed << ", valid " << valid << ", built "
              << built << "\n";
}


/// Damages a Keras model JSON's layers: their class names, their configs' values, their order.
void mutateKeras(Mutator& mutator, json& doc) {
    if (!doc.contains("config") || !doc["config"].is_object() || !doc["config"]["layers"].is_array()) {
        doc["config"] = mutator.randomValue();
        return;
    }
    json& layers = doc["config"]["layers"];
    if (layers.empty())
        return;
    const size_t i = mutator.below(layers.size());
    json& layer = layers[i];
    static const char* const classes[] = {"Conv2D",  "Dense",       "MaxPooling2D",      "Flatten", "Dropout",
                                          "ReLU",    "InputLayer",  "Softmax",           "LSTM",    "Conv3D",
                                          "Reshape", "AveragePool", "BatchNormalization"};
    static const char* const keys[] = {"filters", "kernel_size", "strides",     "padding",
                                       "units",   "rate",        "pool_size",   "activation",
                                       "name",    "use_bias",    "data_format", "batch_input_shape"};
    static const json values[] = {"relu",
                                  "softmax",
                                  "same",
                                  "channels_first",
                                  "elu",
                                  nullptr,
                                  json::object(),
                                  json{{"class_name", "X"}},
                                  json{nullptr, 0, 0, 1},
                                  json{nullptr, 28, 28, 1},
                                  json{nullptr, -3}};
    switch (mutator.below(6)) {
    case 0: layer["class_name"] = classes[mutator.below(std::size(classes))]; break;
    case 1:
        if (layer["config"].is_object())
            layer["config"][keys[mutator.below(std::size(keys))]] = mutator.below(2)
                                                                        ? mutator.randomValue()
                                                                        : values[mutator.below(std::size(values))];
        else
            layer["config"] = json::object();
        break;
    case 2:
        if (layer["config"].is_object() && !layer["config"].empty()) {
            auto it = layer["config"].begin();
            std::advance(it, static_cast<std::ptrdiff_t>(mutator.below(layer["config"].size())));
            layer["config"].erase(it);
        }
        break;
    case 3: layers.erase(i); break;
    case 4: std::swap(layers[i], layers[mutator.below(layers.size())]); break;
    default: layers.insert(layers.begin() + static_cast<std::ptrdiff_t>(mutator.below(layers.size())), layer); break;
    }
}

TEST(ModelFuzz, MutatedKerasJsonNeverBreaksTheImportOrTheBuilder) {
    torch::manual_seed(0);
    // The Keras JSON of every example Keras' Sequential can say.
    std::vector<json> examples;
    for (const auto& file : test::exampleFiles()) {
        std::ifstream in(test::examplePath(file));
        const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        try {
            examples.push_back(json::parse(toKerasJson(parseArchitecture(text, file))));
        } catch (const ConfigError&) {
        }
    }
    ASSERT_GE(examples.size(), 2u);
    const int rounds = fuzzRounds(400);
    Mutator mutator(fuzzSeed(54321u));
    int imported = 0, built = 0;
    for (int round = 0; round < rounds; ++round) {
        json doc = examples[mutator.below(examples.size())];
        const size_t mutations = 1 + mutator.below(3);
        for (size_t m = 0; m < mutations; ++m)
            mutateKeras(mutator, doc);
        std::string text = doc.dump();
        if (mutator.below(5) == 0)
            mutator.damage(text);
        SCOPED_TRACE("round " + std::to_string(round) + ":\n" + text);
        Architecture design;
        try {
            design = fromKerasJson(text, "fuzz.json");
        } catch (const ConfigError& e) {
            EXPECT_NE(std::string(e.what()).find("fuzz.json"), std::string::npos) << e.what();
            continue;
        } catch (const std::exception& e) {
            FAIL() << "the Keras import threw something other than ConfigError: " << e.what();
        }
        ++imported;
        const Analysis analysis = analyze(design);
        ASSERT_TRUE(analysis.ok()) << "an imported design does not analyse: " << formatProblems(analysis.problems);
        try {
            built += buildsAndRuns(design, analysis) ? 1 : 0;
        } catch (const std::exception& e) {
            FAIL() << "an imported design failed to build or run: " << e.what();
        }
    }
    EXPECT_GT(imported, rounds / 10);
    EXPECT_GT(rounds - imported, rounds / 4);
    EXPECT_GT(built, 0);
    std::cout << "fuzzed " << rounds << " Keras model JSONs: " << imported << " accepted, " << rounds - imported
              << " rejected\n";
}

} // namespace
} // namespace mppdl::model
