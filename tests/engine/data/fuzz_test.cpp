// Damaged files of every format must end in mppdl::Error, never in another exception or a crash.

#include "mppdl/data/source.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <random>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

namespace {

class Mutator {
public:
    explicit Mutator(uint64_t seed) : m_random(seed) {}

    size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(m_random() % n); }

    /// One to three edits: flipped bytes (often in the header), truncation, insertions, or
    /// characters that matter to the text formats.
    std::string mutate(std::string bytes, size_t headerSize) {
        const size_t edits = 1 + below(3);
        for (size_t e = 0; e < edits; ++e) {
            const size_t at = below(2) == 0 ? below(std::min(headerSize, bytes.size() + 1)) : below(bytes.size() + 1);
            switch (below(6)) {
            case 0: bytes.resize(below(bytes.size() + 1)); break;
            case 1:
            case 2:
                if (at < bytes.size())
                    bytes[at] = static_cast<char>(m_random());
                break;
            case 3: bytes.insert(at, std::string(1 + below(8), static_cast<char>(m_random()))); break;
            case 4: {
                static const char special[] = {',', '"', '\n', '\r', 'a', '-', '.', 'e', '(', ')', '\'', ' ', '0', '9'};
                bytes.insert(at, 1, special[below(sizeof special)]);
                break;
            }
            default:
                if (at < bytes.size())
                    bytes.erase(at, 1 + below(16));
                break;
            }
        }
        return bytes;
    }

private:
    std::mt19937_64 m_random;
};

/// Counts of how the loads of one test ended; both must occur for the damage to be meaningful.
struct Outcomes {
    int loaded = 0;
    int rejected = 0;
};

/// Loads `location` and fails the test unless it succeeds or throws mppdl::Error.
void loadOrError(const std::string& location, const SourceOptions& options, const std::string& what,
                 Outcomes& outcomes) {
    try {
        const auto loaded = loadSource(location, options);
        EXPECT_EQ(loaded.train.features().size(0), loaded.train.labels().size(0)) << what;
        ++outcomes.loaded;
    } catch (const Error&) {
        ++outcomes.rejected;
    } catch (const std::exception& e) {
        ADD_FAILURE() << what << ": threw a non-mppdl exception: " << e.what();
    } catch (...) {
        ADD_FAILURE() << what << ": threw something that is not an exception";
    }
}

/// Rounds per format; MPPDL_FUZZ_ROUNDS raises it for a longer hunt.
int rounds() {
    const char* env = std::getenv("MPPDL_FUZZ_ROUNDS");
    return env && std::atoi(env) > 0 ? std::atoi(env) : 120;
}

} // namespace

TEST(DataFuzz, IdxFiles) {
    TempDir dir;
    const auto images = idxImages(20, 4, 4);
    std::vector<uint8_t> labelValues(20);
    for (size_t i = 0; i < labelValues.size(); ++i)
        labelValues[i] = static_cast<uint8_t>(i % 10);
    const auto labels = idxLabels(labelValues);
    const int total = rounds();
    Outcomes outcomes;
    Mutator mutator(1);
    SourceOptions options;
    options.kind = "idx";
    for (int round = 0; round < total; ++round) {
        const bool damageImages = mutator.below(2) == 0;
        const bool packed = mutator.below(3) == 0;
        auto imageBytes = damageImages ? mutator.mutate(images, 16) : images;
        auto labelBytes = damageImages ? labels : mutator.mutate(labels, 8);
        std::filesystem::remove_all(dir.path());
        std::filesystem::create_directories(dir.path());
        if (packed) {
            // Damage the compressed bytes themselves.
            imageBytes = damageImages ? mutator.mutate(gzip(images), 20) : gzip(images);
            labelBytes = gzip(labelBytes);
            dir.write("train-images-idx3-ubyte.gz", imageBytes);
            dir.write("train-labels-idx1-ubyte.gz", labelBytes);
        } else {
            dir.write("train-images-idx3-ubyte", imageBytes);
            dir.write("train-labels-idx1-ubyte", labelBytes);
        }
        loadOrError(dir.path().string(), options, "idx round " + std::to_string(round), outcomes);
    }
    EXPECT_GT(outcomes.loaded, 0);
    EXPECT_GT(outcomes.rejected, 0);
}

TEST(DataFuzz, CsvFiles) {
    TempDir dir;
    std::string csv = "a,\"b\",c,label\n";
    for (int r = 0; r < 30; ++r)
        csv += std::to_string(r) + "," + std::to_string(r * 0.25) + ",\"" + std::to_string(-r) + "\"," +
               (r % 3 == 0   ? "\"x, y\""
                : r % 3 == 1 ? "z"
                             : "w") +
               "\n";
    const int total = rounds();
    Outcomes outcomes;
    Mutator mutator(2);
    for (int round = 0; round < total; ++round) {
        SourceOptions options;
        options.kind = "csv";
        if (round % 4 == 1)
            options.label = "b";
        if (round % 4 == 2)
            options.label = "0";
        if (round % 5 == 3)
            options.shape = {3};
        const bool packed = round % 7 == 0;
        const auto bytes = mutator.mutate(csv, 40);
        const auto path = dir.write(packed ? "f.csv.gz" : "f.csv", packed ? gzip(bytes) : bytes);
        loadOrError(path, options, "csv round " + std::to_string(round), outcomes);
    }
    EXPECT_GT(outcomes.loaded, 0);
    EXPECT_GT(outcomes.rejected, 0);
}

TEST(DataFuzz, NpyFiles) {
    TempDir dir;
    std::vector<float> values(24);
    for (size_t i = 0; i < values.size(); ++i)
        values[i] = static_cast<float>(i);
    const auto features = npy("<f4", {6, 4}, bytesOf(values));
    const auto labels = npy("<i8", {6}, bytesOf(std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
    const int total = rounds();
    Outcomes outcomes;
    Mutator mutator(3);
    SourceOptions options;
    options.kind = "npy";
    for (int round = 0; round < total; ++round) {
        const bool damageFeatures = mutator.below(2) == 0;
        const auto x = dir.write("X.npy", damageFeatures ? mutator.mutate(features, 80) : features);
        dir.write("y.npy", damageFeatures ? labels : mutator.mutate(labels, 80));
        loadOrError(x, options, "npy round " + std::to_string(round), outcomes);
    }
    EXPECT_GT(outcomes.loaded, 0);
    EXPECT_GT(outcomes.rejected, 0);
}
