#pragma once

#include "mppdl/core/events.h"

#include <cstdio>
#include <string>
#include <vector>

namespace mppdl::cli {

/// Shows a run for a person at a terminal: a live progress bar on stderr (only when stderr is a
/// terminal), a line per epoch and the final results on stdout.
class TerminalObserver : public RunObserver {
public:
    explicit TerminalObserver(bool verbose = true);
    void onEvents(const std::vector<RunEvent>& batch) override;

private:
    void clearProgress();
    void progress(const RunEvent& e);

    bool m_verbose;
    bool m_tty;
    bool m_progressShown = false;
    const char* m_rate = "img/s";            ///< throughput's unit: "rows/s" for samples that are not images
    std::vector<std::string> m_segmentLines; ///< this epoch's per-segment lines, printed after the merged one
};

} // namespace mppdl::cli
