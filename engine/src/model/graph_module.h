#pragma once

// Internal: the libtorch module built from an Architecture. Public headers stay free of torch.

#include "layer_table.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/architecture.h"

#include <torch/torch.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace mppdl::model {

namespace detail {
struct Plan;
}

/// Executes a valid layer graph in topological order. Cloneable, so strategies can make one
/// replica per segment with `clone()`. Submodules are registered under the layer names, so
/// state_dict keys read "conv1.weight", "bn1.running_mean". Like any torch module, one instance
/// must not run forward on two threads at once while training (BatchNorm updates its buffers).
class GraphModuleImpl : public torch::nn::Cloneable<GraphModuleImpl> {
public:
    /// Throws ConfigError listing every problem when the design is invalid.
    explicit GraphModuleImpl(Architecture architecture);

    /// (Re)creates the submodules with fresh parameters; required by Cloneable.
    void reset() override;

    /// Input [B, ...inputShape] -> the network's output as designed (probabilities when the design
    /// ends with Softmax). Runs only the layers the output depends on. Throws ConfigError when x
    /// does not have the shape [B, ...inputShape].
    torch::Tensor forward(const torch::Tensor& x);
    /// The output before a trailing Softmax (logits); what cross-entropy and prediction use.
    torch::Tensor forwardLogits(const torch::Tensor& x);
    /// Every layer's output in execution order (the Input layer's is x itself), for shape checks
    /// and inspection; the same order as analysis().layers.
    std::vector<std::pair<std::string, torch::Tensor>> forwardAll(const torch::Tensor& x);

    /// The generator Dropout layers draw from (a CPU generator for CPU tensors); undefined means
    /// torch's global generator. A clone shares its original's until it is given its own.
    void setGenerator(const at::Generator& generator);

    bool endsWithSoftmax() const;
    /// What the ONNX exporter walks: the resolved layers in execution order (parallel to
    /// analysis().layers), the positions forwardLogits() runs (ascending), the logits layer, and
    /// each layer's built module (nullptr for Input and the merges).
    const detail::Plan& plan() const;
    const std::vector<size_t>& logitsSteps() const { return m_logitsSteps; }
    size_t logitsLayer() const { return m_logits; }
    torch::nn::Module* layerModule(size_t position) const;
    const Architecture& architecture() const { return m_architecture; }
    const Analysis& analysis() const { return m_analysis; }

private:
    /// One layer ready to run.
    struct Node {
        std::vector<size_t> inputs;      // positions in m_nodes
        torch::nn::AnyModule module;     // single-input layers
        detail::MergeFn merge = nullptr; // Add, Concat
        int64_t mergeArg = 0;
        // Neither module nor merge: the Input layer, which passes x through.
    };

    void checkInput(const torch::Tensor& x) const;
    /// Runs the nodes of `steps` (ascending positions) into `outputs`, which has one slot per node.
    void run(const torch::Tensor& x, const std::vector<size_t>& steps, std::vector<torch::Tensor>& outputs);

    Architecture m_architecture;
    Analysis m_analysis;
    std::shared_ptr<const detail::Plan> m_plan; // immutable, shared by clones
    std::vector<Node> m_nodes;                  // in execution order
    std::vector<size_t> m_outputSteps;          // what forward() runs
    std::vector<size_t> m_logitsSteps;          // what forwardLogits() runs
    size_t m_output = 0;
    size_t m_logits = 0;
    bool m_endsWithSoftmax = false;
    std::shared_ptr<at::Generator> m_generator = std::make_shared<at::Generator>();
};

TORCH_MODULE(GraphModule);

} // namespace mppdl::model
