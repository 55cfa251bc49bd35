#include "model/model_test_util.h"

namespace mppdl::model::test {

const std::vector<std::string>& exampleFiles() {
    static const std::vector<std::string> files = {"mlp.json",        "lenet5.json", "fmnist_cnn.json",
                                                   "cifar_cnn6.json", "vgg11.json",  "resnet_tiny.json"};
    return files;
}

std::string examplePath(const std::string& file) {
    return std::string(MPPDL_SOURCE_DIR) + "/resources/architectures/" + file;
}

Layer makeLayer(const std::string& name, const std::string& type, std::vector<std::pair<std::string, Param>> params,
                std::vector<std::string> inputs) {
    Layer layer;
    layer.name = name;
    layer.type = type;
    layer.inputs = std::move(inputs);
    for (auto& [key, value] : params)
        layer.params.emplace(key, std::move(value));
    return layer;
}

Architecture makeArchitecture(std::vector<Layer> layers, const std::string& output) {
    Architecture architecture;
    architecture.name = "test";
    architecture.layers = std::move(layers);
    architecture.output = output;
    return architecture;
}

std::string problemsOf(const Analysis& analysis, const std::string& where) {
    std::vector<Problem> selected;
    for (const auto& p : analysis.problems)
        if (p.where == where)
            selected.push_back(p);
    return formatProblems(selected);
}

bool hasProblem(const Analysis& analysis, const std::string& where, std::initializer_list<std::string> fragments) {
    for (const auto& p : analysis.problems) {
        if (p.where != where)
            continue;
        bool all = true;
        for (const auto& f : fragments)
            all = all && p.message.find(f) != std::string::npos;
        if (all)
            return true;
    }
    return false;
}

} // namespace mppdl::model::test
