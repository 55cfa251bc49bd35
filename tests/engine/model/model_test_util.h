#pragma once

// Helpers shared by the model tests: example files, designs built in code, problem lookup.

#include "mppdl/model/analysis.h"
#include "mppdl/model/architecture.h"

#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace mppdl::model::test {

/// The example architectures shipped in resources/architectures, by file name.
const std::vector<std::string>& exampleFiles();
/// The path of an example file in the source tree.
std::string examplePath(const std::string& file);

/// A layer built in code; `inputs` empty means the previous layer.
Layer makeLayer(const std::string& name, const std::string& type,
                std::vector<std::pair<std::string, Param>> params = {}, std::vector<std::string> inputs = {});
/// A design from layers.
Architecture makeArchitecture(std::vector<Layer> layers, const std::string& output = "");

/// The problems reported for `where`, formatted "where: message", one per line (for messages).
std::string problemsOf(const Analysis& analysis, const std::string& where);
/// Whether some problem names `where` and contains every fragment.
bool hasProblem(const Analysis& analysis, const std::string& where, std::initializer_list<std::string> fragments);

} // namespace mppdl::model::test
