#pragma once

// A recorded run's model: which run, which epoch's weights, and the model they make. What the
// command line's eval, predict, export and warm starts and the workbench's views read.

#include "mppdl/data/preview.h"
#include "mppdl/store/project.h"
#include "mppdl/train/control.h"
#include "mppdl/train/trained_model.h"

#include <string>

namespace mppdl::session {

/// The run named by id or name; ConfigError when there is none (with the latest ids there are).
store::RunRecord findRun(const store::Project& project, const std::string& idOrName);

/// A run's weights at one epoch: `ref` is RUN, RUN:EPOCH, RUN:best or RUN:last (the default).
struct RunWeights {
    store::RunRecord run;
    Checkpoint checkpoint;
    std::string label; ///< "run 3 (mlp-3), epoch 5"
};
/// ConfigError naming the epochs kept when the run has none of those weights.
RunWeights runWeights(const store::Project& project, const std::string& ref);

/// The run's model at that epoch, ready to evaluate and predict, on `device`.
train::TrainedModel runModel(const store::Project& project, const std::string& ref, const std::string& device);
/// The model of weights already read (what an export labels with their run and epoch).
train::TrainedModel runModel(const store::Project& project, const RunWeights& weights, const std::string& device);

/// The test rows behind one cell of a run's confusion matrix: the rows of class `trueClass` that
/// epoch `epoch`'s model predicts as `predictedClass`, read again from the run's recorded dataset.
struct ConfusionCellRows {
    int64_t matching = 0;               ///< rows in the cell
    int64_t total = 0;                  ///< test rows
    std::vector<data::RowPreview> rows; ///< the first of them, at most the `most` asked for
    std::vector<double> probability;    ///< per row shown: the probability the model gave `predictedClass`
    std::vector<std::string> classNames;
    std::vector<int64_t> sampleShape;
};

/// Predicts the run's test split again on the CPU and picks the cell's rows. ConfigError when the
/// run has no dataset recorded, the dataset no test split, or the run no weights of that epoch.
ConfusionCellRows confusionCellRows(const store::Project& project, int64_t runId, int epoch, int trueClass,
                                    int predictedClass, size_t most = 64);

} // namespace mppdl::session
