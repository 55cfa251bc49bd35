// Shard-local reading: what one process of a multi-process run reads of a source is exactly the
// whole read's rows of its segments (and its share of the validation and test rows), for every
// file kind and every distribution policy.

#include "test_files.h"

#include "mppdl/data/distribution.h"
#include "mppdl/data/preprocess.h"
#include "mppdl/data/run_rows.h"
#include "mppdl/data/source.h"

#include <torch/torch.h>

#include <algorithm>
#include <set>

namespace mppdl::data::testing {
namespace {

at::Tensor indices(const std::vector<int64_t>& v) { return torch::tensor(at::ArrayRef<int64_t>(v), torch::kInt64); }

/// The sources, each written once: 23 training rows of 4 classes (uneven), and a test split
/// where the kind has one.
struct Sources {
    TempDir dir;
    std::vector<std::pair<std::string, std::string>> all; // kind, location

    Sources() {
        const int n = 23;
        std::vector<uint8_t> labels;
        for (int i = 0; i < n; ++i)
            labels.push_back(uint8_t((i * 5 + i / 7) % 4));
        dir.write("idx/train-images-idx3-ubyte", idxImages(n, 3, 2));
        dir.write("idx/train-labels-idx1-ubyte", idxLabels(labels));
        dir.write("idx/t10k-images-idx3-ubyte", idxImages(9, 3, 2));
        dir.write("idx/t10k-labels-idx1-ubyte", idxLabels({0, 1, 2, 3, 0, 1, 2, 3, 3}));
        all.push_back({"idx", dir.file("idx")});
        // The same files gzipped: the stream is decompressed past the other rows.
        dir.write("idxgz/train-images-idx3-ubyte.gz", gzip(idxImages(n, 3, 2)));
        dir.write("idxgz/train-labels-idx1-ubyte.gz", gzip(idxLabels(labels)));
        all.push_back({"idx", dir.file("idxgz")});

        std::vector<float> x;
        std::vector<int64_t> y;
        for (int i = 0; i < n; ++i) {
            for (int f = 0; f < 3; ++f)
                x.push_back(float(i * 10 + f) / 7.0f);
            y.push_back(labels[size_t(i)]);
        }
        dir.write("npy/x_train.npy", npy("<f4", {n, 3}, bytesOf(x)));
        dir.write("npy/y_train.npy", npy("<i8", {n}, bytesOf(y)));
        dir.write("npy/x_test.npy", npy("<f4", {4, 3}, bytesOf(std::vector<float>(12, 0.5f))));
        dir.write("npy/y_test.npy", npy("<i8", {4}, bytesOf(std::vector<int64_t>{3, 2, 1, 0})));
        all.push_back({"npy", dir.file("npy")});

        std::string csv = "a,b,label\n";
        const char* names[] = {"cat", "dog", "eel", "fox"};
        for (int i = 0; i < n; ++i)
            csv += std::to_string(i) + "," + std::to_string(i * i % 11) + "," + names[labels[size_t(i)]] + "\n";
        all.push_back({"csv", dir.write("rows.csv", csv)});

        for (int i = 0; i < n; ++i)
            writePng(
                dir.file("images/train/" + std::string(names[labels[size_t(i)]]) + "/" + std::to_string(i) + ".png"), 4,
                3, 1, i);
        for (int i = 0; i < 5; ++i)
            writePng(dir.file("images/test/" + std::string(names[i % 4]) + "/" + std::to_string(i) + ".png"), 4, 3, 1,
                     100 + i);
        all.push_back({"images", dir.file("images")});
    }
};

const Sources& sources() {
    static const Sources s;
    return s;
}

/// What planRankRows needs, from a read of no rows.
SourceRows known(const std::string& location) {
    SourceOptions options;
    options.rows = std::make_shared<RowSelection>();
    const auto index = loadSource(location, options);
    EXPECT_EQ(index.train.size(), 0) << location;
    EXPECT_EQ(index.rowsRead, 0) << location;
    SourceRows rows;
    rows.trainRows = index.sourceTrainRows;
    rows.testRows = index.sourceTestRows;
    rows.labels = index.allLabels;
    rows.classes = index.train.numClasses();
    return rows;
}

/// The rows as float32, as prepare() leaves them without a normalization.
Dataset asFloat(const Dataset& d) { return Normalizer{Normalizer::Mode::None}.apply(d); }

void expectSameRows(const Dataset& a, const Dataset& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    EXPECT_TRUE(a.features().equal(b.features())) << what;
    EXPECT_TRUE(a.labels().equal(b.labels())) << what;
    EXPECT_EQ(a.classNames(), b.classNames()) << what;
}

TEST(RunRows, EachProcessReadsExactlyItsSegmentsRowsOfTheWholeRead) {
    const int segments = 5;
    const double validation = 0.2;
    const uint64_t seed = 7;
    for (const auto& [kind, location] : sources().all) {
        const auto whole = loadSource(location);
        const auto rows = known(location);
        ASSERT_EQ(rows.trainRows, whole.train.size()) << location;
        ASSERT_EQ(rows.testRows, whole.test.size()) << location;
        // The whole read's split and segments, as a single process takes them.
        const auto prepared = prepare(whole, validation, seed, Normalizer::Mode::None);
        const auto& wholeTrain = prepared.train;
        const int64_t validationRows = prepared.validation.size();
        for (const char* policy : {"random", "hash", "round-robin", "by-label"}) {
            for (const int world : {1, 2, 3}) {
                int64_t trainSeen = 0, validationOwned = 0, testOwned = 0, rowsRead = 0;
                std::set<int64_t> readOrdinals;
                for (int rank = 0; rank < world; ++rank) {
                    const std::string what = location + " " + policy + " rank " + std::to_string(rank) + "/" +
                                             std::to_string(world);
                    RunLayout layout;
                    layout.segments = segments;
                    layout.policy = policy;
                    layout.seed = seed;
                    layout.validationFraction = validation;
                    layout.rank = rank;
                    layout.world = world;
                    const auto plan = planRankRows(rows, layout);
                    SourceOptions options;
                    options.rows = std::make_shared<RowSelection>(plan.read);
                    const auto mine = loadSource(location, options);
                    rowsRead += mine.rowsRead;
                    EXPECT_EQ(mine.rowsRead, int64_t(plan.read.train.size() + plan.read.test.size())) << what;
                    // The rows read are the whole read's rows of those ordinals.
                    expectSameRows(mine.train, whole.train.select(indices(plan.read.train)), what + " read");
                    if (!whole.test.empty())
                        expectSameRows(mine.test, whole.test.select(indices(plan.read.test)), what + " test");
                    // Each of its segments holds what distribute() gives that segment of the whole.
                    const auto localTrain = asFloat(mine.train.select(indices(plan.trainAt)));
                    const auto shards = distribute(wholeTrain, segments, policy, seed);
                    for (const int s : segmentsOfRank(segments, rank, world)) {
                        expectSameRows(localTrain.select(indices(plan.segmentRows[size_t(s)])),
                                       wholeTrain.select(shards[size_t(s)]), what + " segment " + std::to_string(s));
                        trainSeen += int64_t(plan.segmentRows[size_t(s)].size());
                    }
                    for (const auto r : plan.read.train)
                        EXPECT_TRUE(readOrdinals.insert(r).second) << what << ": row " << r << " read twice";
                    validationOwned += int64_t(plan.validationOwnedAt.size());
                    testOwned += int64_t(plan.testOwnedAt.size());
                    // Its validation rows are a contiguous share of the whole split's.
                    expectSameRows(asFloat(mine.train.select(indices(plan.validationAt))),
                                   prepared.validation.slice(validationRows * rank / world,
                                                             validationRows * (rank + 1) / world),
                                   what + " validation share");
                }
                // Every row once: 1.0x the source, not world x.
                EXPECT_EQ(trainSeen, wholeTrain.size());
                EXPECT_EQ(int64_t(readOrdinals.size()), whole.train.size());
                EXPECT_EQ(validationOwned, validationRows);
                EXPECT_EQ(testOwned, whole.test.size());
                EXPECT_EQ(rowsRead, whole.train.size() + whole.test.size()) << location << " " << policy;
            }
        }
    }
}

} // namespace
} // namespace mppdl::data::testing
