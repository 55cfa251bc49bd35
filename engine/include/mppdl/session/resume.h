#pragma once

// Taking up an interrupted or cancelled run where its last checkpoint left it: what `mppdl resume`
// does, and what any front end that offers Resume calls. No libtorch in this header.

#include "mppdl/session/run_model.h"
#include "mppdl/core/checkpoint.h"
#include "mppdl/core/events.h"
#include "mppdl/model/architecture.h"
#include "mppdl/store/project.h"
#include "mppdl/train/trainer.h"

#include <functional>
#include <optional>
#include <string>

namespace mppdl::session {

/// Everything a resumed run trains from: its record, configuration, architecture version, last
/// resumable checkpoint and its data, loaded again.
struct ResumePoint {
    store::RunRecord run;
    std::string label; ///< "run 3 (mlp-3)"
    train::TrainConfig config;
    model::Architecture architecture;
    Checkpoint checkpoint;
    train::LoadedData loaded;
    /// The run stopped before its first checkpoint: it trains again from its first epoch (from
    /// `warmStart`'s weights where it started from another run's), and `checkpoint` is empty.
    bool fromStart = false;
    std::optional<RunWeights> warmStart;
};

/// Prepares run `run` of `project` to continue: it must be neither finished (ConfigError: start a
/// new run with a warm start) nor running; one without a checkpoint with resume state (killed in
/// its first epoch) starts again from the beginning (`fromStart`). Loads its data as recorded, reporting through
/// `observer`; DataError when the data has changed since the run started (other classes or feature statistics). Then
/// drops the metrics recorded after the checkpoint's epoch, which the resumed run records again. `overrides`
/// replace the run's thread count and device where given. `joinProcesses`, when given, is called with the run's
/// configuration and architecture before the data is read: a run over processes joins them there, and each reads
/// only its own rows.
struct ResumeOverrides {
    int threads = -1;   ///< >= 0: the CPU threads to continue with
    std::string device; ///< non-empty: the device to continue on ("cpu", "cuda:1")
};
ResumePoint prepareResume(store::Project& project, const store::RunRecord& run, RunObserver& observer,
                          const ResumeOverrides& overrides = {},
                          const std::function<train::ProcessGroup*(const train::TrainConfig&,
                                                                   const model::Architecture&)>& joinProcesses = {});

} // namespace mppdl::session
