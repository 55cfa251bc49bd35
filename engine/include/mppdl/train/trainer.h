#pragma once

#include "mppdl/data/preprocess.h"
#include "mppdl/data/source.h"
#include "mppdl/model/architecture.h"
#include "mppdl/train/control.h"
#include "mppdl/core/events.h"
#include "mppdl/train/optimizers.h"
#include "mppdl/train/strategies.h"
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
    /// How much memory the prepared rows may take ("512M", "2G"; empty: a share of what the
    /// process may use, data::memoryBudget()). Rows over it train out of core, from `cacheDir`.
    std::string memoryBudget;
    /// Where out-of-core rows are cached (empty: data::defaultCacheRoot(), under $XDG_CACHE_HOME).
    std::string cacheDir;
    /// A pg: table's training rows are read from the server again every epoch, in blocks, and
    /// nothing of them is kept between epochs (MADlib without use_caching): see streamed_rows.h.
    bool noCache = false;
};

/// Everything needed to repeat a training run.
struct TrainConfig {
    DataConfig data;
    /// A strategies() name (the table says what each does; DESIGN.md gives the math).
    std::string strategy = "single";
    int segments = 1;
    /// How rows are dealt to segments: a data::distributionPolicies() name.
    std::string distribution = "random";
    /// Minibatches between joins: model-averaging's merges (0: once per pass over the shards),
    /// EASGD's tau (0: 10). All-reduce joins every step, an ensemble never.
    int64_t syncEvery = 0;
    /// EASGD's moving rate alpha; unset: 0.9 / segments (the paper's beta / N).
    std::optional<double> movingRate;
    /// Processes the segments are spread over (segment s trains in process s % processes); 1 keeps
    /// them all in this process's thread pool.
    int processes = 1;
    /// MADlib's GPUs per host: > 0 deals the segments round-robin over cuda:0..G-1, 0 keeps them
    /// on the CPU, -1 (unset) uses `device`.
    int gpusPerHost = -1;
    int epochs = 10;
    int64_t batchSize = 128;
    OptimizerConfig optimizer;
    ScheduleConfig schedule;
    uint64_t seed = 0;
    /// "cpu", "cuda", "cuda:N", or a list "cuda:0,1" the segments are dealt over round-robin.
    std::string device = "cpu";
    int threads = 0; ///< libtorch intra-op threads; 0 means defaultThreadCount()
    /// Stop when the validation loss has not improved for this many epochs; 0 disables.
    int earlyStoppingPatience = 0;
    /// Minimum time between two Progress events.
    double progressIntervalSeconds = 0.25;
};

/// Networks in the model a configuration trains: the segments for an ensemble, else 1.
int64_t modelMembers(const TrainConfig& config);

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

/// Trains a model as the configuration's strategy says: loads and prepares the data, builds the
/// network and its segments' replicas, runs the epochs, evaluates on the test split. Reports through
/// `observer` from the calling thread. Checks `control.cancel` between minibatches; when set, reports
/// Cancelled and throws CancelledError. With `control.checkpoints` it hands over a checkpoint after
/// each epoch; with `control.resumeFrom` it continues an earlier run (see TrainControl). Other
/// failures are reported as Failed and rethrown as mppdl::Error subclasses: a NaN or infinite loss
/// is a DataError naming the epoch and step, a device out of memory a DeviceError.
TrainResult train(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer,
                  const TrainControl& control = {});

/// The source as read and the data prepared from it (split, normalized).
struct LoadedData {
    /// What this process read (in a multi-process run, its own rows), without the rows: once
    /// prepared they are released, so that a run holds one copy of its data (in `prepared`).
    data::LoadedSource source;
    data::PreparedData prepared;
    /// The whole source's, even where this process read only its own rows (then computed over
    /// the processes): what the project records of the dataset.
    data::Schema schema;
    data::Statistics statistics;
};

class ProcessGroup;

/// The first half of train(): checks the configuration, the device and the architecture, then
/// loads and prepares the data and reports a "data: ..." message. For callers that record the
/// source before training on it (the project store).
LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer);

/// The same in one process of a multi-process run (`group`, null or of one process: the above):
/// every process calls it, and each reads only the rows of its own segments and its share of the
/// validation and test rows; the normalization and the statistics are those of all the rows
/// (c10d collectives), so the run trains as the thread pool would on the whole source.
LoadedData loadData(const TrainConfig& config, const model::Architecture& architecture, RunObserver& observer,
                    ProcessGroup* group);

/// The same on data already prepared (the caller loaded and split it).
TrainResult train(const TrainConfig& config, const model::Architecture& architecture, const data::PreparedData& data,
                  RunObserver& observer, const TrainControl& control = {});

/// The configuration as JSON (what a project records to repeat a run) and back. fromJson fills
/// missing keys with the defaults and throws ConfigError naming a key of the wrong type.
std::string toJson(const TrainConfig& config);
TrainConfig trainConfigFromJson(const std::string& json);

} // namespace mppdl::train
