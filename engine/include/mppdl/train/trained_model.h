#pragma once

#include "mppdl/data/dataset.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/predictions.h"
#include "mppdl/model/architecture.h"
#include "mppdl/core/events.h"

#include <memory>
#include <string>
#include <vector>

namespace mppdl::train {

/// A trained network with everything needed to use it on new raw data: the architecture, the
/// weights, the normalizer fitted on its training data and the class names. An ensemble holds
/// several networks of the architecture and predicts the mean of their class probabilities.
class TrainedModel {
public:
    TrainedModel();
    ~TrainedModel();
    TrainedModel(TrainedModel&&) noexcept;
    TrainedModel& operator=(TrainedModel&&) noexcept;

    const model::Architecture& architecture() const;
    const data::Normalizer& normalizer() const;
    const std::vector<std::string>& classNames() const;
    /// Networks in the model: 1, or an ensemble's members.
    int64_t members() const;

    /// Saves to a single file (a libtorch archive); throws StorageError naming the path.
    void save(const std::string& path) const;
    /// Throws StorageError when the file cannot be read or is not an mppdl model.
    static TrainedModel load(const std::string& path, const std::string& device = "cpu");

    /// A model from what a project records of a run: its architecture, the JSON of
    /// modelInfoJson() and a Checkpoint::weights blob. `what` names the weights in errors
    /// ("run 3, epoch 5"); ConfigError/StorageError when they do not fit or are damaged.
    static TrainedModel fromWeights(const model::Architecture& architecture, const std::string& modelInfo,
                                    const std::string& weights, const std::string& device, const std::string& what);

    /// Accuracy, loss, per-class accuracy and confusion matrix on raw (unnormalized) data.
    /// Throws ConfigError when the data's sample shape differs from the model's input (both named).
    Evaluation evaluate(const data::Dataset& raw, const std::string& split) const;

    /// How predict() spreads its work.
    struct PredictOptions {
        /// Rows a forward pass (0: sized to the CPU's cache, 1024 on a GPU).
        int64_t batchSize = 0;
        /// The rows are cut into this many contiguous shards, predicted side by side by one worker
        /// each, as MADlib predicts on every segment at once. On the CPU each worker gets an
        /// equal share of libtorch's threads (one segment of one thread per core keeps every
        /// core busy also in sgemm, which runs on its calling thread). 0: one segment per CPU
        /// thread, or per device of a device list. Never more segments than rows.
        int segments = 1;
        /// Where the segments run: empty for the model's device, else one device or a list
        /// ("cuda:0,1") dealt round-robin (DeviceError for one that does not exist).
        std::string devices;
    };

    /// Class probabilities of every row of raw (unnormalized) data, in input order, an ensemble's
    /// the mean of its members', and the most probable class. ConfigError as evaluate() on a shape
    /// that does not fit.
    data::Predictions predict(const data::Dataset& raw, const PredictOptions& options) const;
    /// predict() on the model's device in one segment.
    data::Predictions predict(const data::Dataset& raw, int64_t batchSize = 0) const;

    struct Impl;
    /// Engine-internal access to the module and device (see engine/src/train/trained_model_impl.h).
    Impl& impl() const { return *m_impl; }
    explicit TrainedModel(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> m_impl;
};

/// `options` made to read new rows as the model's training rows were read: the CSV columns and
/// categories it was trained on (its normalizer's encoding), and its input shape for flat rows.
data::SourceOptions readingOptions(const TrainedModel& model, data::SourceOptions options);

/// The normalizer, class names and member count as JSON: what turns a run's weights into a usable
/// model besides the architecture (recorded with the run in a project).
std::string modelInfoJson(const data::Normalizer& normalizer, const std::vector<std::string>& classNames,
                          int64_t members = 1);

} // namespace mppdl::train
