#include "graph_module.h"

#include "mppdl/core/error.h"
#include "plan.h"

#include <algorithm>

namespace mppdl::model {

namespace {

// The positions `target` depends on, itself included, in ascending (execution) order.
std::vector<size_t> stepsFor(const std::vector<detail::PlannedLayer>& layers, size_t target) {
    std::vector<bool> needed(layers.size(), false);
    needed[target] = true;
    // Inputs always sit at lower positions, so one backward sweep finds every ancestor.
    for (size_t i = target + 1; i-- > 0;)
        if (needed[i])
            for (size_t p : layers[i].inputs)
                needed[p] = true;
    std::vector<size_t> steps;
    for (size_t i = 0; i <= target; ++i)
        if (needed[i])
            steps.push_back(i);
    return steps;
}

} // namespace

GraphModuleImpl::GraphModuleImpl(Architecture architecture) : m_architecture(std::move(architecture)) {
    auto plan = std::make_shared<detail::Plan>(detail::makePlan(m_architecture));
    if (!plan->analysis.ok())
        throw ConfigError("invalid architecture" +
                          (m_architecture.name.empty() ? "" : " \"" + m_architecture.name + "\"") + ":\n" +
                          formatProblems(plan->analysis.problems));
    m_analysis = plan->analysis;
    m_plan = std::move(plan);

    const auto& layers = m_plan->layers;
    m_output = m_plan->output;
    m_endsWithSoftmax = std::string(layers[m_output].kind->info.name) == "Softmax";
    m_logits = m_endsWithSoftmax ? layers[m_output].inputs.front() : m_output;
    m_outputSteps = stepsFor(layers, m_output);
    m_logitsSteps = stepsFor(layers, m_logits);
    reset();
}

void GraphModuleImpl::reset() {
    // Cloneable::clone() has cleared the registered children of a copy before calling this.
    m_nodes.clear();
    const auto& layers = m_plan->layers;
    for (size_t i = 0; i < layers.size(); ++i) {
        const detail::PlannedLayer& planned = layers[i];
        const LayerAnalysis& info = m_analysis.layers[i];
        detail::LayerOp op = planned.kind->build(planned.params, info.inputShapes, info.outputShape);
        Node node;
        node.inputs = planned.inputs;
        node.merge = op.merge;
        node.mergeArg = op.mergeArg;
        if (!op.module.is_empty()) {
            if (auto* dropout = dynamic_cast<detail::SeededDropoutImpl*>(op.module.ptr().get()))
                dropout->setGenerator(m_generator);
            register_module(info.name, op.module.ptr());
            node.module = std::move(op.module);
        }
        m_nodes.push_back(std::move(node));
    }
}

void GraphModuleImpl::setGenerator(const at::Generator& generator) {
    // A new holder, not an assignment into the shared one: clones must not share this one.
    m_generator = std::make_shared<at::Generator>(generator);
    for (auto& node : m_nodes)
        if (!node.module.is_empty())
            if (auto* dropout = dynamic_cast<detail::SeededDropoutImpl*>(node.module.ptr().get()))
                dropout->setGenerator(m_generator);
}

void GraphModuleImpl::checkInput(const torch::Tensor& x) const {
    const Shape& expected = m_analysis.inputShape;
    bool fits = x.dim() == static_cast<int64_t>(expected.size()) + 1;
    for (size_t d = 0; fits && d < expected.size(); ++d)
        fits = x.size(static_cast<int64_t>(d) + 1) == expected[d];
    if (!fits) {
        std::string got;
        for (int64_t d = 0; d < x.dim(); ++d)
            got += (d ? "x" : "") + std::to_string(x.size(d));
        throw ConfigError("the network \"" + m_architecture.name + "\" takes batches of " + formatShape(expected) +
                          " samples (B x " + formatShape(expected) + "), got a tensor of " +
                          (got.empty() ? "no dimensions" : got));
    }
}

void GraphModuleImpl::run(const torch::Tensor& x, const std::vector<size_t>& steps,
                          std::vector<torch::Tensor>& outputs) {
    checkInput(x);
    std::vector<torch::Tensor> gathered;
    for (size_t i : steps) {
        Node& node = m_nodes[i];
        if (!node.module.is_empty()) {
            outputs[i] = node.module.forward(outputs[node.inputs.front()]);
        } else if (node.merge) {
            gathered.clear();
            for (size_t p : node.inputs)
                gathered.push_back(outputs[p]);
            outputs[i] = node.merge(gathered, node.mergeArg);
        } else {
            outputs[i] = x;
        }
    }
}

torch::Tensor GraphModuleImpl::forward(const torch::Tensor& x) {
    std::vector<torch::Tensor> outputs(m_nodes.size());
    run(x, m_outputSteps, outputs);
    return outputs[m_output];
}

torch::Tensor GraphModuleImpl::forwardLogits(const torch::Tensor& x) {
    std::vector<torch::Tensor> outputs(m_nodes.size());
    run(x, m_logitsSteps, outputs);
    return outputs[m_logits];
}

std::vector<std::pair<std::string, torch::Tensor>> GraphModuleImpl::forwardAll(const torch::Tensor& x) {
    std::vector<size_t> all(m_nodes.size());
    for (size_t i = 0; i < all.size(); ++i)
        all[i] = i;
    std::vector<torch::Tensor> outputs(m_nodes.size());
    run(x, all, outputs);
    std::vector<std::pair<std::string, torch::Tensor>> named;
    for (size_t i = 0; i < all.size(); ++i)
        named.emplace_back(m_analysis.layers[i].name, std::move(outputs[i]));
    return named;
}

bool GraphModuleImpl::endsWithSoftmax() const { return m_endsWithSoftmax; }

const detail::Plan& GraphModuleImpl::plan() const { return *m_plan; }

torch::nn::Module* GraphModuleImpl::layerModule(size_t position) const {
    const Node& node = m_nodes.at(position);
    return node.module.is_empty() ? nullptr : node.module.ptr().get();
}

} // namespace mppdl::model
