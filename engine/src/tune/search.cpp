#include "mppdl/tune/search.h"

#include "mppdl/core/error.h"
#include "mppdl/train/optimizers.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>

namespace mppdl::tune {

namespace {

using nlohmann::json;

/// A searchable parameter, in the order of SearchSpace::parameters: how it is written, checked and
/// set on a configuration. A key the file leaves out takes Configuration's default.
struct ParameterKind {
    const char* name;
    const char* help;
    bool text; ///< names, not numbers
    bool integer;
    /// Numbers: what is wrong with a value it cannot take (nullptr when it is fine).
    const char* (*bad)(double v);
    /// Names: the ones it may take (nullptr: any, as architectures, which the caller resolves).
    const std::vector<Choice>& (*names)();
    /// Sets it on a configuration (`label` for names, `value` for numbers), and reads it back.
    void (*assign)(Configuration& c, double value, const std::string& label);
    double (*value)(const Configuration& c);
    std::string (*label)(const Configuration& c);
};

const char* anyNumber(double) { return nullptr; }
const char* atLeastOne(double v) { return v < 1 ? "is not a count of at least 1" : v > 1e9 ? "is too large" : nullptr; }
double noValue(const Configuration&) { return 0; }
std::string noLabel(const Configuration&) { return {}; }

const std::vector<ParameterKind>& parameterKinds() {
    static const std::vector<ParameterKind> kinds = {
        {"architecture", "architecture names (the project's, or bundled): \"lenet5\" or [\"mlp\", \"lenet5\"]", true,
         false, anyNumber, nullptr, [](Configuration& c, double, const std::string& l) { c.architecture = l; }, noValue,
         [](const Configuration& c) { return c.architecture; }},
        {"optimizer", "sgd, adam, adamw, rmsprop: one or a list", true, false, anyNumber, train::optimizerChoices,
         [](Configuration& c, double, const std::string& l) { c.optimizer = l; }, noValue,
         [](const Configuration& c) { return c.optimizer; }},
        {"lr", "learning rate > 0: a number, a list, or {\"range\": [1e-4, 1e-1], \"scale\": \"log\", \"steps\": 4}",
         false, false, [](double v) -> const char* { return v <= 0 ? "is not a positive learning rate" : nullptr; },
         nullptr, [](Configuration& c, double v, const std::string&) { c.lr = v; },
         [](const Configuration& c) { return c.lr; }, noLabel},
        {"momentum", "SGD/RMSprop momentum in [0, 1): a number, a list or a range", false, false,
         [](double v) -> const char* { return v < 0 || v >= 1 ? "is not a momentum in [0, 1)" : nullptr; }, nullptr,
         [](Configuration& c, double v, const std::string&) { c.momentum = v; },
         [](const Configuration& c) { return c.momentum; }, noLabel},
        {"weight_decay", "L2 penalty >= 0: a number, a list or a range", false, false,
         [](double v) -> const char* { return v < 0 ? "is a negative weight decay" : nullptr; }, nullptr,
         [](Configuration& c, double v, const std::string&) { c.weightDecay = v; },
         [](const Configuration& c) { return c.weightDecay; }, noLabel},
        {"batch_size", "minibatch rows >= 1: a number, a list or a range (rounded)", false, true,
         [](double v) -> const char* { return v < 1 ? "is not a batch size of at least 1" : atLeastOne(v); }, nullptr,
         [](Configuration& c, double v, const std::string&) { c.batchSize = int64_t(std::llround(v)); },
         [](const Configuration& c) { return double(c.batchSize); }, noLabel},
        {"epochs", "epochs of a grid or random search's configurations >= 1 (default 5)", false, true,
         [](double v) -> const char* { return v < 1 ? "is not a count of at least 1 epoch" : atLeastOne(v); }, nullptr,
         [](Configuration& c, double v, const std::string&) { c.epochs = int(std::lround(v)); },
         [](const Configuration& c) { return double(c.epochs); }, noLabel},
    };
    return kinds;
}

std::string show(const json& j) {
    auto text = j.dump();
    return text.size() > 80 ? text.substr(0, 77) + "..." : text;
}

ParameterSpace parseParameter(const ParameterKind& kind, const json& j, const std::string& where) {
    ParameterSpace p;
    p.name = kind.name;
    p.integer = kind.integer;
    const std::string at = where + ": \"" + p.name + "\": ";
    auto number = [&](const json& v) {
        if (!v.is_number())
            throw ConfigError(at + show(v) + " is not a number");
        const double d = v.get<double>();
        if (!std::isfinite(d))
            throw ConfigError(at + show(v) + " is not a finite number");
        if (const char* problem = kind.bad(d))
            throw ConfigError(at + show(v) + " " + problem);
        if (kind.integer && d != std::floor(d))
            throw ConfigError(at + show(v) + " is not a whole number");
        return d;
    };
    auto name = [&](const json& v) {
        if (!v.is_string() || v.get<std::string>().empty())
            throw ConfigError(at + show(v) + " is not a name");
        const auto text = v.get<std::string>();
        if (kind.names && !findChoice(kind.names(), text))
            throw ConfigError(at + "\"" + text + "\" is not a known " + p.name + " (" + joinChoiceNames(kind.names()) +
                              ")");
        return text;
    };
    if (j.is_array()) {
        if (j.empty())
            throw ConfigError(at + "an empty list (give at least one value)");
        for (const auto& v : j) {
            if (kind.text)
                p.labels.push_back(name(v));
            else
                p.values.push_back(number(v));
        }
    } else if (j.is_object()) {
        if (kind.text)
            throw ConfigError(at + show(j) + ": names are a list, not a range");
        for (auto it = j.begin(); it != j.end(); ++it)
            if (it.key() != "range" && it.key() != "scale" && it.key() != "steps")
                throw ConfigError(at + "unknown key \"" + it.key() + "\" in a range (range, scale, steps)");
        if (!j.contains("range") || !j["range"].is_array() || j["range"].size() != 2)
            throw ConfigError(at + show(j) +
                              ": a range is {\"range\": [low, high], \"scale\": \"linear\"|\"log\", "
                              "\"steps\": N}");
        p.low = number(j["range"][0]);
        p.high = number(j["range"][1]);
        if (p.low > p.high)
            throw ConfigError(at + "the range's low " + show(j["range"][0]) + " is above its high " +
                              show(j["range"][1]));
        const std::string scale = j.value("scale", std::string("linear"));
        if (scale != "linear" && scale != "log")
            throw ConfigError(at + "scale \"" + scale + "\" is not linear or log");
        p.log = scale == "log";
        if (p.log && p.low <= 0)
            throw ConfigError(at + "a log range must be above 0, got " + show(j["range"][0]));
        if (j.contains("steps")) {
            const auto& steps = j["steps"];
            if (!steps.is_number_integer() || steps.get<int64_t>() < 1 || steps.get<int64_t>() > 10000)
                throw ConfigError(at + "steps " + show(steps) + " is not a count from 1 to 10000");
            p.steps = int(steps.get<int64_t>());
        }
    } else if (kind.text) {
        p.labels.push_back(name(j));
    } else {
        p.values.push_back(number(j));
    }
    return p;
}

int positiveInt(const json& j, const std::string& key, int low, const std::string& where) {
    if (!j.is_number_integer() || j.get<int64_t>() < low || j.get<int64_t>() > 1000000)
        throw ConfigError(where + ": \"" + key + "\": " + show(j) + " is not a whole number of at least " +
                          std::to_string(low));
    return int(j.get<int64_t>());
}

/// A range's grid points: `steps` values from low to high, evenly spaced in its scale.
std::vector<double> gridPoints(const ParameterSpace& p) {
    if (!p.isRange())
        return p.values;
    if (p.steps < 1)
        throw ConfigError("\"" + p.name + "\": a grid search needs \"steps\" in its range (how many values from " +
                          std::to_string(p.low) + " to " + std::to_string(p.high) + ")");
    std::vector<double> out;
    for (int i = 0; i < p.steps; ++i) {
        const double t = p.steps == 1 ? 0.0 : double(i) / double(p.steps - 1);
        double v = p.log ? std::exp(std::log(p.low) + t * (std::log(p.high) - std::log(p.low)))
                         : p.low + t * (p.high - p.low);
        if (p.integer)
            v = std::round(v);
        // Rounding may repeat a value (a narrow integer range): a grid lists each once.
        if (std::find(out.begin(), out.end(), v) == out.end())
            out.push_back(v);
    }
    return out;
}

/// Sets parameter p of `c` to `value` (numbers) or `label` (names).
void assign(Configuration& c, const ParameterSpace& p, double value, const std::string& label) {
    for (const auto& kind : parameterKinds())
        if (p.name == kind.name)
            return kind.assign(c, value, label);
    throw InternalError("search space with an unknown parameter " + p.name);
}

/// Numbers as short as they can be written and read back exactly ("0.01", not "0.01000000").
std::string number(double v) {
    std::ostringstream s;
    s.precision(6);
    s << v;
    return s.str();
}

} // namespace

const ParameterSpace& SearchSpace::parameter(const std::string& name) const {
    for (const auto& p : parameters)
        if (p.name == name)
            return p;
    throw InternalError("search space without parameter " + name);
}

const std::vector<std::pair<const char*, const char*>>& searchSpaceKeys() {
    static const std::vector<std::pair<const char*, const char*>> keys = [] {
        std::vector<std::pair<const char*, const char*>> out;
        for (const auto& k : parameterKinds())
            out.emplace_back(k.name, k.help);
        out.emplace_back("samples", "random search: how many configurations (default 8)");
        out.emplace_back("seed", "random search and Hyperband's sampling: the generator's seed (default 0)");
        out.emplace_back("max_epochs", "Hyperband: the most epochs a configuration trains, R (default 9)");
        out.emplace_back("eta", "Hyperband: keep 1/eta of the configurations at each rung (default 3)");
        return out;
    }();
    return keys;
}

SearchSpace parseSearchSpace(const std::string& text, const std::string& where) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        throw ConfigError(where + ": not valid JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object())
        throw ConfigError(where + ": a search space is a JSON object of parameters");
    // "architectures" is accepted for "architecture": a list of them reads naturally either way.
    if (j.contains("architectures")) {
        if (j.contains("architecture"))
            throw ConfigError(where + ": give \"architecture\" or \"architectures\", not both");
        j["architecture"] = j["architectures"];
        j.erase("architectures");
    }
    for (auto it = j.begin(); it != j.end(); ++it) {
        const auto& keys = searchSpaceKeys();
        if (std::none_of(keys.begin(), keys.end(), [&](const auto& k) { return it.key() == k.first; })) {
            std::string list;
            for (const auto& k : keys)
                list += std::string(list.empty() ? "" : ", ") + k.first;
            throw ConfigError(where + ": unknown key \"" + it.key() + "\" (known: " + list + ")");
        }
    }
    SearchSpace space;
    for (const auto& kind : parameterKinds()) {
        if (j.contains(kind.name)) {
            space.parameters.push_back(parseParameter(kind, j[kind.name], where));
            continue;
        }
        if (std::string(kind.name) == "architecture")
            throw ConfigError(where + ": no \"architecture\": name the architectures to search, e.g. "
                                      "\"architecture\": [\"mlp\", \"lenet5\"]");
        const Configuration defaults;
        ParameterSpace p;
        p.name = kind.name;
        p.integer = kind.integer;
        if (kind.text)
            p.labels.push_back(kind.label(defaults));
        else
            p.values.push_back(kind.value(defaults));
        space.parameters.push_back(p);
    }
    if (j.contains("samples"))
        space.samples = positiveInt(j["samples"], "samples", 1, where);
    if (j.contains("seed")) {
        if (!j["seed"].is_number_unsigned())
            throw ConfigError(where + ": \"seed\": " + show(j["seed"]) + " is not a whole number of at least 0");
        space.seed = j["seed"].get<uint64_t>();
    }
    if (j.contains("max_epochs"))
        space.maxEpochs = positiveInt(j["max_epochs"], "max_epochs", 1, where);
    if (j.contains("eta"))
        space.eta = positiveInt(j["eta"], "eta", 2, where);
    return space;
}

std::string Configuration::describe() const {
    std::ostringstream s;
    s << architecture << " " << optimizer << " lr " << number(lr);
    if (momentum > 0)
        s << " momentum " << number(momentum);
    if (weightDecay > 0)
        s << " wd " << number(weightDecay);
    s << " batch " << batchSize;
    return s.str();
}

std::string Configuration::toJson() const {
    return json{{"architecture", architecture}, {"optimizer", optimizer},  {"lr", lr},        {"momentum", momentum},
                {"weight_decay", weightDecay},  {"batch_size", batchSize}, {"epochs", epochs}}
        .dump();
}

Configuration Configuration::fromJson(const std::string& text) {
    const auto j = json::parse(text);
    Configuration c;
    c.architecture = j.at("architecture").get<std::string>();
    c.optimizer = j.at("optimizer").get<std::string>();
    c.lr = j.at("lr").get<double>();
    c.momentum = j.at("momentum").get<double>();
    c.weightDecay = j.at("weight_decay").get<double>();
    c.batchSize = j.at("batch_size").get<int64_t>();
    c.epochs = j.at("epochs").get<int>();
    return c;
}

bool Configuration::operator==(const Configuration& o) const {
    return architecture == o.architecture && optimizer == o.optimizer && lr == o.lr && momentum == o.momentum &&
           weightDecay == o.weightDecay && batchSize == o.batchSize && epochs == o.epochs;
}

std::vector<Configuration> gridConfigurations(const SearchSpace& space) {
    // Each parameter's grid values (indexes into labels for names).
    std::vector<std::vector<double>> axes;
    for (const auto& p : space.parameters) {
        if (!p.labels.empty()) {
            std::vector<double> indexes;
            for (size_t i = 0; i < p.labels.size(); ++i)
                indexes.push_back(double(i));
            axes.push_back(indexes);
        } else {
            axes.push_back(gridPoints(p));
        }
    }
    size_t total = 1;
    for (const auto& a : axes) {
        total *= a.size();
        if (total > 100000)
            throw ConfigError("the grid has more than 100,000 configurations: narrow the lists or the steps");
    }
    std::vector<Configuration> out;
    std::vector<size_t> at(axes.size(), 0);
    for (size_t n = 0; n < total; ++n) {
        Configuration c;
        for (size_t k = 0; k < axes.size(); ++k) {
            const auto& p = space.parameters[k];
            const double v = axes[k][at[k]];
            assign(c, p, v, p.labels.empty() ? std::string() : p.labels[size_t(v)]);
        }
        out.push_back(c);
        // Odometer: the last parameter turns fastest.
        for (size_t k = axes.size(); k-- > 0;) {
            if (++at[k] < axes[k].size())
                break;
            at[k] = 0;
        }
    }
    return out;
}

std::vector<Configuration> randomConfigurations(const SearchSpace& space, int count, uint64_t seed) {
    if (count < 1)
        throw ConfigError("a random search needs at least 1 configuration, got " + std::to_string(count));
    std::mt19937_64 gen(seed);
    // Uniform in [0, 1) from 53 random bits: std::uniform_real_distribution differs between
    // standard libraries, and a seed must give the same search everywhere.
    auto unit = [&] { return double(gen() >> 11) * (1.0 / 9007199254740992.0); };
    auto pick = [&](size_t n) { return std::min(n - 1, size_t(unit() * double(n))); };
    std::vector<Configuration> out;
    for (int i = 0; i < count; ++i) {
        Configuration c;
        for (const auto& p : space.parameters) {
            if (!p.labels.empty()) {
                assign(c, p, 0, p.labels[pick(p.labels.size())]);
            } else if (!p.values.empty()) {
                assign(c, p, p.values[pick(p.values.size())], {});
            } else {
                const double t = unit();
                double v = p.log ? std::exp(std::log(p.low) + t * (std::log(p.high) - std::log(p.low)))
                                 : p.low + t * (p.high - p.low);
                assign(c, p, p.integer ? std::round(v) : v, {});
            }
        }
        out.push_back(c);
    }
    return out;
}

std::vector<Bracket> hyperbandPlan(int maxEpochs, int eta) {
    if (maxEpochs < 1)
        throw ConfigError("Hyperband needs max_epochs of at least 1, got " + std::to_string(maxEpochs));
    if (eta < 2)
        throw ConfigError("Hyperband needs eta of at least 2, got " + std::to_string(eta));
    // s_max = floor(log_eta R), computed in integers: a floating log rounds 3^4 = 81 to 3.9999.
    int sMax = 0;
    for (int64_t p = eta; p <= maxEpochs; p *= eta)
        ++sMax;
    std::vector<Bracket> plan;
    for (int s = sMax; s >= 0; --s) {
        Bracket b;
        b.s = s;
        const double etaS = std::pow(double(eta), s);
        const int n = int(std::ceil(double(sMax + 1) / double(s + 1) * etaS - 1e-9));
        const double r = double(maxEpochs) / etaS;
        for (int i = 0; i <= s; ++i) {
            Rung rung;
            rung.configurations = int(std::floor(double(n) * std::pow(double(eta), -i) + 1e-9));
            rung.epochs = std::max(1, int(std::lround(r * std::pow(double(eta), i))));
            if (rung.configurations < 1)
                break;
            b.rungs.push_back(rung);
        }
        plan.push_back(b);
    }
    return plan;
}

int64_t hyperbandEpochs(const std::vector<Bracket>& plan) {
    int64_t total = 0;
    for (const auto& b : plan) {
        int previous = 0;
        for (const auto& rung : b.rungs) {
            total += int64_t(rung.configurations) * (rung.epochs - previous);
            previous = rung.epochs;
        }
    }
    return total;
}

} // namespace mppdl::tune
