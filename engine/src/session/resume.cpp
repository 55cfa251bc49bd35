#include "mppdl/session/resume.h"

#include "mppdl/core/error.h"
#include "mppdl/train/trained_model.h"

#include <nlohmann/json.hpp>

namespace mppdl::session {

ResumePoint prepareResume(
    store::Project& project, const store::RunRecord& run, RunObserver& observer, const ResumeOverrides& overrides,
    const std::function<train::ProcessGroup*(const train::TrainConfig&, const model::Architecture&)>& joinProcesses) {
    ResumePoint point;
    point.run = run;
    point.label = "run " + std::to_string(run.id) + " (" + run.name + ")";
    const std::string& label = point.label;
    switch (run.state) {
    case store::RunState::Finished:
        throw ConfigError(label + " has finished; to train it further start a new run with --warm-start " +
                          std::to_string(run.id));
    case store::RunState::Running:
        throw ConfigError(label + " is still running (pid " + std::to_string(run.pid) + " on " + run.host + ")");
    default: break;
    }
    auto checkpoint = project.lastResumable(run.id);
    if (checkpoint) {
        point.checkpoint = std::move(*checkpoint);
    } else {
        // Killed before its first checkpoint: the same run from its first epoch, as recorded.
        point.fromStart = true;
        if (run.warmStartRun)
            point.warmStart = runWeights(project, std::to_string(*run.warmStartRun) +
                                                      (run.warmStartEpoch ? ":" + std::to_string(*run.warmStartEpoch)
                                                                          : std::string()));
    }
    point.config = train::trainConfigFromJson(run.config);
    if (overrides.threads >= 0)
        point.config.threads = overrides.threads;
    if (!overrides.device.empty())
        point.config.device = overrides.device;
    const auto version = project.architectureById(run.architectureVersionId);
    if (!version)
        throw StorageError(project.path() + ": " + label + " refers to a missing architecture version");
    point.architecture = model::parseArchitecture(version->spec,
                                                  version->name + "@" + std::to_string(version->version));

    train::ProcessGroup* group = joinProcesses ? joinProcesses(point.config, point.architecture) : nullptr;
    point.loaded = train::loadData(point.config, point.architecture, observer, group);
    // The same seed gives the same split and normalizer; a changed source would not.
    const auto& prepared = point.loaded.prepared;
    const auto info = train::modelInfoJson(prepared.normalizer, prepared.train.classNames(),
                                           train::modelMembers(point.config));
    if (!run.modelInfo.empty() && nlohmann::json::parse(info) != nlohmann::json::parse(run.modelInfo))
        throw DataError(point.config.data.location + " has changed since " + label +
                        " started (other class names or feature statistics): it cannot be resumed");
    project.truncateMetrics(run.id, point.fromStart ? 0 : point.checkpoint.epoch);
    return point;
}

} // namespace mppdl::session
