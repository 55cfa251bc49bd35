#pragma once

#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/checkpoint.h"
#include "mppdl/train/events.h"
#include "mppdl/train/optimizers.h"
#include "mppdl/train/trained_model.h"

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

namespace mppdl::train {

/// Where the data comes from and how it is prepared.
struct DataConfig {
    std::string location;
    data::SourceOptions source;
    double validationFraction = 0.1;
    data::Normalizer::Mode normalization = data::Normalizer::Mode::Scale01;
};

/// How a run spreads over segments. One table, read by the CLI's help and the GUI.
const std::vector<Choice>& strategyChoices();

/// Everything needed to repeat a training run.
struct TrainConfig {
    DataConfig data;
    /// A strategyChoices() name. "single": one model on all rows. "model-averaging": MADlib's fit
    /// — each segment trains a replica on its shard, then the replicas are averaged (weighted by
    /// the rows each saw) and the average is broadcast back.
    std::string strategy = "single";
    int segments = 1;
    /// How rows are dealt to segments: a data::distributionPolicies() name.
    std::string distribution = "random";
    /// model-averaging: minibatches between merges; 0 merges once per pass over the shards.
    int64_t syncEvery = 0;
    int epochs = 10;
    int64_t batchSize = 64;
    OptimizerConfig optimizer;
    ScheduleConfig schedule;
    uint64_t seed = 0;
    std::string device = "cpu";
    int threads = 0; ///< libtorch intra-op threads; 0 means defaultThreadCount()
    /// Stop when the validation loss has not improved for this many epochs; 0 disables.
    int earlyStoppingPatience = 0;
    /// Minimum time between two Progress events.
    double progressIntervalSeconds = 0.25;
};

/// Problems with a configuration that can be found before loading anything.
std::vector<std::string> validate(const TrainConfig& config);

struct TrainResult {
    int epochsRun = 0;
    int bestEpoch = 0; ///< by validation accuracy; 0 without validation
    bool stoppedEarly = false;
    double seconds = 0;
    std::optional<Evaluation> validation; ///< the last epoch's
    std::optional<Evaluation> test;       ///< when the source has a test split
    TrainedModel model;
};

/// Trains one model on one device (the `single` strategy): loads and prepares the data, builds the
/// network, runs the epochs, evaluates on the test split. Reports through `observer` from the
/// calling thread. Checks `control.cancel` between minibatches; when set, reports Cancelled and
/// throws CancelledError. With `control.checkpoints` it hands over a checkpoint after each epoch;
/// with `control.resumeFrom` it continues an earlier run (see TrainControl). Other failures are reported as Failed and rethrown as mppdl::Error subclasses;
/// a NaN or infinite loss is a DataError naming the epoch and step.
TrainResult train(const TrainConfig& config, const model::Architecture& architecture,
                  RunObserver& observer, const TrainControl& control = {});

/// The source as read and the data prepared from it (split, normalized).
struct LoadedData {
    data::LoadedSource source;
    data::PreparedData prepared;
};

/// The first half of train(): checks the configuration, the device and the architecture, then
/// loads and prepares the data and reports a "data: ..." message. For callers that record the
/// source before training on it (the project store).
LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer);

/// The same on data already prepared (the caller loaded and split it).
TrainResult train(const TrainConfig& config, const model::Architecture& architecture,
                  const data::PreparedData& data, RunObserver& observer,
                  const TrainControl& control = {});

/// The configuration as JSON (what a project records to repeat a run) and back. fromJson fills
/// missing keys with the defaults and throws ConfigError naming a key of the wrong type.
std::string toJson(const TrainConfig& config);
TrainConfig trainConfigFromJson(const std::string& json);

} // namespace mppdl::train
