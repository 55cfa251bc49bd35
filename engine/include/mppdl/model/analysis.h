#pragma once

#include "mppdl/core/error.h"
#include "mppdl/model/architecture.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::model {

/// What the spec alone says about one layer.
struct LayerAnalysis {
    std::string name;
    std::string type;
    std::vector<Shape> inputShapes;
    Shape outputShape;
    int64_t params = 0; ///< trainable parameters
    int64_t flops = 0;  ///< forward FLOPs per sample (a multiply-add counts 2)
};

/// The result of validating a design: every problem found, and for a valid design the layers in
/// execution (topological) order with their shapes, parameters and FLOPs.
struct Analysis {
    /// Each names the node (Problem::where is the layer name, or "architecture") and says what is
    /// wrong, with the shapes involved for shape errors. Empty for a valid design.
    std::vector<Problem> problems;
    /// Every layer outside a cycle, in execution order. For an invalid design a layer whose
    /// shape could not be inferred has an empty outputShape (and 0 params and FLOPs), so an
    /// editor can still show what is known; the totals add up what is known.
    std::vector<LayerAnalysis> layers;
    /// The name of the output layer (Architecture::output or the one sink); empty if unknown.
    std::string outputLayer;
    Shape inputShape;
    /// Where the rows this network reads keep a sample's channels: its Input's "layout", "chw"
    /// (the engine's) or "hwc" (a Keras model's channels_last), transposed to chw when read.
    std::string inputLayout = "chw";
    Shape outputShape;
    int64_t totalParams = 0;
    int64_t totalFlops = 0;

    bool ok() const { return problems.empty(); }
    /// Classes the network predicts: the size of a 1-D output, else 0.
    int64_t numClasses() const;
};

/// Validates and analyzes a design; never throws for an invalid user design and reports every
/// problem, not just the first. Checks: exactly one Input, unique non-empty names without '.',
/// known types (suggesting the closest), required, known and well-typed parameters in range,
/// inputs that exist, the number of inputs a type takes, no cycles (naming the layers in each),
/// one output, and that every layer's input shapes fit it (e.g. Dense after an unflattened 3-D
/// tensor, a kernel larger than its input, Add of different shapes); also that no tensor or
/// layer is absurdly large (over 2^31 elements or parameters). Layers downstream of a layer that
/// failed are not checked against shapes, so one mistake gives one problem.
Analysis analyze(const Architecture& architecture);

} // namespace mppdl::model
