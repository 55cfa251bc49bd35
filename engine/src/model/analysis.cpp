#include "mppdl/model/analysis.h"

#include "layer_table.h"
#include "plan.h"

#include <algorithm>
#include <functional>
#include <map>
#include <queue>
#include <set>

namespace mppdl::model {

namespace detail {

namespace {

// Names people bring from other frameworks that edit distance would not find.
const std::map<std::string, std::string> kTypeAliases = {
    {"linear", "Dense"},
    {"fullyconnected", "Dense"},
    {"concatenate", "Concat"},
    {"inputlayer", "Input"},
    {"batchnormalization", "BatchNorm"},
    {"maxpooling2d", "MaxPool2D"},
    {"averagepooling2d", "AvgPool2D"},
    {"avgpooling2d", "AvgPool2D"},
    {"convolution2d", "Conv2D"},
    {"softmaxlayer", "Softmax"},
};

std::string unknownTypeMessage(const std::string& type) {
    std::vector<std::string> known;
    for (const auto& kind : layerKinds())
        known.push_back(kind.info.name);
    std::string lowered = type;
    std::transform(lowered.begin(), lowered.end(), lowered.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string guess = closestName(type, known);
    if (auto alias = kTypeAliases.find(lowered); guess.empty() && alias != kTypeAliases.end())
        guess = alias->second;
    std::string message = "unknown layer type \"" + type + "\"";
    if (!guess.empty())
        return message + "; did you mean \"" + guess + "\"?";
    message += "; known types are ";
    for (size_t i = 0; i < known.size(); ++i)
        message += (i ? ", " : "") + known[i];
    return message;
}

std::string joinNames(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i)
        out += (i ? ", " : "") + names[i];
    return out;
}

std::string inputsText(int n) { return std::to_string(n) + (n == 1 ? " input" : " inputs"); }

// The strongly connected components with a cycle (more than one node, or a self-loop), each as
// the node indices of one cycle through it, following the data flow.
std::vector<std::vector<size_t>> findCycles(const std::vector<std::vector<size_t>>& successors,
                                            const std::vector<bool>& candidate) {
    const size_t n = successors.size();
    std::vector<int> index(n, -1), low(n, 0);
    std::vector<bool> onStack(n, false);
    std::vector<size_t> stack;
    std::vector<std::vector<size_t>> components;
    int counter = 0;
    // Recursion depth is bounded by the number of layers in cycles, which is small for any
    // network a person designs; the input is a user's document, but one with millions of layers
    // would already have failed to parse into memory long before.
    std::function<void(size_t)> visit = [&](size_t v) {
        index[v] = low[v] = counter++;
        stack.push_back(v);
        onStack[v] = true;
        for (size_t w : successors[v]) {
            if (!candidate[w])
                continue;
            if (index[w] < 0) {
                visit(w);
                low[v] = std::min(low[v], low[w]);
            } else if (onStack[w]) {
                low[v] = std::min(low[v], index[w]);
            }
        }
        if (low[v] == index[v]) {
            std::vector<size_t> component;
            size_t w;
            do {
                w = stack.back();
                stack.pop_back();
                onStack[w] = false;
                component.push_back(w);
            } while (w != v);
            components.push_back(std::move(component));
        }
    };
    for (size_t v = 0; v < n; ++v)
        if (candidate[v] && index[v] < 0)
            visit(v);

    std::vector<std::vector<size_t>> cycles;
    for (auto& component : components) {
        std::sort(component.begin(), component.end());
        const size_t start = component.front();
        const std::set<size_t> members(component.begin(), component.end());
        const bool selfLoop = std::count(successors[start].begin(), successors[start].end(), start) > 0;
        if (component.size() == 1 && !selfLoop)
            continue;
        if (selfLoop) {
            cycles.push_back({start});
            continue;
        }
        // Shortest way round from the first layer in file order back to itself.
        std::map<size_t, size_t> parent;
        std::queue<size_t> queue;
        queue.push(start);
        parent[start] = start;
        std::vector<size_t> cycle;
        while (!queue.empty() && cycle.empty()) {
            const size_t v = queue.front();
            queue.pop();
            for (size_t w : successors[v]) {
                if (w == start) {
                    for (size_t u = v; u != start; u = parent[u])
                        cycle.push_back(u);
                    cycle.push_back(start);
                    std::reverse(cycle.begin(), cycle.end());
                    break;
                }
                if (members.count(w) && !parent.count(w)) {
                    parent[w] = v;
                    queue.push(w);
                }
            }
        }
        cycles.push_back(std::move(cycle));
    }
    std::sort(cycles.begin(), cycles.end());
    return cycles;
}

/// makePlan()'s passes over an architecture, in order; each adds the problems it finds.
class Planner {
public:
    explicit Planner(const Architecture& architecture)
        : m_architecture(architecture), layers(architecture.layers), n(layers.size()), analysis(plan.analysis),
          failed(n, false), kinds(n, nullptr), predecessors(n), successors(n), params(n), position(n, -1), shapes(n) {}

    Plan run() {
        if (n == 0) {
            problem("architecture", "has no layers; start with an Input layer");
            return std::move(plan);
        }
        checkNames();
        checkTypes();
        connect();
        resolveParameters();
        orderLayers();
        inferShapes();
        findOutput();
        sortProblems();
        return std::move(plan);
    }

private:
    void problem(const std::string& where, const std::string& message) {
        analysis.problems.push_back({where, message});
    }
    std::string where(size_t i) const {
        return layers[i].name.empty() ? "layer " + std::to_string(i + 1) : layers[i].name;
    }

    /// Every layer has a name of its own, without '.'.
    void checkNames() {
        std::map<std::string, std::vector<size_t>> uses;
        for (size_t i = 0; i < n; ++i) {
            const std::string& name = layers[i].name;
            if (name.empty()) {
                problem(where(i), "has an empty name");
                failed[i] = true;
                continue;
            }
            if (name.find('.') != std::string::npos) {
                problem(name, "names may not contain '.' (it separates names in parameter keys "
                              "such as \"conv1.weight\")");
                failed[i] = true;
            }
            uses[name].push_back(i);
            byName.emplace(name, i);
        }
        for (const auto& [name, at] : uses) {
            if (at.size() < 2)
                continue;
            std::vector<std::string> positions;
            for (size_t i : at) {
                positions.push_back(std::to_string(i + 1));
                failed[i] = true;
            }
            problem(name, "the name is used by more than one layer (layers " + joinNames(positions) + ")");
        }
    }

    /// Every type is known; exactly one Input layer.
    void checkTypes() {
        for (size_t i = 0; i < n; ++i) {
            kinds[i] = findLayerKind(layers[i].type);
            if (!kinds[i]) {
                problem(where(i), unknownTypeMessage(layers[i].type));
                failed[i] = true;
            } else if (kinds[i]->info.minInputs == 0) {
                inputLayers.push_back(i);
            }
        }
        if (inputLayers.empty()) {
            problem("architecture", "has no Input layer; start with one, e.g. {\"type\": \"Input\", "
                                    "\"shape\": [1, 28, 28]}");
        } else if (inputLayers.size() > 1) {
            std::vector<std::string> names;
            for (size_t i : inputLayers)
                names.push_back(where(i));
            problem("architecture",
                    "has more than one Input layer (" + joinNames(names) + "); a network takes one input");
        }
    }

    /// predecessors[i] lists the layers feeding i, in the order written; the counts fit the types.
    void connect() {
        for (size_t i = 0; i < n; ++i) {
            const Layer& layer = layers[i];
            const LayerKind* kind = kinds[i];
            const bool takesInputs = !kind || kind->info.minInputs > 0;
            int count = static_cast<int>(layer.inputs.size());
            if (layer.inputs.empty() && takesInputs) {
                if (i == 0) {
                    if (!inputLayers.empty())
                        problem(where(i), "has no input: it is the first layer and names no \"inputs\"");
                    failed[i] = true;
                    continue;
                }
                predecessors[i].push_back(i - 1);
                count = 1;
            }
            for (const auto& name : layer.inputs) {
                auto it = byName.find(name);
                if (it == byName.end()) {
                    std::vector<std::string> names;
                    for (const auto& entry : byName)
                        names.push_back(entry.first);
                    const std::string guess = closestName(name, names);
                    problem(where(i), "input \"" + name + "\" is not a layer" +
                                          (guess.empty() ? "" : " (did you mean \"" + guess + "\"?)"));
                    failed[i] = true;
                    continue;
                }
                predecessors[i].push_back(it->second);
            }
            if (kind) {
                const LayerTypeInfo& info = kind->info;
                const bool tooFew = count < info.minInputs;
                const bool tooMany = info.maxInputs >= 0 && count > info.maxInputs;
                if (tooFew || tooMany) {
                    std::string expected;
                    if (info.maxInputs == 0)
                        expected = "no inputs";
                    else if (info.minInputs == info.maxInputs)
                        expected = inputsText(info.minInputs);
                    else if (info.maxInputs < 0)
                        expected = "at least " + inputsText(info.minInputs);
                    else
                        expected = std::to_string(info.minInputs) + " to " + inputsText(info.maxInputs);
                    problem(where(i), std::string(info.name) + " takes " + expected + ", got " + std::to_string(count));
                    failed[i] = true;
                }
            }
        }
        for (size_t i = 0; i < n; ++i)
            for (size_t p : predecessors[i])
                successors[p].push_back(i);
    }

    /// Each layer's parameters, resolved against its type and checked.
    void resolveParameters() {
        for (size_t i = 0; i < n; ++i) {
            if (!kinds[i])
                continue;
            Messages messages;
            params[i] = resolveParams(kinds[i]->info, layers[i].params, messages);
            if (messages.empty())
                kinds[i]->checkParams(params[i], messages);
            for (auto& m : messages)
                problem(where(i), m);
            if (!messages.empty())
                failed[i] = true;
        }
    }

    /// Execution order: Kahn's algorithm, taking the earliest layer in file order first so that a
    /// sequential design runs in the order written; what is left over is on a cycle.
    void orderLayers() {
        std::vector<size_t> pending(n);
        std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
        for (size_t i = 0; i < n; ++i) {
            pending[i] = predecessors[i].size();
            if (pending[i] == 0)
                ready.push(i);
        }
        while (!ready.empty()) {
            const size_t v = ready.top();
            ready.pop();
            order.push_back(v);
            for (size_t w : successors[v])
                if (--pending[w] == 0)
                    ready.push(w);
        }
        if (order.size() < n) {
            std::vector<bool> left(n, true);
            for (size_t v : order)
                left[v] = false;
            for (const auto& cycle : findCycles(successors, left)) {
                std::string path;
                for (size_t v : cycle)
                    path += where(v) + " -> ";
                path += where(cycle.front());
                problem(where(cycle.front()), "is part of a cycle: " + path);
            }
        }
    }

    /// Shapes, parameters and FLOPs in execution order.
    void inferShapes() {
        for (size_t v : order) {
            position[v] = static_cast<int>(plan.layers.size());
            LayerAnalysis info;
            info.name = layers[v].name;
            info.type = layers[v].type;
            PlannedLayer planned;
            planned.kind = kinds[v];
            planned.params = params[v];
            bool inputsKnown = true;
            for (size_t p : predecessors[v]) {
                planned.inputs.push_back(static_cast<size_t>(position[p]));
                info.inputShapes.push_back(shapes[p].value_or(Shape{}));
                inputsKnown = inputsKnown && shapes[p].has_value();
            }
            if (!failed[v] && inputsKnown) {
                Messages messages;
                std::optional<Shape> out = kinds[v]->inferShape(params[v], info.inputShapes, messages);
                for (auto& m : messages)
                    problem(where(v), m);
                if (out && numel(*out) > kMaxValue) {
                    problem(where(v), "output " + formatShape(*out) + " is too large (" + std::to_string(numel(*out)) +
                                          " elements per sample)");
                    out.reset();
                }
                if (out) {
                    info.params = kinds[v]->countParams(params[v], info.inputShapes, *out);
                    info.flops = kinds[v]->countFlops(params[v], info.inputShapes, *out);
                    if (info.params > kMaxValue) {
                        problem(where(v), "has too many parameters (" + std::to_string(info.params) + ")");
                        out.reset();
                        info.params = info.flops = 0;
                    }
                }
                if (out) {
                    info.outputShape = *out;
                    shapes[v] = std::move(out);
                }
            }
            analysis.totalParams = addSat(analysis.totalParams, info.params);
            analysis.totalFlops = addSat(analysis.totalFlops, info.flops);
            analysis.layers.push_back(std::move(info));
            plan.layers.push_back(std::move(planned));
        }
    }

    /// The network's output: the one named, or the one layer that feeds no other.
    void findOutput() {
        std::optional<size_t> output;
        if (!m_architecture.output.empty()) {
            auto it = byName.find(m_architecture.output);
            if (it == byName.end())
                problem("architecture", "output \"" + m_architecture.output + "\" is not a layer");
            else
                output = it->second;
        } else {
            std::vector<size_t> sinks;
            for (size_t i = 0; i < n; ++i)
                if (successors[i].empty())
                    sinks.push_back(i);
            if (sinks.size() == 1) {
                output = sinks.front();
            } else if (sinks.size() > 1) {
                std::vector<std::string> names;
                for (size_t i : sinks)
                    names.push_back(where(i));
                problem("architecture", "several layers feed no other layer (" + joinNames(names) +
                                            "); connect them or set \"output\" to the network's output");
            }
        }
        if (output) {
            analysis.outputLayer = layers[*output].name;
            if (position[*output] >= 0)
                plan.output = static_cast<size_t>(position[*output]);
            if (shapes[*output])
                analysis.outputShape = *shapes[*output];
        }
        if (inputLayers.size() == 1 && shapes[inputLayers.front()]) {
            analysis.inputShape = *shapes[inputLayers.front()];
            const auto& params = layers[inputLayers.front()].params;
            const auto layout = params.find("layout"); // checked by the Input's own check
            if (layout != params.end() && std::holds_alternative<std::string>(layout->second))
                analysis.inputLayout = std::get<std::string>(layout->second);
        }
    }

    /// Problems were found pass by pass; list them as a reader meets them: the design as a whole
    /// first, then layer by layer in file order.
    void sortProblems() {
        std::map<std::string, size_t> rank;
        for (size_t i = n; i-- > 0;)
            rank[where(i)] = i + 1;
        rank["architecture"] = 0;
        auto rankOf = [&](const std::string& w) {
            auto it = rank.find(w);
            return it == rank.end() ? n + 1 : it->second;
        };
        std::stable_sort(analysis.problems.begin(), analysis.problems.end(),
                         [&](const Problem& a, const Problem& b) { return rankOf(a.where) < rankOf(b.where); });
    }

    // What the passes share keeps the plain names it had as one function's locals (layers, n,
    // kinds...): the passes read as the analysis they are, not as member plumbing.
    const Architecture& m_architecture;
    const std::vector<Layer>& layers;
    const size_t n;
    Plan plan;
    Analysis& analysis;
    /// A layer whose own definition is wrong gets no shape, and neither does anything after it.
    std::vector<bool> failed;
    std::map<std::string, size_t> byName;
    std::vector<const LayerKind*> kinds;
    std::vector<size_t> inputLayers;
    std::vector<std::vector<size_t>> predecessors, successors;
    std::vector<LayerParams> params;
    std::vector<size_t> order;
    std::vector<int> position;
    std::vector<std::optional<Shape>> shapes;
};

} // namespace

Plan makePlan(const Architecture& architecture) { return Planner(architecture).run(); }

} // namespace detail

int64_t Analysis::numClasses() const { return outputShape.size() == 1 ? outputShape[0] : 0; }

Analysis analyze(const Architecture& architecture) { return detail::makePlan(architecture).analysis; }

} // namespace mppdl::model
