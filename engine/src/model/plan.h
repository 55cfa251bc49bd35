#pragma once

// Internal: what analyze() works out, in the form the module builder needs.

#include "layer_table.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/architecture.h"

#include <cstddef>
#include <vector>

namespace mppdl::model::detail {

/// One layer in execution order, with everything needed to build it.
struct PlannedLayer {
    const LayerKind* kind = nullptr; ///< nullptr for an unknown type
    LayerParams params;
    std::vector<size_t> inputs; ///< positions in Plan::layers
};

/// The analysis of a design plus the resolved layers. Plan::layers is parallel to
/// analysis.layers; it is complete and consistent only when analysis.ok().
struct Plan {
    Analysis analysis;
    std::vector<PlannedLayer> layers;
    size_t output = 0; ///< position of the output layer in layers (valid when analysis.ok())
};

/// Validates and analyzes a design; analyze() returns its .analysis. Never throws for an invalid
/// design.
Plan makePlan(const Architecture& architecture);

} // namespace mppdl::model::detail
