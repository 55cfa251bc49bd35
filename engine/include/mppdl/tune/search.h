#pragma once

// Model selection's search spaces and the configurations drawn from them: grid, random and
// Hyperband (Li et al. 2018, as MADlib's hyperband_schedule lays it out). Pure logic, no libtorch.

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::tune {

/// One hyperparameter's values: a list (grid: each of them; random: one of them, uniformly), or a
/// range [low, high], uniform in its scale (linear or log) for a random search and `steps` values
/// spread evenly in that scale for a grid.
struct ParameterSpace {
    std::string name;
    std::vector<double> values;      ///< a list; empty for a range (strings index `labels`)
    std::vector<std::string> labels; ///< a list of names (optimizer, architecture)
    double low = 0, high = 0;
    bool log = false;
    int steps = 0;        ///< a range's grid points; 0: the range cannot be searched by a grid
    bool integer = false; ///< values are rounded (batch size, epochs)
    bool isRange() const { return values.empty() && labels.empty(); }
};

/// The parameters a search varies, in a fixed order: architecture, optimizer, lr, momentum,
/// weight_decay, batch_size, epochs. Every parameter has at least one value.
struct SearchSpace {
    std::vector<ParameterSpace> parameters;
    /// Hyperband: the most epochs one configuration trains (R) and the reduction factor (eta).
    int maxEpochs = 9;
    int eta = 3;
    /// Random search: how many configurations; 0 when the file does not say.
    int samples = 0;
    uint64_t seed = 0;
    const ParameterSpace& parameter(const std::string& name) const;
};

/// The keys a search space file may hold, with what each takes, for --help and errors.
const std::vector<std::pair<const char*, const char*>>& searchSpaceKeys();

/// Parses a search space JSON document. `where` names it in errors (a file path). ConfigError
/// naming the key and the value for anything invalid: an unknown key (the known ones listed), a
/// learning rate that is not positive, a batch size below 1, an unknown optimizer, momentum
/// outside [0, 1), a negative weight decay, an empty list, a range whose low exceeds its high or
/// a log range that is not positive. Architecture names are kept as written: the caller resolves
/// them (a project's or a bundled one).
SearchSpace parseSearchSpace(const std::string& json, const std::string& where);

/// One point of the space: what a run of the search trains.
struct Configuration {
    std::string architecture;
    std::string optimizer = "sgd";
    double lr = 0.01;
    double momentum = 0;
    double weightDecay = 0;
    int64_t batchSize = 64;
    /// A grid or random search's epochs when the space names none (Hyperband's are its own).
    int epochs = 5;
    /// "lenet5 sgd lr 0.01 momentum 0.9 batch 64": what a leaderboard shows.
    std::string describe() const;
    /// As JSON (the keys of the search space file), and back.
    std::string toJson() const;
    static Configuration fromJson(const std::string& json);
    bool operator==(const Configuration& o) const;
};

/// Every combination of the values, the last parameter varying fastest. ConfigError naming a
/// range without "steps" (a grid needs a finite set).
std::vector<Configuration> gridConfigurations(const SearchSpace& space);
/// `count` configurations drawn with a seeded generator (std::mt19937_64: the same everywhere):
/// a list's value uniformly, a range's uniformly in its scale. Duplicates are possible when the
/// space is small, as in any random search.
std::vector<Configuration> randomConfigurations(const SearchSpace& space, int count, uint64_t seed);

/// One rung of a Hyperband bracket: this many configurations trained to this many epochs.
struct Rung {
    int configurations = 0;
    int epochs = 0;
};
struct Bracket {
    int s = 0; ///< the bracket's index, s_max down to 0
    std::vector<Rung> rungs;
};
/// Hyperband's brackets for R = maxEpochs and eta, as MADlib's hyperband_schedule: s_max =
/// floor(log_eta R); bracket s starts n = ceil((s_max + 1) / (s + 1) * eta^s) configurations at r =
/// R eta^-s epochs; its rung i keeps floor(n eta^-i) of them, trained to round(r eta^i) epochs (at
/// least 1). ConfigError for R < 1 or eta < 2.
std::vector<Bracket> hyperbandPlan(int maxEpochs, int eta);
/// Epochs a plan trains when each configuration continues from its previous rung (what it costs).
int64_t hyperbandEpochs(const std::vector<Bracket>& plan);

} // namespace mppdl::tune
