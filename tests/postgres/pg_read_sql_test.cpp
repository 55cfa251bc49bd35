// The SQL a pg: source sends, as text: the Greenplum statements cannot run here (no Greenplum), so
// they are checked against Greenplum's documented catalog (gp_segment_id, one per primary segment);
// pg_shards_test.cpp runs what PostgreSQL also runs.

#include "data/pg_read.h"

#include "mppdl/core/error.h"

#include "support/expect_error.h"

#include <gtest/gtest.h>

using namespace mppdl;
using namespace mppdl::data;

namespace {

ServerInfo greenplum(int segments) {
    ServerInfo s;
    s.greenplum = true;
    s.segments = segments;
    return s;
}

ReadPlan plan(const ShardPlan& shards, int64_t limit = 0) {
    ReadPlan r;
    r.columns = "\"label\"::int8, \"pixels\"::float4[], \"id\"::text AS mppdl_id";
    r.from = "\"public\".\"fmnist\"";
    r.orderBy = "\"id\"";
    r.limit = limit;
    r.shards = shards;
    return r;
}

} // namespace

TEST(PgReadSql, OneStreamReadsEverythingInIdOrder) {
    const auto shards = planShards(ServerInfo{}, true, 0, "", "pg:fmnist");
    EXPECT_EQ(shards.by, ShardPlan::By::None);
    EXPECT_EQ(plan(shards).copyStatement(0),
              "COPY (SELECT \"label\"::int8, \"pixels\"::float4[], \"id\"::text AS mppdl_id FROM \"public\".\"fmnist\" "
              "ORDER BY \"id\") TO STDOUT (FORMAT binary)");
    EXPECT_EQ(plan(shards, 500).copyStatement(0).find("ORDER BY \"id\" LIMIT 500) TO STDOUT") != std::string::npos,
              true);
}

TEST(PgReadSql, GreenplumTableShardsAreItsSegments) {
    // As many run segments as Greenplum primaries: segment s reads what Greenplum keeps on s.
    const auto same = planShards(greenplum(4), true, 4, "", "pg:fmnist");
    EXPECT_EQ(same.by, ShardPlan::By::GreenplumSegment);
    EXPECT_EQ(plan(same).copyStatement(2),
              "COPY (SELECT \"label\"::int8, \"pixels\"::float4[], \"id\"::text AS mppdl_id FROM \"public\".\"fmnist\" "
              "WHERE gp_segment_id = 2 ORDER BY \"id\") TO STDOUT (FORMAT binary)");
    EXPECT_EQ(same.describe(), "Greenplum's gp_segment_id (4 segments)");
    // Fewer run segments: each takes the Greenplum segments congruent to it.
    const auto fewer = planShards(greenplum(8), true, 3, "", "pg:fmnist");
    EXPECT_EQ(fewer.condition(1), "gp_segment_id % 3 = 1");
    EXPECT_EQ(fewer.describe(), "Greenplum's gp_segment_id (8 segments, mod 3)");
}

TEST(PgReadSql, KeysAreHashedOnPostgresAndOnGreenplumWhenNamed) {
    for (const auto& server : {ServerInfo{}, greenplum(4)}) {
        const auto shards = planShards(server, true, 3, "id", "pg:fmnist");
        EXPECT_EQ(shards.by, ShardPlan::By::KeyHash);
        EXPECT_EQ(shards.condition(0), "abs(hashtext(\"id\"::text)::int8) % 3 = 0");
        EXPECT_EQ(shards.describe(), "hash(\"id\") mod 3");
    }
    // A query has no gp_segment_id: it needs a key on Greenplum too.
    EXPECT_EQ(planShards(greenplum(4), false, 4, "k", "pg:(SELECT 1)").by, ShardPlan::By::KeyHash);
    expectError<ConfigError>([] { planShards(greenplum(4), false, 4, "", "pg:(SELECT 1)"); },
                             {"pg:(SELECT 1)", "Greenplum query", "--distributed-by"});
    expectError<ConfigError>([] { planShards(ServerInfo{}, true, 2, "", "pg:fmnist"); },
                             {"pg:fmnist", "PostgreSQL", "--distributed-by COLUMN (or --id)"});
}

TEST(PgReadSql, HostileKeyNamesStayNames) {
    const auto shards = planShards(ServerInfo{}, true, 2, "x\"; drop table y; --", "pg:t");
    EXPECT_EQ(shards.condition(1), "abs(hashtext(\"x\"\"; drop table y; --\"::text)::int8) % 2 = 1");
}

TEST(PgReadSql, EachShardTakesItsShareOfTheLimit) {
    const auto shards = planShards(ServerInfo{}, true, 3, "id", "pg:fmnist");
    int64_t total = 0;
    for (int s = 0; s < 3; ++s) {
        const auto sql = plan(shards, 10).copyStatement(s);
        const auto at = sql.find(" LIMIT ");
        ASSERT_NE(at, std::string::npos) << sql;
        const int64_t share = std::stoll(sql.substr(at + 7));
        EXPECT_TRUE(share == 3 || share == 4) << sql;
        total += share;
    }
    EXPECT_EQ(total, 10);
}
