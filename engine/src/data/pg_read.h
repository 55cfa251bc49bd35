#pragma once

// Internal: the SQL a pg: source sends, built apart from sending it, so that the SQL for a server
// that cannot run here (Greenplum) is tested as text, and what PostgreSQL also runs is tested there.

#include "mppdl/data/catalog.h"

#include <cstdint>
#include <string>

namespace mppdl::data {

class PgConnection;

/// serverInfo() over an open connection.
ServerInfo serverInfo(PgConnection& db);

/// How a source's rows are split into segments' shards, each read over a connection of its own,
/// "the way the database does": Greenplum keeps each row on one segment (gp_segment_id);
/// PostgreSQL has no segments, so a row's segment is a hash of its distribution key mod N.
struct ShardPlan {
    enum class By { None, GreenplumSegment, KeyHash };
    By by = By::None;
    int segments = 0;       ///< 0 with By::None: one stream, rows without home segments
    int serverSegments = 0; ///< Greenplum's primary segments (GreenplumSegment)
    std::string key;        ///< KeyHash: the distribution key column, quoted

    /// The condition selecting segment s's rows (s in [0, segments)), for a WHERE clause.
    /// GreenplumSegment: `gp_segment_id = s` when the run has as many segments as Greenplum, else
    /// `gp_segment_id % N = s`. KeyHash: `abs(hashtext(key::text)::int8) % N = s`: hashtext() is in
    /// PostgreSQL and Greenplum alike, and the key's text form makes any key type hashable.
    std::string condition(int s) const;
    /// For messages: "Greenplum's gp_segment_id (4 segments)", "hash(\"id\") mod 4".
    std::string describe() const;
};

/// The plan for reading as `segments` shards (0: not sharded). `key` (unquoted, may be empty) is
/// the distribution key: hashed when given; without one a Greenplum table is read by its
/// gp_segment_id, and anything else is a ConfigError naming `where` and asking for a key.
/// `table`: whether the source is a table (a query's rows carry no gp_segment_id).
ShardPlan planShards(const ServerInfo& server, bool table, int segments, const std::string& key,
                     const std::string& where);

/// One SELECT of a pg: source, read with a binary COPY per shard.
struct ReadPlan {
    std::string columns; ///< the select list
    std::string from;    ///< a quoted table name, or "(query) AS mppdl_source"
    std::string orderBy; ///< a quoted column, or empty
    int64_t limit = 0;   ///< rows over all shards (each takes its share); 0 = all
    ShardPlan shards;

    /// `COPY (SELECT columns FROM from [WHERE condition(s)] [ORDER BY ..] [LIMIT ..]) TO STDOUT
    /// (FORMAT binary)` for shard s (ignored when not sharded).
    std::string copyStatement(int shard) const;
    /// `SELECT count(*)` of the rows copyStatement(shard) would send: for the shards a process
    /// of a multi-process run does not read, whose row counts still place its own rows in the run.
    std::string countStatement(int shard) const;

private:
    std::string select(const std::string& what, int shard, bool ordered) const;
};

} // namespace mppdl::data
