#pragma once

// Internal: how loadData() reads a run's rows: the whole source in memory (one process), this
// process's rows only (a multi-process run, data::planRankRows), and either of them out of core
// when the prepared rows exceed the memory budget (read in chunks into a packed cache on disk,
// then memory-mapped).

#include "collectives.h"

#include "mppdl/train/trainer.h"

#include <functional>
#include <string>

namespace mppdl::train {

/// This process's rows of the run, read and prepared. `group`: the run's processes (null or of one
/// process: this process reads the whole source). `readShards`: a table read as its segments'
/// shards (the database distribution).
/// `say`: what the read is doing (messages), now and then.
LoadedData loadRunData(const TrainConfig& config, const data::SourceOptions& options, Collectives* group,
                       bool readShards, const std::function<void(const std::string&)>& say);

} // namespace mppdl::train
