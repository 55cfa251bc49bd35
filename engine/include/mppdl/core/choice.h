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

/// The entry of a table of kinds (each with a `Choice choice`) whose name is `name`, or nullptr:
/// the one lookup of every table (strategies, optimizers, schedules, normalizations).
template <typename Kind>
const Kind* findKind(const std::vector<Kind>& table, const std::string& name) {
    for (const auto& kind : table)
        if (name == kind.choice.name)
            return &kind;
    return nullptr;
}

/// The choices of a table of kinds, in its order: what the CLI's help and the GUI list.
template <typename Kind>
std::vector<Choice> choicesOf(const std::vector<Kind>& table) {
    std::vector<Choice> out;
    for (const auto& kind : table)
        out.push_back(kind.choice);
    return out;
}

} // namespace mppdl
