#pragma once

// Internal: a normalizer as JSON, the one form a saved model, a project's model info and an
// out-of-core cache's manifest keep it in. Doubles are written to round-trip exactly.

#include "mppdl/data/preprocess.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mppdl::train {

inline nlohmann::json normalizerJson(const data::Normalizer& n) {
    return {{"mode", data::toString(n.mode)}, {"scale", n.scale}, {"mean", n.mean}, {"std", n.std}};
}

/// ConfigError for an unknown mode; nlohmann's exceptions for missing keys.
inline data::Normalizer normalizerFrom(const nlohmann::json& j) {
    data::Normalizer n;
    n.mode = data::parseNormalization(j.at("mode").get<std::string>());
    n.scale = j.at("scale").get<double>();
    n.mean = j.at("mean").get<std::vector<double>>();
    n.std = j.at("std").get<std::vector<double>>();
    return n;
}

} // namespace mppdl::train
