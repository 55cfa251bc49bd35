#include "mppdl/core/choice.h"

namespace mppdl {

std::string joinChoiceNames(const std::vector<Choice>& choices, const char* separator) {
    std::string out;
    for (const auto& c : choices)
        out += (out.empty() ? "" : separator) + std::string(c.name);
    return out;
}

const Choice* findChoice(const std::vector<Choice>& choices, const std::string& name) {
    for (const auto& c : choices)
        if (name == c.name)
            return &c;
    return nullptr;
}

} // namespace mppdl
