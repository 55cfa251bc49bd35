// Damaged files of every format must end in mppdl::Error, never in another exception or a crash.

#include "mppdl/data/source.h"

#include "data/pg_tuple.h"
#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>

#include <sys/mman.h>
#include <unistd.h>

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

/// What a fuzz test tried, for bench/fuzz.py, which runs each for 100,000 inputs or more.
void report(const std::string& what, int total, const Outcomes& outcomes) {
    std::cout << "fuzzed " << total << " " << what << ": " << outcomes.loaded << " accepted, " << outcomes.rejected
              << " rejected\n";
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
    report("IDX file pairs", total, outcomes);
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
    report("CSV files", total, outcomes);
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
    report("NPY file pairs", total, outcomes);
}

TEST(DataFuzz, ImageFolders) {
    // Four good PNGs in two class folders; each round damages one of them (or the folder layout).
    TempDir dir;
    const std::vector<std::string> files = {"cat/a.png", "cat/b.png", "dog/c.png", "dog/d.png"};
    std::vector<std::string> good;
    for (size_t i = 0; i < files.size(); ++i) {
        writePng(dir.file(files[i]), 6, 5, i % 2 == 0 ? 3 : 1, int(i));
        std::ifstream in(dir.file(files[i]), std::ios::binary);
        good.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    const int total = rounds();
    Outcomes outcomes;
    Mutator mutator(5);
    for (int round = 0; round < total; ++round) {
        for (size_t i = 0; i < files.size(); ++i)
            dir.write(files[i], good[i]);
        const size_t victim = mutator.below(files.size());
        // The PNG header and IHDR chunk (width, height, depth, colour type) are the first 33 bytes.
        dir.write(files[victim], mutator.mutate(good[victim], 33));
        SourceOptions options;
        options.kind = "images";
        if (round % 3 == 1)
            options.shape = {3, 4, 4};
        if (round % 3 == 2)
            options.shape = {1, 6, 5};
        loadOrError(dir.path().string(), options, "image folder round " + std::to_string(round), outcomes);
    }
    EXPECT_GT(outcomes.loaded, 0);
    EXPECT_GT(outcomes.rejected, 0);
    report("image folders", total, outcomes);
}

#ifdef MPPDL_WITH_POSTGRES

namespace {

/// Bytes placed so that the first byte past them is a PROT_NONE page: a decoder that reads one
/// byte too many crashes the test instead of reading whatever lies there.
class GuardedBytes {
public:
    explicit GuardedBytes(const std::string& bytes) {
        const size_t page = size_t(sysconf(_SC_PAGESIZE));
        m_size = (bytes.size() + page - 1) / page * page + page;
        m_base = static_cast<char*>(mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        EXPECT_NE(m_base, MAP_FAILED);
        char* guard = m_base + m_size - page;
        EXPECT_EQ(mprotect(guard, page, PROT_NONE), 0);
        m_data = guard - bytes.size();
        std::memcpy(m_data, bytes.data(), bytes.size());
    }
    ~GuardedBytes() { munmap(m_base, m_size); }
    GuardedBytes(const GuardedBytes&) = delete;
    GuardedBytes& operator=(const GuardedBytes&) = delete;
    const char* data() const { return m_data; }

private:
    char* m_base = nullptr;
    char* m_data = nullptr;
    size_t m_size = 0;
};

std::string be(uint64_t value, int bytes) {
    std::string out;
    for (int b = bytes - 1; b >= 0; --b)
        out.push_back(static_cast<char>((value >> (8 * b)) & 0xff));
    return out;
}

std::string field(const std::string& value) { return be(value.size(), 4) + value; }

/// A binary COPY tuple as PostgreSQL sends it for `format`: label, `width` features[, id].
std::string copyTuple(const TupleFormat& format, int64_t row, int width) {
    std::string out = be(format.hasId ? 3 : 2, 2);
    out += field(format.textLabels ? "class-" + std::to_string(row % 3) : be(uint64_t(row % 3), 8));
    std::string features;
    if (format.wire == FeatureWire::Bytes) {
        for (int k = 0; k < width; ++k) {
            if (format.floatBytes) {
                const float value = float(row) + 0.25f * float(k);
                features.append(reinterpret_cast<const char*>(&value), 4);
            } else {
                features.push_back(static_cast<char>(row + k));
            }
        }
    } else {
        // float4[]: 1 dimension, no NULLs, element type float4 (oid 700), size and lower bound.
        features = be(1, 4) + be(0, 4) + be(700, 4) + be(uint64_t(width), 4) + be(1, 4);
        for (int k = 0; k < width; ++k) {
            const float value = float(row) - 0.5f * float(k);
            uint32_t bits;
            std::memcpy(&bits, &value, 4);
            features += be(4, 4) + be(bits, 4);
        }
    }
    out += field(features);
    if (format.hasId)
        out += field(be(uint64_t(row), 8));
    return out;
}

} // namespace

TEST(DataFuzz, PostgresCopyTuples) {
    std::vector<TupleFormat> formats;
    for (const bool text : {false, true})
        for (const int wire : {0, 1, 2})
            for (const bool id : {false, true}) {
                TupleFormat f;
                f.textLabels = text;
                f.wire = wire == 0 ? FeatureWire::FloatArray : FeatureWire::Bytes;
                f.floatBytes = wire == 2;
                f.hasId = id;
                f.idColumn = "id";
                f.expected = 4;
                formats.push_back(f);
            }
    const int total = rounds() * 20; // a tuple is cheap to decode
    Outcomes outcomes;
    Mutator mutator(4);
    for (int round = 0; round < total; ++round) {
        const TupleFormat& format = formats[mutator.below(formats.size())];
        ShardRows rows;
        const std::string what = "tuple round " + std::to_string(round);
        try {
            // A good first row fixes the width; the damaged second row is decoded against it.
            const std::string first = copyTuple(format, 0, 5);
            GuardedBytes good(first);
            decodeTuple(good.data(), first.size(), format, "pg:t", rows);
            const std::string damaged = mutator.mutate(copyTuple(format, 1, 5), 26);
            GuardedBytes bad(damaged);
            decodeTuple(bad.data(), damaged.size(), format, "pg:t", rows);
            EXPECT_EQ(rows.rows, 2) << what;
            EXPECT_EQ(rows.width, 5) << what;
            const size_t labels = format.textLabels ? rows.textLabels.size() : rows.intLabels.size();
            EXPECT_EQ(labels, 2u) << what;
            EXPECT_EQ(rows.floats.size() + rows.bytes.size(), 10u) << what;
            ++outcomes.loaded;
        } catch (const DataError& e) {
            EXPECT_NE(std::string(e.what()).find("pg:t, row 2"), std::string::npos) << what << ": " << e.what();
            ++outcomes.rejected;
        } catch (const std::exception& e) {
            ADD_FAILURE() << what << ": threw a non-DataError exception: " << e.what();
        }
    }
    EXPECT_GT(outcomes.loaded, 0);
    EXPECT_GT(outcomes.rejected, 0);
    report("PostgreSQL binary COPY tuples", total, outcomes);
}

namespace {

/// A one-dimensional int8[] as PostgreSQL sends it (element type int8, oid 20).
std::string int8Array(const std::vector<int64_t>& values) {
    std::string out = be(1, 4) + be(0, 4) + be(20, 4) + be(uint64_t(values.size()), 4) + be(1, 4);
    for (const auto v : values)
        out += be(8, 4) + be(uint64_t(v), 8);
    return out;
}

/// One buffer of a MADlib packed table as the reader's COPY sends it: buffer_id, x (float32 of
/// rows x 2x3), y (one-hot int16 of rows x 4), their shapes.
std::string packedTuple(int64_t buffer, int64_t rows) {
    std::string x, y;
    for (int64_t k = 0; k < rows * 6; ++k) {
        const float v = float(buffer) + 0.125f * float(k);
        x.append(reinterpret_cast<const char*>(&v), 4);
    }
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < 4; ++c) {
            const int16_t v = c == (r + buffer) % 4 ? 1 : 0;
            y.append(reinterpret_cast<const char*>(&v), 2);
        }
    return be(5, 2) + field(be(uint64_t(buffer), 8)) + field(x) + field(y) + field(int8Array({rows, 2, 3})) +
           field(int8Array({rows, 4}));
}

} // namespace

TEST(DataFuzz, PostgresMultiDimensionalArrays) {
    TupleFormat format;
    auto tuple = [](int64_t row, const std::vector<int>& dims) {
        std::string features = be(uint64_t(dims.size()), 4) + be(0, 4) + be(700, 4);
        int count = 1;
        for (const int d : dims) {
            features += be(uint64_t(d), 4) + be(1, 4);
            count *= d;
        }
        for (int k = 0; k < count; ++k) {
            const float value = float(row * 100 + k);
            uint32_t bits;
            std::memcpy(&bits, &value, 4);
            features += be(4, 4) + be(bits, 4);
        }
        return be(2, 2) + field(be(uint64_t(row), 8)) + field(features);
    };
    ShardRows rows;
    for (int64_t r = 0; r < 2; ++r) {
        const auto t = tuple(r, {2, 2, 3});
        decodeTuple(t.data(), t.size(), format, "pg:t", rows);
    }
    EXPECT_EQ(rows.dims, (std::vector<int64_t>{2, 2, 3}));
    EXPECT_EQ(rows.width, 12);
    ASSERT_EQ(rows.floats.size(), 24u);
    EXPECT_EQ(rows.floats[13], 101.0f); // row-major, as the array's text form lists them
    const auto other = tuple(2, {3, 2, 2});
    try {
        decodeTuple(other.data(), other.size(), format, "pg:t", rows);
        ADD_FAILURE() << "a row of another shape was accepted";
    } catch (const DataError& e) {
        EXPECT_NE(std::string(e.what()).find("row 3: the features array is 3x2x2 where the rows before are 2x2x3"),
                  std::string::npos)
            << e.what();
    }
}

TEST(DataFuzz, MadlibPackedBuffers) {
    const int total = rounds() * 20;
    Outcomes outcomes;
    Mutator mutator(5);
    for (int round = 0; round < total; ++round) {
        PackedRows rows;
        const std::string what = "packed round " + std::to_string(round);
        try {
            const std::string first = packedTuple(0, 3);
            GuardedBytes good(first);
            decodePackedTuple(good.data(), first.size(), "pg:packed", rows);
            const std::string damaged = mutator.mutate(packedTuple(1, 2), 26);
            GuardedBytes bad(damaged);
            decodePackedTuple(bad.data(), damaged.size(), "pg:packed", rows);
            EXPECT_EQ(rows.rows, 5) << what;
            EXPECT_EQ(rows.sample, (std::vector<int64_t>{2, 3})) << what;
            EXPECT_EQ(rows.classes, 4) << what;
            EXPECT_EQ(rows.floats.size(), 30u) << what;
            EXPECT_EQ(rows.labels.size(), 5u) << what;
            ++outcomes.loaded;
        } catch (const DataError& e) {
            EXPECT_NE(std::string(e.what()).find("pg:packed, buffer"), std::string::npos) << what << ": " << e.what();
            ++outcomes.rejected;
        } catch (const std::exception& e) {
            ADD_FAILURE() << what << ": threw a non-DataError exception: " << e.what();
        }
    }
    EXPECT_GT(outcomes.loaded, 0);
    EXPECT_GT(outcomes.rejected, 0);
    report("MADlib packed buffers", total, outcomes);
    // An undamaged pair: every row's label is the index of its one-hot 1.
    PackedRows rows;
    for (int64_t b = 0; b < 2; ++b) {
        const auto t = packedTuple(b, 3);
        decodePackedTuple(t.data(), t.size(), "pg:packed", rows);
    }
    EXPECT_EQ(rows.labels, (std::vector<int64_t>{0, 1, 2, 1, 2, 3}));
    EXPECT_EQ(rows.floats[6 * 3], 1.0f); // buffer 1's first value
}

#endif // MPPDL_WITH_POSTGRES
