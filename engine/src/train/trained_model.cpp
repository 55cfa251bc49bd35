#include "mppdl/train/trained_model.h"

#include "evaluate.h"
#include "normalizer_json.h"
#include "segments.h"
#include "trained_model_impl.h"
#include "weights.h"

#include "mppdl/core/error.h"
#include "mppdl/model/analysis.h"
#include "mppdl/train/devices.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

namespace mppdl::train {

namespace {

constexpr const char* kFormat = "mppdl-model";
constexpr int64_t kFormatVersion = 1;

/// Reads class names, normalizer and member count (the keys of modelInfoJson) into `impl`.
int64_t readModelInfo(const nlohmann::json& meta, TrainedModel::Impl& impl) {
    impl.classNames = meta.at("classes").get<std::vector<std::string>>();
    impl.normalizer = normalizerFrom(meta.at("normalization"));
    const int64_t members = meta.value("members", int64_t(1));
    if (members < 1 || members > 4096)
        throw StorageError("an ensemble of " + std::to_string(members) + " members");
    return members;
}

nlohmann::json metadata(const TrainedModel::Impl& m) {
    nlohmann::json j;
    j["format"] = kFormat;
    j["version"] = kFormatVersion;
    j["architecture"] = nlohmann::json::parse(model::toJson(m.architecture));
    j["classes"] = m.classNames;
    j["normalization"] = normalizerJson(m.normalizer);
    j["members"] = m.members.size();
    return j;
}

} // namespace

TrainedModel::TrainedModel() : m_impl(std::make_unique<Impl>()) {}
TrainedModel::TrainedModel(std::unique_ptr<Impl> impl) : m_impl(std::move(impl)) {}
TrainedModel::~TrainedModel() = default;
TrainedModel::TrainedModel(TrainedModel&&) noexcept = default;
TrainedModel& TrainedModel::operator=(TrainedModel&&) noexcept = default;

const model::Architecture& TrainedModel::architecture() const { return m_impl->architecture; }
const data::Normalizer& TrainedModel::normalizer() const { return m_impl->normalizer; }
const std::vector<std::string>& TrainedModel::classNames() const { return m_impl->classNames; }
int64_t TrainedModel::members() const { return int64_t(m_impl->members.size()); }

void TrainedModel::save(const std::string& path) const {
    if (m_impl->members.empty())
        throw InternalError("saving a model that has no weights");
    torch::serialize::OutputArchive archive;
    archive.write("metadata", c10::IValue(metadata(*m_impl).dump()));
    torch::serialize::OutputArchive weights;
    weightsModule(m_impl->members)->save(weights);
    archive.write("weights", weights);
    // Write beside the target and rename, so a failure never leaves a half-written model behind.
    const std::string tmp = path + ".tmp";
    try {
        archive.save_to(tmp);
    } catch (const std::exception& e) {
        std::remove(tmp.c_str());
        // libtorch's message carries a backtrace after its first line: the cause is that line.
        const std::string what = e.what();
        throw StorageError(path + ": cannot write the model file (" + what.substr(0, what.find('\n')) + ")");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string cause = std::strerror(errno);
        std::remove(tmp.c_str());
        throw StorageError(path + ": cannot write the model file (" + cause + ")");
    }
}

TrainedModel TrainedModel::load(const std::string& path, const std::string& device) {
    auto impl = std::make_unique<Impl>();
    impl->device = torch::Device(checkDevice(device));
    torch::serialize::InputArchive archive;
    nlohmann::json meta;
    try {
        archive.load_from(path);
        c10::IValue value;
        if (!archive.try_read("metadata", value) || !value.isString())
            throw StorageError(path + ": not an mppdl model file (no metadata)");
        meta = nlohmann::json::parse(value.toStringRef());
    } catch (const Error&) {
        throw;
    } catch (const std::exception&) {
        throw StorageError(path + ": not a readable mppdl model file");
    }
    if (meta.value("format", "") != kFormat)
        throw StorageError(path + ": not an mppdl model file");
    if (meta.value("version", int64_t(0)) > kFormatVersion)
        throw StorageError(path + ": written by a newer mppdl (model format " +
                           std::to_string(meta.value("version", int64_t(0))) + ", this one reads " +
                           std::to_string(kFormatVersion) + ")");
    try {
        impl->architecture = model::parseArchitecture(meta.at("architecture").dump(), path);
        impl->build(readModelInfo(meta, *impl));
        torch::serialize::InputArchive weights;
        archive.read("weights", weights);
        weightsModule(impl->members)->load(weights);
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw StorageError(path + ": damaged mppdl model file (" + std::string(e.what()).substr(0, 200) + ")");
    }
    impl->toDeviceForInference();
    return TrainedModel(std::move(impl));
}

TrainedModel TrainedModel::fromWeights(const model::Architecture& architecture, const std::string& modelInfo,
                                       const std::string& weights, const std::string& device, const std::string& what) {
    auto impl = std::make_unique<Impl>();
    impl->device = torch::Device(checkDevice(device));
    impl->architecture = architecture;
    int64_t members = 1;
    try {
        members = readModelInfo(nlohmann::json::parse(modelInfo), *impl);
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw StorageError(what + ": damaged model information (" + std::string(e.what()).substr(0, 200) + ")");
    }
    impl->build(members);
    loadWeights(*weightsModule(impl->members), weights, what);
    impl->toDeviceForInference();
    return TrainedModel(std::move(impl));
}

data::SourceOptions readingOptions(const TrainedModel& model, data::SourceOptions options) {
    if (!model.normalizer().encoding.empty())
        options.encoding = std::make_shared<const data::ColumnEncoding>(model.normalizer().encoding);
    const auto analysis = model::analyze(model.architecture());
    options.flatShape = analysis.inputShape;
    if (options.layout.empty() && options.shape.empty() && analysis.inputLayout != "chw")
        options.layout = analysis.inputLayout;
    return options;
}

std::string modelInfoJson(const data::Normalizer& normalizer, const std::vector<std::string>& classNames,
                          int64_t members) {
    return nlohmann::json{{"classes", classNames}, {"normalization", normalizerJson(normalizer)}, {"members", members}}
        .dump();
}

data::Predictions TrainedModel::predict(const data::Dataset& raw, int64_t batchSize) const {
    PredictOptions options;
    options.batchSize = batchSize;
    return predict(raw, options);
}

data::Predictions TrainedModel::predict(const data::Dataset& raw, const PredictOptions& options) const {
    checkInputShape(m_impl->members.front()->analysis(), raw.sampleShape(), "the data");
    if (options.segments < 0)
        throw ConfigError("segments must be 0 (automatic) or more, got " + std::to_string(options.segments));
    const auto x = m_impl->normalizer.apply(raw).features();
    const int64_t rows = x.size(0);
    const int64_t k = m_impl->members.front()->analysis().numClasses();
    // The devices of a list, each once ("cuda:0,1" lists two).
    std::vector<std::string> pool{m_impl->device.str()};
    if (!options.devices.empty())
        pool = segmentDevices(options.devices, -1,
                              1 + int(std::count(options.devices.begin(), options.devices.end(), ',')));
    int segments = options.segments;
    if (segments == 0)
        segments = pool.size() == 1 && pool.front() == "cpu" ? at::get_num_threads() : int(pool.size());
    segments = int(std::max<int64_t>(1, std::min<int64_t>(segments, rows)));

    auto probabilities = torch::empty({rows, k}, torch::kFloat);
    if (segments == 1 && pool.front() == m_impl->device.str()) {
        // One segment on the model's own device: no replicas, no worker thread.
        const auto sum = sumProbabilities(m_impl->members, x.to(m_impl->device), options.batchSize);
        probabilities.copy_(sum / double(m_impl->members.size()));
    } else {
        // Every segment gets replicas of its own: modules keep state (training mode) that
        // threads must not share, and a clone of these small networks costs microseconds.
        std::vector<std::vector<model::GraphModule>> replicas(static_cast<size_t>(segments));
        for (int s = 0; s < segments; ++s) {
            const torch::Device device(pool[size_t(s) % pool.size()]);
            for (const auto& m : m_impl->members)
                replicas[size_t(s)].push_back(std::dynamic_pointer_cast<model::GraphModuleImpl>(m->clone(device)));
        }
        // libtorch's threads are shared out among the segments on the CPU.
        int cpuSegments = 0;
        for (int s = 0; s < segments; ++s)
            cpuSegments += pool[size_t(s) % pool.size()] == "cpu";
        const int team = std::max(1, at::get_num_threads() / std::max(1, cpuSegments));
        SegmentPool workers(segments, team);
        workers.run(
            size_t(segments),
            [&](size_t s) {
                auto& members = replicas[s];
                const auto device = members.front()->parameters().empty()
                                        ? torch::Device(pool[s % pool.size()])
                                        : members.front()->parameters().front().device();
                const int64_t begin = rows * int64_t(s) / segments, end = rows * int64_t(s + 1) / segments;
                const auto sum = sumProbabilities(members, x.slice(0, begin, end).to(device), options.batchSize);
                probabilities.slice(0, begin, end).copy_(sum / double(members.size()));
            },
            [] {});
    }
    data::Predictions out;
    out.rows = rows;
    out.classes = k;
    out.segments = segments;
    out.probabilities.assign(probabilities.data_ptr<float>(), probabilities.data_ptr<float>() + probabilities.numel());
    const auto predicted = probabilities.argmax(1).contiguous();
    out.predicted.assign(predicted.data_ptr<int64_t>(), predicted.data_ptr<int64_t>() + predicted.numel());
    return out;
}

Evaluation TrainedModel::evaluate(const data::Dataset& raw, const std::string& split) const {
    checkInputShape(m_impl->members.front()->analysis(), raw.sampleShape(), "the data");
    const auto normalized = m_impl->normalizer.apply(raw);
    // The data's classes must be the model's: otherwise label indexes would mean other things.
    if (raw.classNames() != m_impl->classNames) {
        if (raw.numClasses() > int64_t(m_impl->classNames.size()))
            throw ConfigError("the data has " + std::to_string(raw.numClasses()) + " classes but the model predicts " +
                              std::to_string(m_impl->classNames.size()));
    }
    return evaluateMembers(m_impl->members, normalized.features().to(m_impl->device),
                           normalized.labels().to(m_impl->device), m_impl->classNames, split);
}

} // namespace mppdl::train
