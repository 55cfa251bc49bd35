#include "resume_state.h"

#include "weights.h"

#include "mppdl/core/error.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

namespace mppdl::train {

namespace {

/// Archive keys of the resume state: one entry per segment, holding that segment's own archive.
std::string segmentKey(int segment) { return "segment_" + std::to_string(segment); }
constexpr int64_t kStateFormat = 2;

torch::Tensor bytesTensor(const std::string& bytes) {
    auto t = torch::empty({int64_t(bytes.size())}, torch::kUInt8);
    std::memcpy(t.data_ptr<uint8_t>(), bytes.data(), bytes.size());
    return t;
}
std::string tensorBytes(const torch::Tensor& t) {
    const auto c = t.contiguous().to(torch::kCPU);
    return std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel()));
}

/// One segment's resume state: its optimizer state, the generators of its epoch order and
/// Dropout, and (when its weights are its own, as in EASGD and ensembles) its weights.
std::string serializeSegment(Replica& r, bool withWeights) {
    torch::serialize::OutputArchive archive;
    torch::serialize::OutputArchive optimizerArchive;
    r.optimizer->save(optimizerArchive);
    archive.write("optimizer", optimizerArchive);
    writeGenerator(archive, "permutation_rng", r.permutation);
    if (r.dropout.defined())
        writeGenerator(archive, "dropout_rng", r.dropout);
    if (withWeights) {
        torch::serialize::OutputArchive weights;
        r.module->save(weights);
        archive.write("weights", weights);
    }
    return serializeArchive(archive);
}

void restoreSegment(Replica& r, const std::string& blob, bool withWeights, const std::string& what) {
    torch::serialize::InputArchive archive;
    // Read onto the segment's device, so that the optimizer's buffers land beside the parameters.
    loadArchive(archive, blob, what, r.device);
    torch::serialize::InputArchive optimizerArchive;
    archive.read("optimizer", optimizerArchive);
    r.optimizer->load(optimizerArchive);
    readGenerator(archive, "permutation_rng", r.permutation);
    if (r.dropout.defined())
        readGenerator(archive, "dropout_rng", r.dropout);
    if (withWeights) {
        torch::serialize::InputArchive weights;
        archive.read("weights", weights);
        r.module->load(weights);
    }
}

} // namespace

std::string LoopState::toJson() const {
    // JSON has no infinity: a run without validation keeps bestValLoss infinite.
    const nlohmann::json j = {{"epochs_done", epochsDone},
                              {"global_step", globalStep},
                              {"best_epoch", bestEpoch},
                              {"best_val_accuracy", bestValAccuracy},
                              {"best_val_loss",
                               std::isfinite(bestValLoss) ? nlohmann::json(bestValLoss) : nlohmann::json()},
                              {"epochs_without_improvement", epochsWithoutImprovement},
                              {"stopped_early", stoppedEarly}};
    return j.dump();
}

LoopState LoopState::fromJson(const std::string& text) {
    const auto j = nlohmann::json::parse(text);
    LoopState s;
    s.epochsDone = j.at("epochs_done").get<int>();
    s.globalStep = j.at("global_step").get<int64_t>();
    s.bestEpoch = j.at("best_epoch").get<int>();
    s.bestValAccuracy = j.at("best_val_accuracy").get<double>();
    s.bestValLoss = j.at("best_val_loss").is_null() ? INFINITY : j.at("best_val_loss").get<double>();
    s.epochsWithoutImprovement = j.at("epochs_without_improvement").get<int>();
    s.stoppedEarly = j.at("stopped_early").get<bool>();
    return s;
}

std::map<int, std::string> gatherSegments(std::vector<Replica>& replicas, bool withWeights, Collectives* group) {
    std::map<int, std::string> all;
    torch::serialize::OutputArchive mine;
    for (auto& r : replicas) {
        auto blob = serializeSegment(r, withWeights);
        if (!group || group->world() == 1)
            all[r.segment] = std::move(blob);
        else
            mine.write(segmentKey(r.segment), bytesTensor(blob));
    }
    if (!group || group->world() == 1)
        return all;
    for (const auto& bytes : group->allgather(serializeArchive(mine))) {
        torch::serialize::InputArchive theirs;
        loadArchive(theirs, bytes, "a process's segment state");
        for (const auto& key : theirs.keys()) {
            torch::Tensor t;
            theirs.read(key, t);
            all[std::stoi(key.substr(std::strlen("segment_")))] = tensorBytes(t);
        }
    }
    return all;
}

std::string serializeState(const std::map<int, std::string>& segments, const std::vector<torch::Device>& devices,
                           const LoopState& loop) {
    torch::serialize::OutputArchive archive;
    archive.write("format", c10::IValue(kStateFormat));
    for (const auto& [segment, blob] : segments)
        archive.write(segmentKey(segment), bytesTensor(blob));
    for (const auto& device : devices)
        if (!device.is_cpu())
            writeGenerator(archive, "device_rng_" + device.str(), at::globalContext().defaultGenerator(device));
    archive.write("loop", c10::IValue(loop.toJson()));
    return serializeArchive(archive);
}

LoopState restoreState(const std::string& blob, const std::string& what, std::vector<Replica>& replicas,
                       bool withWeights, const std::vector<torch::Device>& devices) {
    torch::serialize::InputArchive archive;
    loadArchive(archive, blob, what);
    try {
        c10::IValue format;
        if (!archive.try_read("format", format) || !format.isInt() || format.toInt() != kStateFormat)
            throw ConfigError(what + " was made by an earlier mppdl whose resume state this one cannot read "
                                     "(its weights can still be evaluated or warm-started from)");
        for (auto& r : replicas) {
            torch::Tensor bytes;
            if (!archive.try_read(segmentKey(r.segment), bytes))
                throw ConfigError(what + " has no state for segment " + std::to_string(r.segment) +
                                  " (it was made with fewer segments)");
            restoreSegment(r, tensorBytes(bytes), withWeights, what + ", segment " + std::to_string(r.segment));
        }
        for (const auto& device : devices)
            if (!device.is_cpu())
                readGenerator(archive, "device_rng_" + device.str(), at::globalContext().defaultGenerator(device));
        c10::IValue loop;
        archive.read("loop", loop);
        return LoopState::fromJson(loop.toStringRef());
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw StorageError(what + ": damaged resume state (" + std::string(e.what()).substr(0, 200) + ")");
    }
}

std::vector<model::GraphModule> allMembers(std::vector<Replica>& replicas, const std::map<int, std::string>& states,
                                           int segments, const model::Architecture& architecture,
                                           const torch::Device& device) {
    std::vector<model::GraphModule> members;
    for (int s = 0; s < segments; ++s) {
        auto local = std::find_if(replicas.begin(), replicas.end(), [&](const Replica& r) { return r.segment == s; });
        if (local != replicas.end()) {
            members.push_back(local->module);
            continue;
        }
        model::GraphModule member(architecture);
        torch::serialize::InputArchive archive, weights;
        loadArchive(archive, states.at(s), "segment " + std::to_string(s) + "'s state");
        archive.read("weights", weights);
        member->load(weights);
        member->to(device);
        members.push_back(member);
    }
    return members;
}


} // namespace mppdl::train
