#pragma once

// Internal: a normalizer as JSON, the one form a saved model, a project's model info and an
// out-of-core cache's manifest keep it in. Doubles are written to round-trip exactly.

#include "mppdl/data/preprocess.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace mppdl::train {

/// A column encoding as JSON: [{"name", "categories"?}, ...]; a number column has no categories.
inline nlohmann::json encodingJson(const data::ColumnEncoding& e) {
    auto columns = nlohmann::json::array();
    for (const auto& c : e.columns) {
        nlohmann::json j{{"name", c.name}};
        if (c.categorical)
            j["categories"] = c.categories;
        columns.push_back(std::move(j));
    }
    return columns;
}

inline data::ColumnEncoding encodingFrom(const nlohmann::json& j) {
    data::ColumnEncoding e;
    for (const auto& c : j) {
        data::ColumnEncoding::Column column;
        column.name = c.at("name").get<std::string>();
        column.categorical = c.contains("categories");
        if (column.categorical)
            column.categories = c.at("categories").get<std::vector<std::string>>();
        e.columns.push_back(std::move(column));
    }
    return e;
}

/// The encoding is written only where there is one: models and projects of sources read as they
/// are keep the JSON they had.
inline nlohmann::json normalizerJson(const data::Normalizer& n) {
    nlohmann::json j{{"mode", data::toString(n.mode)}, {"scale", n.scale}, {"mean", n.mean}, {"std", n.std}};
    if (!n.encoding.empty())
        j["columns"] = encodingJson(n.encoding);
    return j;
}

/// ConfigError for an unknown mode; nlohmann's exceptions for missing keys.
inline data::Normalizer normalizerFrom(const nlohmann::json& j) {
    data::Normalizer n;
    n.mode = data::parseNormalization(j.at("mode").get<std::string>());
    n.scale = j.at("scale").get<double>();
    n.mean = j.at("mean").get<std::vector<double>>();
    n.std = j.at("std").get<std::vector<double>>();
    if (j.contains("columns"))
        n.encoding = encodingFrom(j.at("columns"));
    return n;
}

} // namespace mppdl::train
