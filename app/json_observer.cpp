#include "json_observer.h"

#include <nlohmann/json.hpp>

#include <iostream>

namespace mppdl::cli {

void JsonObserver::onEvents(const std::vector<RunEvent>& batch) {
    for (const auto& e : batch) {
        nlohmann::json j;
        j["event"] = toString(e.kind);
        if (e.epochs > 0) {
            j["epoch"] = e.epoch;
            j["epochs"] = e.epochs;
        }
        if (e.stepsPerEpoch > 0) {
            j["step"] = e.step;
            j["step_in_epoch"] = e.stepInEpoch;
            j["steps_per_epoch"] = e.stepsPerEpoch;
        }
        if (e.segment >= 0)
            j["segment"] = e.segment;
        j["wall_seconds"] = e.wallSeconds;
        for (const auto& m : e.metrics)
            j[m.name] = m.value;
        if (!e.message.empty())
            j["message"] = e.message;
        if (!e.errorKind.empty())
            j["kind"] = e.errorKind;
        if (e.evaluation) {
            j["classes"] = e.evaluation->classNames;
            j["per_class_accuracy"] = e.evaluation->perClassAccuracy;
            const size_t k = e.evaluation->classNames.size();
            auto cm = nlohmann::json::array();
            for (size_t t = 0; t < k; ++t)
                cm.push_back(std::vector<int64_t>(e.evaluation->confusion.begin() + long(t * k),
                                                  e.evaluation->confusion.begin() + long((t + 1) * k)));
            j["confusion_matrix"] = cm;
        }
        if (e.kind == EventKind::Finished) {
            // The contract of the last line: these keys are always present.
            for (const char* key : {"test_accuracy", "test_loss"})
                if (!j.contains(key))
                    j[key] = nullptr;
            j["epochs"] = e.epoch;
            auto ranks = nlohmann::json::array();
            for (const auto& r : e.ranks)
                ranks.push_back({{"rank", r.rank},
                                 {"segments", r.segments},
                                 {"rows_read", r.rowsRead},
                                 {"bytes_read", r.bytesRead},
                                 {"peak_rss_bytes", r.peakRssBytes}});
            j["ranks"] = ranks;
        }
        std::cout << j.dump() << '\n';
    }
    std::cout.flush();
}

} // namespace mppdl::cli
