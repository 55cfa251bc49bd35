#include "data/pg_read.h"

#include "data/pg_connection.h"

#include "mppdl/core/error.h"

namespace mppdl::data {

std::string ShardPlan::condition(int s) const {
    const std::string index = std::to_string(s);
    switch (by) {
    case By::None: return "true";
    case By::GreenplumSegment:
        return segments == serverSegments ? "gp_segment_id = " + index
                                          : "gp_segment_id % " + std::to_string(segments) + " = " + index;
    case By::KeyHash:
        // abs() of the int8, not of the int4 hash: abs(-2^31) overflows an int4.
        return "abs(hashtext(" + key + "::text)::int8) % " + std::to_string(segments) + " = " + index;
    }
    return "true";
}

std::string ShardPlan::describe() const {
    switch (by) {
    case By::None: return "one stream";
    case By::GreenplumSegment:
        return "Greenplum's gp_segment_id (" + std::to_string(serverSegments) + " segments" +
               (segments == serverSegments ? "" : ", mod " + std::to_string(segments)) + ")";
    case By::KeyHash: return "hash(" + key + ") mod " + std::to_string(segments);
    }
    return "";
}

ShardPlan planShards(const ServerInfo& server, bool table, int segments, const std::string& key,
                     const std::string& where) {
    ShardPlan plan;
    if (segments <= 0)
        return plan;
    plan.segments = segments;
    plan.serverSegments = server.segments;
    if (!key.empty()) {
        plan.by = ShardPlan::By::KeyHash;
        plan.key = quoteIdentifier(key);
    } else if (server.greenplum && table) {
        plan.by = ShardPlan::By::GreenplumSegment;
    } else {
        throw ConfigError(where + ": reading the rows as " + std::to_string(segments) + " segments' shards on " +
                          (server.greenplum ? "a Greenplum query" : "PostgreSQL") +
                          " hashes a distribution key: name it with --distributed-by COLUMN (or --id)");
    }
    return plan;
}

std::string ReadPlan::select(const std::string& what, int shard, bool ordered) const {
    std::string select = "SELECT " + what + " FROM " + from;
    int64_t rows = limit;
    if (shards.by != ShardPlan::By::None) {
        select += " WHERE " + shards.condition(shard);
        // Each shard takes its share of the limit: shares differ by at most one row.
        if (limit > 0)
            rows = limit * (shard + 1) / shards.segments - limit * shard / shards.segments;
    }
    if (ordered && !orderBy.empty())
        select += " ORDER BY " + orderBy;
    if (limit > 0)
        select += " LIMIT " + std::to_string(rows);
    return select;
}

std::string ReadPlan::copyStatement(int shard) const {
    return "COPY (" + select(columns, shard, true) + ") TO STDOUT (FORMAT binary)";
}

std::string ReadPlan::countStatement(int shard) const {
    return "SELECT count(*) FROM (" + select("1", shard, false) + ") AS mppdl_count";
}

} // namespace mppdl::data
