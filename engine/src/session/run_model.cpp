#include "mppdl/session/run_model.h"

#include "mppdl/core/error.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/session/recorded_run.h"
#include "mppdl/train/trainer.h"

#include <algorithm>
#include <cctype>

namespace mppdl::session {

namespace {

bool allDigits(const std::string& s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

} // namespace

store::RunRecord findRun(const store::Project& project, const std::string& idOrName) {
    if (auto run = project.findRun(idOrName))
        return *run;
    const auto runs = project.runs();
    std::string ids;
    for (size_t i = runs.size() > 10 ? runs.size() - 10 : 0; i < runs.size(); ++i)
        ids += (ids.empty() ? "" : ", ") + std::to_string(runs[i].id);
    throw ConfigError(
        "no run '" + idOrName + "' in " + project.path() +
        (runs.empty() ? std::string(" (it has no runs yet)") : " (latest run ids: " + ids + "; see mppdl runs)"));
}

RunWeights runWeights(const store::Project& project, const std::string& ref) {
    std::string runPart = ref, epochPart = "last";
    if (const auto colon = ref.rfind(':'); colon != std::string::npos) {
        runPart = ref.substr(0, colon);
        epochPart = ref.substr(colon + 1);
    }
    RunWeights out;
    out.run = findRun(project, runPart);
    const auto kept = project.checkpoints(out.run.id);
    std::string keptList;
    for (const auto& c : kept)
        keptList += (keptList.empty() ? "" : ", ") + std::to_string(c.epoch);
    const std::string runLabel = "run " + std::to_string(out.run.id) + " (" + out.run.name + ")";
    if (kept.empty())
        throw ConfigError(runLabel + " has no saved weights (state " + store::toString(out.run.state) +
                          "; weights are saved at the end of each epoch)");
    int epoch = 0;
    if (epochPart == "last" || epochPart.empty())
        epoch = project.lastCheckpointEpoch(out.run.id);
    else if (epochPart == "best") {
        epoch = project.bestCheckpointEpoch(out.run.id);
        if (epoch == 0)
            throw ConfigError(runLabel + " has no best epoch (it ran without validation): use :last");
    } else if (allDigits(epochPart))
        epoch = std::stoi(epochPart);
    else
        throw ConfigError("'" + ref + "': expected RUN, RUN:EPOCH, RUN:best or RUN:last");
    auto checkpoint = project.checkpoint(out.run.id, epoch);
    if (!checkpoint)
        throw ConfigError(runLabel + " has no weights for epoch " + std::to_string(epoch) + " (kept: epochs " +
                          keptList + ")");
    out.checkpoint = std::move(*checkpoint);
    out.label = runLabel + ", epoch " + std::to_string(epoch);
    return out;
}

train::TrainedModel runModel(const store::Project& project, const std::string& ref, const std::string& device) {
    return runModel(project, runWeights(project, ref), device);
}

train::TrainedModel runModel(const store::Project& project, const RunWeights& weights, const std::string& device) {
    const auto version = project.architectureById(weights.run.architectureVersionId);
    if (!version)
        throw StorageError(project.path() + ": run " + std::to_string(weights.run.id) +
                           " refers to a missing architecture version");
    if (weights.run.modelInfo.empty())
        throw StorageError(project.path() + ": run " + std::to_string(weights.run.id) +
                           " has no normalizer and class names recorded");
    const auto architecture = model::parseArchitecture(version->spec,
                                                       version->name + "@" + std::to_string(version->version));
    return train::TrainedModel::fromWeights(architecture, weights.run.modelInfo, weights.checkpoint.weights, device,
                                            weights.label);
}

ConfusionCellRows confusionCellRows(const store::Project& project, int64_t runId, int epoch, int trueClass,
                                    int predictedClass, size_t most) {
    const auto run = project.run(runId);
    const auto dataset = run ? project.dataset(run->datasetId) : std::nullopt;
    if (!dataset)
        throw ConfigError("run " + std::to_string(runId) + " has no dataset recorded");
    const auto data = datasetSource(*dataset);
    const auto model = runModel(project, std::to_string(runId) + ":" + std::to_string(epoch), "cpu");
    // Read as the run read it: its columns and categories, its input shape, its test rows (drawn
    // with its seed where it held them out of a source without a test split).
    auto options = train::readingOptions(model, data.source);
    const auto config = train::trainConfigFromJson(run->config);
    options.testFraction = config.data.source.testFraction;
    options.testSeed = config.seed;
    const auto source = data::loadSource(data.location, options);
    if (source.test.empty())
        throw ConfigError(dataset->location + " has no test split to look into");
    const auto predictions = model.predict(source.test);
    const auto labels = data::labelsOf(source.test);
    ConfusionCellRows cell;
    cell.classNames = source.test.classNames();
    cell.sampleShape = source.test.sampleShape();
    cell.total = int64_t(labels.size());
    std::vector<int64_t> rows;
    for (size_t i = 0; i < labels.size(); ++i)
        if (labels[i] == trueClass && predictions.predicted[i] == predictedClass) {
            ++cell.matching;
            if (rows.size() < most)
                rows.push_back(int64_t(i));
        }
    cell.rows = data::previewRowsAt(source.test, rows);
    for (const auto row : rows)
        cell.probability.push_back(predictions.probabilities[size_t(row * predictions.classes + predictedClass)]);
    return cell;
}

} // namespace mppdl::session
