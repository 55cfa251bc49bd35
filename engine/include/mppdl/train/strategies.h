#pragma once

#include "mppdl/train/optimizers.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::train {

/// What happens between a strategy's rounds of local steps (DESIGN.md, "Training strategies").
enum class Join {
    None,      ///< nothing: one segment (single), or independent members (ensemble)
    Average,   ///< the replicas are averaged, weighted by rows, and the average broadcast back
    Elastic,   ///< EASGD's elastic step between every replica and a center model
    Gradients, ///< the gradients are averaged every step (all-reduce); the replicas stay equal
};

/// One way a run spreads over segments, with everything the trainer, validation, the CLI's help and
/// the GUI need to know about it, so that none of them compares strategy names.
struct StrategyKind {
    Choice choice;
    Join join;
    /// Trains a replica per segment on its shard; false: one model on every row, one segment.
    bool segmented;
    /// The model is every segment's network (their mean probabilities), not one merged network.
    bool keepsMembers;
    /// EASGD's moving rate (--moving-rate) applies.
    bool usesMovingRate;
    /// Minibatches between joins when --sync-every is 0; 0 means once per pass over the shards.
    int64_t defaultSyncEvery;

    /// A replica's weights are its own between joins (kept in the resume state, not the merged weights).
    bool ownWeights() const { return keepsMembers || join == Join::Elastic; }
    /// --sync-every sets the period of the join (model averaging's merges, EASGD's tau).
    bool periodicJoin() const { return join == Join::Average || join == Join::Elastic; }
};

/// The one table of strategies, in the order the CLI's help and the GUI list them.
const std::vector<StrategyKind>& strategies();

/// The entry named `name`, or nullptr.
const StrategyKind* findStrategy(const std::string& name);

/// The names and descriptions of strategies(), for the CLI's help and the GUI's choices.
const std::vector<Choice>& strategyChoices();

} // namespace mppdl::train
