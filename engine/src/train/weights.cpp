#include "weights.h"

#include "mppdl/core/error.h"
#include "mppdl/data/dataset.h"

#include <nlohmann/json.hpp>

#include <map>
#include <sstream>

namespace mppdl::train {

namespace {

std::vector<int64_t> shapeOf(const torch::Tensor& t) { return t.sizes().vec(); }

} // namespace

std::string serializeArchive(torch::serialize::OutputArchive& archive) {
    std::ostringstream out;
    archive.save_to(out);
    return std::move(out).str();
}

void loadArchive(torch::serialize::InputArchive& archive, const std::string& blob, const std::string& what,
                 const torch::Device& device) {
    try {
        archive.load_from(blob.data(), blob.size(), device);
    } catch (const std::exception&) {
        throw StorageError(what + ": not a readable libtorch archive (" + std::to_string(blob.size()) + " bytes)");
    }
}

void writeGenerator(torch::serialize::OutputArchive& archive, const std::string& name, at::Generator gen) {
    std::lock_guard<std::mutex> lock(gen.mutex());
    archive.write(name, gen.get_state());
}

void readGenerator(torch::serialize::InputArchive& archive, const std::string& name, at::Generator gen) {
    torch::Tensor state;
    archive.read(name, state);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state.to(torch::kCPU));
}

std::string serializeWeights(const torch::nn::Module& module) {
    torch::serialize::OutputArchive archive;
    torch::NoGradGuard noGrad;
    // Entries by position with a name list beside them, not Module::save: layer names are the
    // user's (any characters), and loadWeights checks each entry's shape to name the offending
    // layer instead of surfacing libtorch's message.
    std::vector<std::string> names;
    for (const auto& p : module.named_parameters()) {
        archive.write("t" + std::to_string(names.size()), p.value().detach().to(torch::kCPU));
        names.push_back(p.key());
    }
    for (const auto& b : module.named_buffers()) {
        archive.write("t" + std::to_string(names.size()), b.value().to(torch::kCPU), /*is_buffer=*/true);
        names.push_back(b.key());
    }
    archive.write("names", c10::IValue(nlohmann::json(names).dump()));
    return serializeArchive(archive);
}

void loadWeights(torch::nn::Module& module, const std::string& blob, const std::string& what) {
    torch::serialize::InputArchive archive;
    loadArchive(archive, blob, what);
    std::map<std::string, std::string> keyOf;
    try {
        c10::IValue names;
        if (!archive.try_read("names", names) || !names.isString())
            throw StorageError(what + ": not a weights archive (no names)");
        const auto list = nlohmann::json::parse(names.toStringRef()).get<std::vector<std::string>>();
        for (size_t i = 0; i < list.size(); ++i)
            keyOf[list[i]] = "t" + std::to_string(i);
    } catch (const nlohmann::json::exception&) {
        throw StorageError(what + ": not a weights archive (bad name list)");
    }
    torch::NoGradGuard noGrad;
    auto copyInto = [&](const std::string& name, torch::Tensor& target, bool isBuffer) {
        torch::Tensor stored;
        const auto key = keyOf.find(name);
        if (key == keyOf.end() || !archive.try_read(key->second, stored, isBuffer))
            throw ConfigError(what + " has no " + (isBuffer ? "buffer '" : "parameter '") + name +
                              "' (the architectures differ)");
        if (stored.sizes() != target.sizes())
            throw ConfigError((isBuffer ? "buffer '" : "parameter '") + name + "' is " +
                              data::formatShape(shapeOf(stored)) + " in " + what + " but " +
                              data::formatShape(shapeOf(target)) + " in this architecture");
        target.copy_(stored);
    };
    for (auto& p : module.named_parameters())
        copyInto(p.key(), p.value(), false);
    for (auto& b : module.named_buffers())
        copyInto(b.key(), b.value(), true);
}

} // namespace mppdl::train
