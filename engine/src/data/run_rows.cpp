#include "mppdl/data/run_rows.h"

#include "mppdl/core/error.h"
#include "mppdl/data/distribution.h"
#include "seeded.h"

#include <torch/torch.h>

#include <algorithm>

namespace mppdl::data {

namespace {

/// A contiguous share of `count` items for `rank` of `world`: [begin, end).
std::pair<int64_t, int64_t> shareOf(int64_t count, int rank, int world) {
    return {count * rank / world, count * (rank + 1) / world};
}

/// The training rows as distribute() sees them, without their features (it reads only the row
/// count, the labels and the home segments): a [n, 0] tensor stands for the features, so the
/// same policy code assigns the rows whether or not they are loaded.
Dataset rowsWithoutFeatures(const SourceRows& source, const std::vector<int64_t>& train,
                            const std::vector<int64_t>& shardOf) {
    const auto n = static_cast<int64_t>(train.size());
    auto labels = torch::zeros({n}, torch::kInt64);
    if (!source.labels.empty()) {
        auto* l = labels.data_ptr<int64_t>();
        for (int64_t j = 0; j < n; ++j)
            l[j] = source.labels[static_cast<size_t>(train[static_cast<size_t>(j)])];
    }
    std::vector<std::string> names;
    for (int64_t c = 0; c < std::max<int64_t>(source.classes, 1); ++c)
        names.push_back(std::to_string(c));
    Dataset rows(torch::empty({n, 0}, torch::kUInt8), labels, names);
    if (!shardOf.empty()) {
        auto home = torch::empty({n}, torch::kInt64);
        auto* h = home.data_ptr<int64_t>();
        for (int64_t j = 0; j < n; ++j)
            h[j] = shardOf[static_cast<size_t>(train[static_cast<size_t>(j)])];
        rows = rows.withHomeSegments(home);
    }
    return rows;
}

/// Positions of `wanted` (ascending) within `all` (ascending, a superset).
std::vector<int64_t> positionsIn(const std::vector<int64_t>& all, const std::vector<int64_t>& wanted) {
    std::vector<int64_t> out;
    out.reserve(wanted.size());
    size_t i = 0;
    for (const int64_t w : wanted) {
        while (i < all.size() && all[i] < w)
            ++i;
        if (i == all.size() || all[i] != w)
            throw InternalError("row " + std::to_string(w) + " is not among the rows read");
        out.push_back(static_cast<int64_t>(i));
    }
    return out;
}

} // namespace

std::vector<int> segmentsOfRank(int segments, int rank, int world) {
    std::vector<int> out;
    for (int s = rank; s < segments; s += world)
        out.push_back(s);
    return out;
}

RankRows planRankRows(const SourceRows& source, const RunLayout& layout) {
    const DistributionPolicy* policy = findDistributionPolicy(layout.policy);
    if (!policy)
        throw ConfigError("unknown distribution policy '" + layout.policy + "'");
    if (layout.world < 1 || layout.rank < 0 || layout.rank >= layout.world)
        throw InternalError("rank " + std::to_string(layout.rank) + " of " + std::to_string(layout.world));
    if (policy->usesLabels && static_cast<int64_t>(source.labels.size()) != source.trainRows)
        throw InternalError("the " + layout.policy + " distribution needs every row's label");
    const bool byShard = policy->fromSource;
    if (byShard && source.shardRows.size() != static_cast<size_t>(layout.segments))
        throw ConfigError("the 'database' distribution keeps each row on the segment the database holds it on: it "
                          "needs a table read as its segments' shards (a pg: source)");
    if (source.trainRows == 0)
        throw DataError("no training rows");

    // Each ordinal's shard: the whole read takes the shards one after the other.
    std::vector<int64_t> shardOf;
    if (byShard) {
        shardOf.reserve(static_cast<size_t>(source.trainRows));
        for (size_t s = 0; s < source.shardRows.size(); ++s)
            shardOf.insert(shardOf.end(), static_cast<size_t>(source.shardRows[s]), static_cast<int64_t>(s));
    }

    const auto split = splitValidation(source.trainRows, layout.validationFraction, layout.seed);
    const auto segmentShards = distribute(rowsWithoutFeatures(source, split.train, shardOf), layout.segments,
                                          layout.policy, layout.seed);

    RankRows out;
    out.trainRows = static_cast<int64_t>(split.train.size());
    out.validationRows = static_cast<int64_t>(split.validation.size());
    out.testRows = source.testRows;
    const auto mine = segmentsOfRank(layout.segments, layout.rank, layout.world);
    std::vector<int64_t> trainOrdinals;
    for (const auto& shard : segmentShards)
        out.segmentSizes.push_back(shard.size(0));
    for (const int s : mine) {
        const auto& shard = segmentShards[static_cast<size_t>(s)];
        const auto* j = shard.data_ptr<int64_t>();
        for (int64_t k = 0; k < shard.size(0); ++k)
            trainOrdinals.push_back(split.train[static_cast<size_t>(j[k])]);
    }
    std::sort(trainOrdinals.begin(), trainOrdinals.end());

    // The validation rows it evaluates (all, or its share), and the ones it owns.
    std::vector<int64_t> validation, owned;
    if (byShard) {
        for (const int64_t v : split.validation)
            if (shardOf[static_cast<size_t>(v)] % layout.world == layout.rank)
                owned.push_back(v);
    } else {
        const auto [begin, end] = shareOf(out.validationRows, layout.rank, layout.world);
        owned.assign(split.validation.begin() + begin, split.validation.begin() + end);
    }
    validation = layout.shareEvaluation ? owned : split.validation;

    if (byShard) {
        // Every row of its shards (training and validation rows alike): one COPY a shard.
        out.shards = mine;
        for (int64_t r = 0; r < source.trainRows; ++r)
            if (shardOf[static_cast<size_t>(r)] % layout.world == layout.rank)
                out.read.train.push_back(r);
        if (!layout.shareEvaluation) // an ensemble's other validation rows: read as well
            for (const int64_t v : split.validation)
                if (shardOf[static_cast<size_t>(v)] % layout.world != layout.rank)
                    throw ConfigError("an ensemble over processes scores every validation row in each process: "
                                      "the 'database' distribution reads only a process's own shards (use "
                                      "--val-fraction 0, or another distribution)");
    } else {
        std::merge(trainOrdinals.begin(), trainOrdinals.end(), validation.begin(), validation.end(),
                   std::back_inserter(out.read.train));
    }
    out.trainAt = positionsIn(out.read.train, trainOrdinals);
    out.validationAt = positionsIn(out.read.train, validation);
    out.validationOwnedAt = positionsIn(validation, owned);

    const auto [testBegin, testEnd] = shareOf(source.testRows, layout.rank, layout.world);
    const int64_t testFirst = layout.shareEvaluation ? testBegin : 0;
    const int64_t testLast = layout.shareEvaluation ? testEnd : source.testRows;
    for (int64_t t = testFirst; t < testLast; ++t)
        out.read.test.push_back(t);
    for (int64_t t = testBegin; t < testEnd; ++t)
        out.testOwnedAt.push_back(t - testFirst);

    // Each of its segments' rows as positions into its training rows (trainOrdinals' order).
    out.segmentRows.resize(static_cast<size_t>(layout.segments));
    for (const int s : mine) {
        const auto& shard = segmentShards[static_cast<size_t>(s)];
        const auto* j = shard.data_ptr<int64_t>();
        std::vector<int64_t> ordinals;
        for (int64_t k = 0; k < shard.size(0); ++k)
            ordinals.push_back(split.train[static_cast<size_t>(j[k])]);
        out.segmentRows[static_cast<size_t>(s)] = positionsIn(trainOrdinals, ordinals);
    }
    return out;
}

} // namespace mppdl::data
