#include "mppdl/train/optimizers.h"

#include "optimizer_factory.h"

#include "mppdl/core/error.h"

#include <algorithm>
#include <cmath>

namespace mppdl::train {

namespace {

using Factory = std::unique_ptr<torch::optim::Optimizer> (*)(const OptimizerConfig&, std::vector<torch::Tensor>);

struct OptimizerKind {
    Choice choice;
    Factory make;
    double lr; ///< what a run of it starts from without --lr
    double momentum;
};

// The one list of optimizers: the CLI's help, the GUI and validation read it.
const std::vector<OptimizerKind>& optimizerTable() {
    static const std::vector<OptimizerKind> table = {
        {{"sgd", "stochastic gradient descent; --momentum, --nesterov, --weight-decay"},
         [](const OptimizerConfig& c, std::vector<torch::Tensor> p) -> std::unique_ptr<torch::optim::Optimizer> {
             return std::make_unique<torch::optim::SGD>(
                 std::move(p),
                 torch::optim::SGDOptions(c.lr).momentum(c.momentum).nesterov(c.nesterov).weight_decay(c.weightDecay));
         },
         0.05,
         0.9},
        {{"adam", "Adam (Kingma & Ba); L2 weight decay added to the gradient"},
         [](const OptimizerConfig& c, std::vector<torch::Tensor> p) -> std::unique_ptr<torch::optim::Optimizer> {
             return std::make_unique<torch::optim::Adam>(
                 std::move(p),
                 torch::optim::AdamOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(c.weightDecay));
         },
         0.001,
         0.0},
        {{"adamw", "Adam with decoupled weight decay (Loshchilov & Hutter)"},
         [](const OptimizerConfig& c, std::vector<torch::Tensor> p) -> std::unique_ptr<torch::optim::Optimizer> {
             return std::make_unique<torch::optim::AdamW>(
                 std::move(p),
                 torch::optim::AdamWOptions(c.lr).betas({c.beta1, c.beta2}).eps(c.eps).weight_decay(c.weightDecay));
         },
         0.001,
         0.0},
        {{"rmsprop", "RMSprop; --momentum, --weight-decay"},
         [](const OptimizerConfig& c, std::vector<torch::Tensor> p) -> std::unique_ptr<torch::optim::Optimizer> {
             return std::make_unique<torch::optim::RMSprop>(std::move(p), torch::optim::RMSpropOptions(c.lr)
                                                                              .alpha(c.alpha)
                                                                              .eps(c.eps)
                                                                              .momentum(c.momentum)
                                                                              .weight_decay(c.weightDecay));
         },
         0.01,
         0.0},
    };
    return table;
}

const OptimizerKind* findOptimizer(const std::string& name) { return findKind(optimizerTable(), name); }

/// A learning-rate schedule: its rate for a 0-based epoch of `epochs`, and the problems of its own
/// settings.
struct ScheduleKind {
    Choice choice;
    double (*rate)(const ScheduleConfig& s, double baseLr, int epoch, int epochs);
    void (*check)(const ScheduleConfig& s, std::vector<std::string>& problems);
};

// The one list of schedules: the CLI's help, the GUI and validation read it.
const std::vector<ScheduleKind>& scheduleTable() {
    static const std::vector<ScheduleKind> table = {
        {{"none", "constant learning rate"},
         [](const ScheduleConfig&, double baseLr, int, int) { return baseLr; },
         [](const ScheduleConfig&, std::vector<std::string>&) {}},
        {{"step", "multiply by --gamma every --step-size epochs"},
         [](const ScheduleConfig& s, double baseLr, int epoch, int) {
             return baseLr * std::pow(s.gamma, epoch / s.stepSize);
         },
         [](const ScheduleConfig& s, std::vector<std::string>& problems) {
             if (s.stepSize < 1)
                 problems.push_back("step size must be >= 1 epoch");
             if (!(s.gamma > 0))
                 problems.push_back("gamma must be > 0");
         }},
        {{"cosine", "cosine annealing from --lr towards --min-lr over the run (PyTorch's CosineAnnealingLR)"},
         [](const ScheduleConfig& s, double baseLr, int epoch, int epochs) {
             // As PyTorch's CosineAnnealingLR with T_max = epochs: the last epoch still learns.
             const double progress = double(epoch) / double(std::max(1, epochs));
             return s.minLr + 0.5 * (baseLr - s.minLr) * (1.0 + std::cos(M_PI * progress));
         },
         [](const ScheduleConfig&, std::vector<std::string>&) {}},
    };
    return table;
}

const ScheduleKind* findSchedule(const std::string& name) { return findKind(scheduleTable(), name); }

} // namespace

const std::vector<Choice>& optimizerChoices() {
    static const std::vector<Choice> choices = choicesOf(optimizerTable());
    return choices;
}

OptimizerConfig defaultsOf(const std::string& name) {
    const auto* kind = findOptimizer(name);
    if (!kind)
        throw ConfigError("unknown optimizer '" + name + "' (known: " + joinChoiceNames(optimizerChoices()) + ")");
    OptimizerConfig c;
    c.name = name;
    c.lr = kind->lr;
    c.momentum = kind->momentum;
    return c;
}

const std::vector<Choice>& scheduleChoices() {
    static const std::vector<Choice> choices = choicesOf(scheduleTable());
    return choices;
}

std::vector<std::string> validate(const OptimizerConfig& c) {
    std::vector<std::string> problems;
    if (!findOptimizer(c.name))
        problems.push_back("unknown optimizer '" + c.name + "' (known: " + joinChoiceNames(optimizerChoices()) + ")");
    if (!(c.lr > 0) || !std::isfinite(c.lr))
        problems.push_back("learning rate must be > 0, got " + std::to_string(c.lr));
    if (c.momentum < 0 || c.momentum >= 1)
        problems.push_back("momentum must be in [0, 1), got " + std::to_string(c.momentum));
    if (c.nesterov && c.momentum <= 0)
        problems.push_back("nesterov needs a momentum > 0");
    if (c.weightDecay < 0)
        problems.push_back("weight decay must be >= 0, got " + std::to_string(c.weightDecay));
    if (c.beta1 < 0 || c.beta1 >= 1 || c.beta2 < 0 || c.beta2 >= 1)
        problems.push_back("betas must be in [0, 1)");
    return problems;
}

std::vector<std::string> validate(const ScheduleConfig& s) {
    std::vector<std::string> problems;
    if (const auto* kind = findSchedule(s.name))
        kind->check(s, problems);
    else
        problems.push_back("unknown schedule '" + s.name + "' (known: " + joinChoiceNames(scheduleChoices()) + ")");
    if (s.minLr < 0)
        problems.push_back("minimum learning rate must be >= 0");
    return problems;
}

double scheduledLearningRate(const ScheduleConfig& s, double baseLr, int epoch, int epochs) {
    const auto* kind = findSchedule(s.name);
    return kind ? kind->rate(s, baseLr, epoch, epochs) : baseLr;
}

std::unique_ptr<torch::optim::Optimizer> makeOptimizer(const OptimizerConfig& config,
                                                       std::vector<torch::Tensor> parameters) {
    const auto problems = validate(config);
    if (!problems.empty())
        throw ConfigError(problems.front());
    return findOptimizer(config.name)->make(config, std::move(parameters));
}

void setLearningRate(torch::optim::Optimizer& optimizer, double lr) {
    for (auto& group : optimizer.param_groups())
        group.options().set_lr(lr);
}

} // namespace mppdl::train
