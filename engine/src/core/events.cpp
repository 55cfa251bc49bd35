#include "mppdl/core/events.h"

namespace mppdl {

const char* toString(EventKind kind) {
    switch (kind) {
    case EventKind::Started: return "started";
    case EventKind::Message: return "message";
    case EventKind::Progress: return "progress";
    case EventKind::Epoch: return "epoch";
    case EventKind::Evaluation: return "evaluation";
    case EventKind::Finished: return "finished";
    case EventKind::Failed: return "failed";
    case EventKind::Cancelled: return "cancelled";
    }
    return "message";
}

double RunEvent::metric(const std::string& name, double fallback) const {
    for (const auto& m : metrics)
        if (m.name == name)
            return m.value;
    return fallback;
}

bool RunEvent::hasMetric(const std::string& name) const {
    for (const auto& m : metrics)
        if (m.name == name)
            return true;
    return false;
}

} // namespace mppdl
