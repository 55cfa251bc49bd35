#include "model/model_test_util.h"
#include "mppdl/core/error.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/architecture.h"
#include "mppdl/model/layers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

namespace mppdl::model {
namespace {

std::string errorOf(const std::string& json, const std::string& origin = "net.json") {
    try {
        parseArchitecture(json, origin);
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "(no error)";
}

const char* const kSmall = R"({
  "format": "mppdl-architecture",
  "version": 1,
  "name": "small",
  "description": "a test",
  "layers": [
    {"name": "input", "type": "Input", "shape": [1, 28, 28]},
    {"name": "conv1", "type": "Conv2D", "filters": 8, "kernel_size": [3, 5], "padding": "same",
     "bias": false},
    {"name": "drop", "type": "Dropout", "rate": 0.25},
    {"name": "add1", "type": "Add", "inputs": ["conv1", "drop"]},
    {"name": "flat", "type": "Flatten", "inputs": "add1"}
  ]
})";

TEST(ModelSpec, ParsesLayersParametersAndInputs) {
    const Architecture a = parseArchitecture(kSmall);
    EXPECT_EQ(a.name, "small");
    EXPECT_EQ(a.description, "a test");
    EXPECT_TRUE(a.output.empty());
    ASSERT_EQ(a.layers.size(), 5u);
    EXPECT_EQ(a.layers[0].type, "Input");
    EXPECT_EQ(std::get<std::vector<int64_t>>(a.layers[0].params.at("shape")), (std::vector<int64_t>{1, 28, 28}));
    const Layer& conv = a.layers[1];
    EXPECT_EQ(conv.name, "conv1");
    EXPECT_TRUE(conv.inputs.empty());
    EXPECT_EQ(std::get<int64_t>(conv.params.at("filters")), 8);
    EXPECT_EQ(std::get<std::vector<int64_t>>(conv.params.at("kernel_size")), (std::vector<int64_t>{3, 5}));
    EXPECT_EQ(std::get<std::string>(conv.params.at("padding")), "same");
    EXPECT_EQ(std::get<bool>(conv.params.at("bias")), false);
    EXPECT_DOUBLE_EQ(std::get<double>(a.layers[2].params.at("rate")), 0.25);
    EXPECT_EQ(a.layers[3].inputs, (std::vector<std::string>{"conv1", "drop"}));
    EXPECT_EQ(a.layers[4].inputs, (std::vector<std::string>{"add1"}));
    EXPECT_TRUE(analyze(a).ok()) << formatProblems(analyze(a).problems);
}

TEST(ModelSpec, ParameterTextReadsAsALayerObjectWould) {
    // What an editor's user types: each kind of value, back to the same text.
    for (const std::string text : {"32", "0.25", "true", "[3, 5]", "\"same\""}) {
        const auto param = parseParamText(text);
        ASSERT_TRUE(param) << text;
        EXPECT_EQ(paramText(*param), text);
    }
    EXPECT_EQ(std::get<int64_t>(*parseParamText(" 8 ")), 8);
    EXPECT_EQ(std::get<std::vector<int64_t>>(*parseParamText("[1,28,28]")), (std::vector<int64_t>{1, 28, 28}));
    // Not a value a parameter holds: no JSON, null, an object, a list of non-integers.
    for (const std::string text : {"many", "null", "{}", "[1.5, 2]", "[3,", ""})
        EXPECT_FALSE(parseParamText(text)) << text;
}

TEST(ModelSpec, RecordsTheLineOfEachLayer) {
    const Architecture a = parseArchitecture(kSmall);
    EXPECT_EQ(a.layers[0].line, 7);
    EXPECT_EQ(a.layers[1].line, 8);
    EXPECT_EQ(a.layers[2].line, 10);
    EXPECT_EQ(a.layers[4].line, 12);
}

TEST(ModelSpec, NamesLayersWithoutNameByTypeAndCounter) {
    const Architecture a = parseArchitecture(R"({"layers": [
        {"type": "Input", "shape": [4]},
        {"type": "Dense", "units": 3},
        {"name": "dense_2", "type": "ReLU"},
        {"type": "Dense", "units": 2},
        {"type": "Dense", "units": 1}]})");
    ASSERT_EQ(a.layers.size(), 5u);
    EXPECT_EQ(a.layers[0].name, "input_1");
    EXPECT_EQ(a.layers[1].name, "dense_1");
    EXPECT_EQ(a.layers[2].name, "dense_2");
    EXPECT_EQ(a.layers[3].name, "dense_3"); // dense_2 is taken
    EXPECT_EQ(a.layers[4].name, "dense_4");
    EXPECT_TRUE(analyze(a).ok()) << formatProblems(analyze(a).problems);
}

TEST(ModelSpec, CanonicalJsonRoundTrips) {
    Architecture a = parseArchitecture(kSmall);
    a.output = "flat";
    const std::string text = toJson(a);
    const Architecture b = parseArchitecture(text);
    EXPECT_EQ(a, b);
    EXPECT_EQ(toJson(b), text);
    // Parameters of every kind, and strings that need escaping.
    Architecture c = test::makeArchitecture({test::makeLayer("in \"quoted\"\n", "Input", {{"shape", Shape{3}}}),
                                             test::makeLayer("x", "Anything",
                                                             {{"i", int64_t{-7}},
                                                              {"f", 1e-5},
                                                              {"g", 0.1},
                                                              {"b", true},
                                                              {"s", std::string("tab\t")},
                                                              {"l", std::vector<int64_t>{}}})});
    c.description = "ünïcode";
    EXPECT_EQ(parseArchitecture(toJson(c)), c);
}

TEST(ModelSpec, ExampleFilesAreCanonical) {
    for (const auto& file : test::exampleFiles()) {
        std::ifstream in(test::examplePath(file));
        std::stringstream text;
        text << in.rdbuf();
        EXPECT_EQ(toJson(loadArchitecture(test::examplePath(file))), text.str()) << file;
    }
}

TEST(ModelSpec, SyntaxErrorNamesOriginLineAndColumn) {
    const std::string message = errorOf("{\n  \"layers\": [\n    {\"type\": \"Input\",, }\n  ]\n}");
    EXPECT_EQ(message.rfind("net.json:3:22: ", 0), 0u) << message;
    EXPECT_NE(message.find("syntax error"), std::string::npos) << message;
    EXPECT_EQ(message.find("json.exception"), std::string::npos) << message;

    EXPECT_EQ(errorOf("").rfind("net.json:1:1: ", 0), 0u) << errorOf("");
    EXPECT_EQ(errorOf("{\"layers\": [}").rfind("net.json:1:13: ", 0), 0u) << errorOf("{\"layers\": [}");
}

TEST(ModelSpec, NewerFormatVersionAsksForNewerMppdl) {
    const std::string message = errorOf("{\"format\": \"mppdl-architecture\",\n \"version\": 2, \"layers\": []}");
    EXPECT_EQ(message.rfind("net.json:2: ", 0), 0u) << message;
    EXPECT_NE(message.find("version 2"), std::string::npos) << message;
    EXPECT_NE(message.find("newer mppdl"), std::string::npos) << message;
    EXPECT_NO_THROW(parseArchitecture("{\"version\": 1, \"layers\": []}"));
}

TEST(ModelSpec, DocumentsThatAreNotArchitecturesNameTheLine) {
    EXPECT_NE(errorOf("[1, 2]").find("JSON object"), std::string::npos);
    EXPECT_NE(errorOf("{\"name\": \"x\"}").find("no \"layers\""), std::string::npos);
    EXPECT_NE(errorOf("{\"format\": \"keras\", \"layers\": []}").find("\"format\""), std::string::npos);
    EXPECT_NE(errorOf("{\"layers\": [], \"lyers\": 1}").find("unknown key \"lyers\""), std::string::npos);
    EXPECT_NE(errorOf("{\"class_name\": \"Sequential\", \"config\": {}}").find("Keras"), std::string::npos);

    std::string message = errorOf("{\"layers\": [\n {\"type\": \"Input\", \"shape\": [1]},\n"
                                  " {\"name\": \"d\", \"units\": 3}\n]}");
    EXPECT_EQ(message.rfind("net.json:3: ", 0), 0u) << message;
    EXPECT_NE(message.find("\"type\""), std::string::npos) << message;

    message = errorOf("{\"layers\": [\n {\"type\": \"Input\", \"shape\": [1]},\n"
                      " {\"name\": \"d\", \"type\": \"Dense\", \"units\": null}\n]}");
    EXPECT_EQ(message.rfind("net.json:3: ", 0), 0u) << message;
    EXPECT_NE(message.find("\"units\""), std::string::npos) << message;

    message = errorOf("{\"layers\": [{\"type\": \"Input\", \"shape\": [1.5, 2]}]}");
    EXPECT_NE(message.find("\"shape\""), std::string::npos) << message;
    message = errorOf("{\"layers\": [{\"type\": \"Add\", \"inputs\": [1, 2]}]}");
    EXPECT_NE(message.find("\"inputs\""), std::string::npos) << message;
    message = errorOf("{\"layers\": [{\"type\": \"Add\", \"name\": 3}]}");
    EXPECT_NE(message.find("\"name\""), std::string::npos) << message;
    message = errorOf("{\"layers\": [3]}");
    EXPECT_NE(message.find("layer 1 must be an object"), std::string::npos) << message;
}

TEST(ModelSpec, WrongParameterTypesAreAnalysisProblemsNamingTheLayer) {
    const Architecture a = parseArchitecture(R"({"layers": [
        {"name": "input", "type": "Input", "shape": [1, 28, 28]},
        {"name": "conv1", "type": "Conv2D", "filters": "32", "kernel_size": 3}]})");
    EXPECT_EQ(std::get<std::string>(a.layers[1].params.at("filters")), "32");
    const Analysis analysis = analyze(a);
    EXPECT_TRUE(test::hasProblem(analysis, "conv1", {"\"filters\"", "an integer", "\"32\""}))
        << formatProblems(analysis.problems);
}

TEST(ModelSpec, LoadingAMissingFileIsADataError) { EXPECT_THROW(loadArchitecture("/nonexistent/net.json"), DataError); }

TEST(ModelSpec, FormatsShapes) {
    EXPECT_EQ(formatShape({64, 7, 7}), "64x7x7");
    EXPECT_EQ(formatShape({128}), "128");
    EXPECT_EQ(formatShape({}), "?");
}

TEST(ModelLayers, TableListsEveryTypeOnceWithUsableDefaults) {
    const std::set<std::string> expected = {"Input",   "Conv2D",  "MaxPool2D", "AvgPool2D", "BatchNorm",
                                            "Dropout", "Flatten", "Dense",     "ReLU",      "LeakyReLU",
                                            "Tanh",    "Sigmoid", "Softmax",   "Add",       "Concat"};
    std::set<std::string> names;
    for (const auto& type : layerTypes()) {
        EXPECT_TRUE(names.insert(type.name).second) << type.name;
        EXPECT_EQ(findLayerType(type.name), &type);
        EXPECT_NE(std::string(type.description), "");
        for (const auto& p : type.params)
            EXPECT_NE(std::string(p.description), "") << type.name << "." << p.name;
    }
    EXPECT_EQ(names, expected);
    EXPECT_EQ(findLayerType("conv2d"), nullptr);
    EXPECT_EQ(findLayerType("Input")->minInputs, 0);
    EXPECT_EQ(findLayerType("Add")->maxInputs, -1);
}

} // namespace
} // namespace mppdl::model
