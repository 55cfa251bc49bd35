#include "mppdl/data/distribution.h"

#include "mppdl/core/error.h"
#include "seeded.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>
#include <numeric>
#include <random>

namespace mppdl::data {

namespace {

/// The splitmix64 finalizer: a bijection on 64-bit values whose every output bit depends on every
/// input bit, so consecutive keys spread evenly. Plain integer arithmetic: the same on every platform.
uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// Start of group g when `count` items are dealt into `groups` contiguous groups whose sizes
/// differ by at most one.
int64_t groupStart(int64_t count, int64_t groups, int64_t g) { return g * count / groups; }

std::vector<int32_t> assignRandom(const Dataset& rows, int segments, uint64_t seed, const at::Tensor&) {
    const int64_t n = rows.size();
    const auto order = seededPermutation(n, seed);
    std::vector<int32_t> segmentOf(static_cast<size_t>(n));
    for (int s = 0; s < segments; ++s)
        for (int64_t j = groupStart(n, segments, s); j < groupStart(n, segments, s + 1); ++j)
            segmentOf[static_cast<size_t>(order[static_cast<size_t>(j)])] = s;
    return segmentOf;
}

std::vector<int32_t> assignHash(const Dataset& rows, int segments, uint64_t, const at::Tensor& keys) {
    const int64_t n = rows.size();
    std::vector<int32_t> segmentOf(static_cast<size_t>(n));
    const int64_t* key = keys.defined() ? keys.data_ptr<int64_t>() : nullptr;
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t k = static_cast<uint64_t>(key ? key[i] : i);
        segmentOf[static_cast<size_t>(i)] = static_cast<int32_t>(mix64(k) % static_cast<uint64_t>(segments));
    }
    return segmentOf;
}

std::vector<int32_t> assignRoundRobin(const Dataset& rows, int segments, uint64_t, const at::Tensor&) {
    std::vector<int32_t> segmentOf(static_cast<size_t>(rows.size()));
    for (size_t i = 0; i < segmentOf.size(); ++i)
        segmentOf[i] = static_cast<int32_t>(i % static_cast<size_t>(segments));
    return segmentOf;
}

std::vector<int32_t> assignByLabel(const Dataset& rows, int segments, uint64_t, const at::Tensor&) {
    const int64_t n = rows.size();
    const auto labels = rows.labels().to(torch::kCPU).contiguous();
    const int64_t* label = labels.data_ptr<int64_t>();
    std::vector<int64_t> count(static_cast<size_t>(std::max<int64_t>(rows.numClasses(), 1)), 0);
    for (int64_t i = 0; i < n; ++i)
        ++count[static_cast<size_t>(label[i])];
    std::vector<int64_t> present; // classes with rows, in class order
    for (size_t c = 0; c < count.size(); ++c)
        if (count[c] > 0)
            present.push_back(static_cast<int64_t>(c));
    const int64_t k = static_cast<int64_t>(present.size());

    std::vector<int32_t> segmentOf(static_cast<size_t>(n));
    if (k >= segments) {
        std::vector<int32_t> segmentOfClass(count.size(), 0);
        for (int64_t j = 0; j < k; ++j)
            segmentOfClass[static_cast<size_t>(present[static_cast<size_t>(j)])] = static_cast<int32_t>(j % segments);
        for (int64_t i = 0; i < n; ++i)
            segmentOf[static_cast<size_t>(i)] = segmentOfClass[static_cast<size_t>(label[i])];
        return segmentOf;
    }

    // Fewer classes than segments: every class gets one segment, and the others go one at a time
    // to the class with the most rows per segment that can still take one (ties: lower class), so
    // segments get near-equal shares of their class and none is empty (rows >= segments holds).
    std::vector<int64_t> share(static_cast<size_t>(k), 1);
    for (int64_t extra = segments - k; extra > 0; --extra) {
        int64_t best = -1;
        for (int64_t j = 0; j < k; ++j) {
            const int64_t rowsOf = count[static_cast<size_t>(present[static_cast<size_t>(j)])];
            if (share[static_cast<size_t>(j)] >= rowsOf)
                continue;
            // rowsOf / share > bestRows / bestShare, in integers.
            if (best < 0 ||
                rowsOf * share[static_cast<size_t>(best)] >
                    count[static_cast<size_t>(present[static_cast<size_t>(best)])] * share[static_cast<size_t>(j)])
                best = j;
        }
        if (best < 0)
            throw InternalError("by-label: no class can take another segment");
        ++share[static_cast<size_t>(best)];
    }
    std::vector<int64_t> firstSegment(count.size(), 0), segmentsOf(count.size(), 0);
    int64_t next = 0;
    for (int64_t j = 0; j < k; ++j) {
        const auto c = static_cast<size_t>(present[static_cast<size_t>(j)]);
        firstSegment[c] = next;
        segmentsOf[c] = share[static_cast<size_t>(j)];
        next += share[static_cast<size_t>(j)];
    }
    // The r-th row of class c (in row order) goes to run r * segmentsOf / count of its segments.
    std::vector<int64_t> seen(count.size(), 0);
    for (int64_t i = 0; i < n; ++i) {
        const auto c = static_cast<size_t>(label[i]);
        const int64_t run = seen[c]++ * segmentsOf[c] / count[c];
        segmentOf[static_cast<size_t>(i)] = static_cast<int32_t>(firstSegment[c] + run);
    }
    return segmentOf;
}

std::vector<int32_t> assignDatabase(const Dataset& rows, int segments, uint64_t, const at::Tensor&) {
    const auto& home = rows.homeSegments();
    if (!home.defined())
        throw ConfigError("the 'database' distribution keeps each row on the segment the database holds it on: it "
                          "needs a table read as its segments' shards (a pg: source, read by the trainer or with "
                          "data show --segments)");
    const auto cpu = home.to(torch::kCPU).contiguous();
    const int64_t* h = cpu.data_ptr<int64_t>();
    std::vector<int32_t> segmentOf(static_cast<size_t>(rows.size()));
    for (size_t i = 0; i < segmentOf.size(); ++i) {
        if (h[i] < 0 || h[i] >= segments)
            throw ConfigError("row " + std::to_string(i) + " was read from segment " + std::to_string(h[i]) +
                              " of the database, but the run has " + std::to_string(segments) + " segments");
        segmentOf[i] = static_cast<int32_t>(h[i]);
    }
    return segmentOf;
}

std::string policyNames() {
    std::string names;
    for (const auto& p : distributionPolicies())
        names += (names.empty() ? "" : ", ") + std::string(p.name);
    return names;
}

std::string shapeOf(const at::Tensor& t) {
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    return "[" + formatShape(shape) + "]";
}

} // namespace

const std::vector<DistributionPolicy>& distributionPolicies() {
    static const std::vector<DistributionPolicy> policies = {
        {"random", "each row to a seeded random segment; segment sizes differ by at most one", true, false, false,
         false, &assignRandom},
        {"hash", "segment = hash(key) mod segments, like DISTRIBUTED BY (key); the key defaults to the row number",
         false, true, false, false, &assignHash},
        {"round-robin", "row i to segment i mod segments", false, false, false, false, &assignRoundRobin},
        {"by-label", "each class on one segment (or a few, when there are fewer classes than segments): non-IID", false,
         false, true, false, &assignByLabel},
        {"database",
         "the segment the database keeps each row on (Greenplum: gp_segment_id; PostgreSQL: hash of "
         "--distributed-by mod segments), each segment's rows read over its own connection in parallel",
         false, false, false, true, &assignDatabase},
    };
    return policies;
}

const DistributionPolicy* findDistributionPolicy(const std::string& name) {
    for (const auto& p : distributionPolicies())
        if (name == p.name)
            return &p;
    return nullptr;
}

std::vector<at::Tensor> distribute(const Dataset& rows, int segments, const std::string& policy, uint64_t seed) {
    return distribute(rows, segments, policy, seed, at::Tensor());
}

std::vector<at::Tensor> distribute(const Dataset& rows, int segments, const std::string& policy, uint64_t seed,
                                   const at::Tensor& keys) {
    const DistributionPolicy* chosen = findDistributionPolicy(policy);
    if (!chosen)
        throw ConfigError("unknown distribution policy '" + policy + "'; known policies: " + policyNames());
    if (segments < 1)
        throw ConfigError("the number of segments must be at least 1, got " + std::to_string(segments));
    const int64_t n = rows.size();
    if (segments > n)
        throw ConfigError("cannot spread " + std::to_string(n) + " row" + (n == 1 ? "" : "s") + " over " +
                          std::to_string(segments) + " segment" + (segments == 1 ? "" : "s"));
    at::Tensor cpuKeys;
    if (keys.defined()) {
        if (!chosen->usesKeys)
            throw ConfigError("distribution policy '" + policy + "' does not use keys; only hash does");
        if (keys.scalar_type() != torch::kInt64 || keys.dim() != 1 || keys.size(0) != n)
            throw ConfigError("hash keys must be int64 with one entry per row (" + std::to_string(n) + "), got " +
                              std::string(c10::toString(keys.scalar_type())) + " of shape " + shapeOf(keys));
        cpuKeys = keys.to(torch::kCPU).contiguous();
    }

    const auto segmentOf = chosen->assign(rows, segments, seed, cpuKeys);
    if (static_cast<int64_t>(segmentOf.size()) != n)
        throw InternalError("distribution policy '" + policy + "' assigned " + std::to_string(segmentOf.size()) +
                            " rows of " + std::to_string(n));
    std::vector<std::vector<int64_t>> members(static_cast<size_t>(segments));
    for (int64_t i = 0; i < n; ++i) {
        const int32_t s = segmentOf[static_cast<size_t>(i)];
        if (s < 0 || s >= segments)
            throw InternalError("distribution policy '" + policy + "' put row " + std::to_string(i) + " on segment " +
                                std::to_string(s) + " of " + std::to_string(segments));
        members[static_cast<size_t>(s)].push_back(i); // ascending: rows are visited in order
    }
    std::vector<at::Tensor> shards;
    shards.reserve(members.size());
    for (const auto& m : members)
        shards.push_back(torch::tensor(at::ArrayRef<int64_t>(m), torch::kInt64));
    return shards;
}

DistributionSummary summarize(const Dataset& rows, const std::vector<at::Tensor>& shards) {
    DistributionSummary summary;
    const int64_t classes = rows.numClasses();
    const auto labels = rows.empty() ? at::Tensor() : rows.labels().to(torch::kCPU);
    int64_t total = 0, fullest = 0;
    for (size_t s = 0; s < shards.size(); ++s) {
        const auto& shard = shards[s];
        if (!shard.defined() || shard.dim() != 1 || !at::isIntegralType(shard.scalar_type(), /*includeBool=*/false))
            throw ConfigError("segment " + std::to_string(s) + ": row indices must be a 1-D integer tensor");
        SegmentSummary seg;
        seg.rows = shard.size(0);
        seg.classCounts.assign(static_cast<size_t>(classes), 0);
        if (seg.rows > 0) {
            const auto index = shard.to(torch::kCPU, torch::kInt64);
            const int64_t low = index.min().item<int64_t>(), high = index.max().item<int64_t>();
            if (low < 0 || high >= rows.size())
                throw ConfigError("segment " + std::to_string(s) + " holds row " +
                                  std::to_string(low < 0 ? low : high) + ", but the dataset has " +
                                  std::to_string(rows.size()) + " rows");
            const auto counts = torch::bincount(labels.index_select(0, index), {}, classes).contiguous();
            const int64_t* c = counts.data_ptr<int64_t>();
            std::copy(c, c + classes, seg.classCounts.begin());
        }
        total += seg.rows;
        fullest = std::max(fullest, seg.rows);
        summary.segments.push_back(std::move(seg));
    }
    if (total > 0)
        summary.skew = double(fullest) * double(shards.size()) / double(total);
    return summary;
}

} // namespace mppdl::data
