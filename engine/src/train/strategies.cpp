#include "mppdl/train/strategies.h"

namespace mppdl::train {

namespace {

/// EASGD's communication period when none is given: the paper's tau.
constexpr int64_t kDefaultTau = 10;

} // namespace

const std::vector<StrategyKind>& strategies() {
    static const std::vector<StrategyKind> table = {
        {{"single", "one model trained on all rows (the reference the others are compared with)"},
         Join::None, // join
         false,      // segmented
         false,      // keepsMembers
         false,      // usesMovingRate
         0},         // defaultSyncEvery
        {{"model-averaging",
          "MADlib's fit: a replica per segment trains on its shard; the replicas are averaged, weighted "
          "by rows, after each pass (or every --sync-every minibatches) and the average is broadcast"},
         Join::Average, // join
         true,          // segmented
         false,         // keepsMembers
         false,         // usesMovingRate
         0},            // defaultSyncEvery
        {{"easgd",
          "elastic averaging SGD: every --sync-every minibatches (tau, default 10) each replica moves toward a "
          "center model by the moving rate and the center toward the replicas (alpha = 0.9 / segments)"},
         Join::Elastic, // join
         true,          // segmented
         false,         // keepsMembers
         true,          // usesMovingRate
         kDefaultTau},  // defaultSyncEvery
        {{"ensemble", "one independent model per segment; the prediction is the mean of their class probabilities"},
         Join::None, // join
         true,       // segmented
         true,       // keepsMembers
         false,      // usesMovingRate
         0},         // defaultSyncEvery
        {{"allreduce",
          "synchronous data parallel, as DDP: each step the segments' gradients are averaged, weighted by rows, "
          "so the replicas stay equal (one step over the union of the segments' minibatches)"},
         Join::Gradients, // join
         true,            // segmented
         false,           // keepsMembers
         false,           // usesMovingRate
         1},              // defaultSyncEvery
    };
    return table;
}

const StrategyKind* findStrategy(const std::string& name) { return findKind(strategies(), name); }

const std::vector<Choice>& strategyChoices() {
    static const std::vector<Choice> choices = choicesOf(strategies());
    return choices;
}

} // namespace mppdl::train
