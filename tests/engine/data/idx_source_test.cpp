#include "mppdl/data/source.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

namespace {

SourceOptions idxKind() {
    SourceOptions o;
    o.kind = "idx";
    return o;
}

} // namespace

TEST(DataIdx, LoadsADirectoryWithTrainAndTestSplits) {
    TempDir dir;
    dir.write("mnist/train-images-idx3-ubyte.gz", gzip(idxImages(5, 3, 4)));
    dir.write("mnist/train-labels-idx1-ubyte.gz", gzip(idxLabels({3, 1, 4, 1, 5})));
    dir.write("mnist/t10k-images-idx3-ubyte", idxImages(2, 3, 4));
    dir.write("mnist/t10k-labels-idx1-ubyte", idxLabels({9, 2}));

    const auto loaded = loadSource(dir.file("mnist"));
    EXPECT_EQ(loaded.kind, "idx");
    EXPECT_EQ(loaded.train.size(), 5);
    EXPECT_EQ(loaded.test.size(), 2);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{1, 3, 4}));
    EXPECT_EQ(loaded.train.dtype(), "uint8");
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({3, 1, 4, 1, 5}, torch::kInt64)));
    EXPECT_EQ(loaded.test.labels()[0].item<int64_t>(), 9);
    // Pixel i of image n is (n * 7 + i) % 256; image 2, row 1, column 3 is pixel 7.
    EXPECT_EQ(loaded.train.features()[2][0][1][3].item<uint8_t>(), 2 * 7 + 7);

    const auto schema = loaded.schema();
    EXPECT_EQ(schema.trainRows, 5);
    EXPECT_EQ(schema.testRows, 2);
}

TEST(DataIdx, FindsTheLabelsOfAnImagesFileByName) {
    TempDir dir;
    const auto images = dir.write("train-images-idx3-ubyte", idxImages(3, 2, 2));
    dir.write("train-labels-idx1-ubyte.gz", gzip(idxLabels({0, 1, 2})));
    const auto loaded = loadSource(images);
    EXPECT_EQ(loaded.kind, "idx");
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_TRUE(loaded.test.empty());
    EXPECT_EQ(loaded.train.labels()[2].item<int64_t>(), 2);
}

TEST(DataIdx, FashionPathsGetFashionClassNames) {
    TempDir dir;
    dir.write("fashion/train-images-idx3-ubyte", idxImages(2, 2, 2));
    dir.write("fashion/train-labels-idx1-ubyte", idxLabels({9, 0}));
    const auto loaded = loadSource(dir.file("fashion"));
    ASSERT_EQ(loaded.train.numClasses(), 10);
    EXPECT_EQ(loaded.train.classNames()[0], "T-shirt/top");
    EXPECT_EQ(loaded.train.classNames()[9], "Ankle boot");
}

TEST(DataIdx, HonoursTheLimitOnTrainingRowsOnly) {
    TempDir dir;
    dir.write("d/train-images-idx3-ubyte", idxImages(6, 2, 2));
    dir.write("d/train-labels-idx1-ubyte", idxLabels({0, 1, 2, 3, 4, 5}));
    dir.write("d/t10k-images-idx3-ubyte", idxImages(4, 2, 2));
    dir.write("d/t10k-labels-idx1-ubyte", idxLabels({0, 1, 2, 3}));
    auto options = idxKind();
    options.limit = 3;
    const auto loaded = loadSource(dir.file("d"), options);
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.test.size(), 4);
}

TEST(DataIdx, WrongMagicNamesExpectedAndFound) {
    TempDir dir;
    const auto images = dir.write("train-images-idx3-ubyte", idxImages(2, 2, 2, 0x00000804));
    dir.write("train-labels-idx1-ubyte", idxLabels({0, 1}));
    expectError<DataError>([&] { loadSource(images, idxKind()); },
                           {images, "expected magic 0x00000803", "found 0x00000804"});

    dir.write("train-images-idx3-ubyte", idxImages(2, 2, 2));
    const auto labels = dir.write("train-labels-idx1-ubyte", idxImages(2, 2, 2));
    expectError<DataError>([&] { loadSource(images, idxKind()); },
                           {labels, "expected magic 0x00000801", "found 0x00000803"});
}

TEST(DataIdx, CountMismatchNamesBothFilesAndCounts) {
    TempDir dir;
    const auto images = dir.write("train-images-idx3-ubyte", idxImages(5, 2, 2));
    const auto labels = dir.write("train-labels-idx1-ubyte", idxLabels({0, 1, 2, 3}));
    expectError<DataError>([&] { loadSource(images, idxKind()); }, {images, labels, "5 images", "4 labels"});
}

TEST(DataIdx, FileShorterThanItsHeaderSays) {
    TempDir dir;
    auto bytes = idxImages(5, 3, 3);
    bytes.resize(bytes.size() - 4);
    const auto images = dir.write("train-images-idx3-ubyte", bytes);
    dir.write("train-labels-idx1-ubyte", idxLabels({0, 1, 2, 3, 4}));
    expectError<DataError>([&] { loadSource(images, idxKind()); }, {images, "shorter than its header says"});

    const auto tiny = dir.write("t10k-images-idx3-ubyte", idxImages(1, 1, 1).substr(0, 9));
    dir.write("t10k-labels-idx1-ubyte", idxLabels({0}));
    expectError<DataError>([&] { loadSource(tiny, idxKind()); }, {tiny, "truncated"});

    dir.write("train-images-idx3-ubyte", idxImages(5, 3, 3));
    const auto labels = dir.write("train-labels-idx1-ubyte", idxLabels({0, 1, 2, 3, 4}).substr(0, 10));
    expectError<DataError>([&] { loadSource(images, idxKind()); }, {labels, "shorter than its header says"});
}

TEST(DataIdx, TruncatedGzipIsADataError) {
    TempDir dir;
    const auto packed = gzip(idxImages(50, 8, 8));
    const auto images = dir.write("train-images-idx3-ubyte.gz", packed.substr(0, packed.size() / 2));
    dir.write("train-labels-idx1-ubyte.gz", gzip(idxLabels(std::vector<uint8_t>(50, 1))));
    expectError<DataError>([&] { loadSource(images); }, {images, "truncated or corrupt gzip data"});
}

TEST(DataIdx, MissingLabelsFileIsADataError) {
    TempDir dir;
    const auto images = dir.write("train-images-idx3-ubyte", idxImages(2, 2, 2));
    expectError<DataError>([&] { loadSource(images); }, {images, "train-labels-idx1-ubyte"});
}

TEST(DataIdx, RealFashionMnist) {
    const std::string location = MPPDL_FASHION_MNIST_DIR;
    if (!std::filesystem::exists(location + "/train-images-idx3-ubyte.gz"))
        GTEST_SKIP() << "Fashion-MNIST is not installed at " << location;
    const auto start = std::chrono::steady_clock::now();
    const auto loaded = loadSource(location);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(loaded.kind, "idx");
    EXPECT_EQ(loaded.train.size(), 60000);
    EXPECT_EQ(loaded.test.size(), 10000);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{1, 28, 28}));
    EXPECT_EQ(loaded.train.dtype(), "uint8");
    ASSERT_EQ(loaded.train.numClasses(), 10);
    EXPECT_EQ(loaded.train.classNames(),
              (std::vector<std::string>{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                        "Sneaker", "Bag", "Ankle boot"}));
    EXPECT_EQ(loaded.train.labels()[0].item<int64_t>(), 9);
    EXPECT_EQ(loaded.train.classNames()[9], "Ankle boot");
    // Gunzip dominates (~0.3 s); the bound only catches per-pixel work creeping in.
    EXPECT_LT(seconds, 5.0);
    RecordProperty("load_seconds", std::to_string(seconds));
}
