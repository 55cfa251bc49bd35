#pragma once

#include "mppdl/core/choice.h"

#include <string>
#include <vector>

namespace mppdl::train {

/// Every optimizer setting in one place. SGD's learning rate and momentum are the recipe that
/// trains the bundled architectures well in 10 epochs (docs/BENCHMARKS.md), the rest PyTorch's
/// defaults; defaultsOf() gives another optimizer's. Fields an optimizer does not use are
/// ignored (momentum for Adam, betas for SGD).
struct OptimizerConfig {
    std::string name = "sgd";
    double lr = 0.05;
    double momentum = 0.9; ///< SGD, RMSprop
    bool nesterov = false; ///< SGD; needs momentum > 0
    double weightDecay = 0.0;
    double beta1 = 0.9; ///< Adam, AdamW
    double beta2 = 0.999;
    double eps = 1e-8;   ///< Adam, AdamW, RMSprop
    double alpha = 0.99; ///< RMSprop smoothing
};

/// Learning-rate schedule, applied at the start of each epoch.
struct ScheduleConfig {
    std::string name = "cosine"; ///< "none", "step", "cosine"
    int stepSize = 10;           ///< step: decay every stepSize epochs
    double gamma = 0.1;          ///< step: multiply by gamma
    double minLr = 0.0;          ///< cosine: the floor reached at the last epoch
};

const std::vector<Choice>& optimizerChoices();

/// The settings a run of optimizer `name` starts from where it names no learning rate or
/// momentum: SGD lr 0.05 momentum 0.9, Adam and AdamW lr 0.001, RMSprop lr 0.01 (PyTorch's),
/// both without momentum. ConfigError for an unknown name.
OptimizerConfig defaultsOf(const std::string& name);
const std::vector<Choice>& scheduleChoices();

/// Problems with the settings (unknown name, lr <= 0, nesterov without momentum), empty if none.
std::vector<std::string> validate(const OptimizerConfig& config);
std::vector<std::string> validate(const ScheduleConfig& config);

/// The learning rate for a 0-based epoch out of `epochs`.
double scheduledLearningRate(const ScheduleConfig& schedule, double baseLr, int epoch, int epochs);

} // namespace mppdl::train
