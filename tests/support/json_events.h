#pragma once

// Reading what `mppdl ... --json` printed: one JSON object per line per event.

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

/// The run's "finished" event; an empty object (and a test failure) when there is none.
inline nlohmann::json finishedEvent(const std::string& out) {
    const auto at = out.find("\"event\":\"finished\"");
    EXPECT_NE(at, std::string::npos) << out;
    if (at == std::string::npos)
        return nlohmann::json::object();
    const auto begin = out.rfind('\n', at) + 1;
    return nlohmann::json::parse(out.substr(begin, out.find('\n', at) - begin));
}
