#pragma once

#include <string>
#include <vector>

namespace mppdl {

/// A name and a one-line description: an entry of one of the engine's tables (strategies,
/// optimizers, schedules, normalizations...) as the CLI's help and the GUI's combo boxes list it.
struct Choice {
    const char* name;
    const char* description;
};

/// The names of `choices` between separators: "sgd, adam, adamw" (messages) or "sgd|adam|adamw" (help).
std::string joinChoiceNames(const std::vector<Choice>& choices, const char* separator = ", ");

/// The entry named `name`, or nullptr.
const Choice* findChoice(const std::vector<Choice>& choices, const std::string& name);

} // namespace mppdl
