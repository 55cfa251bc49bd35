#pragma once

#include "mppdl/core/events.h"

namespace mppdl::cli {

/// One JSON object per line on stdout for every event, for programs that drive mppdl.
/// Metrics become top-level keys: {"event": "epoch", "epoch": 1, "train_loss": 0.52, ...}.
class JsonObserver : public RunObserver {
public:
    void onEvents(const std::vector<RunEvent>& batch) override;
};

} // namespace mppdl::cli
