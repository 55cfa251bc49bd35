#include "mppdl/data/source.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <stb/stb_image_write.h>
#include <torch/torch.h>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

TEST(DataImages, OneFolderPerClass) {
    TempDir dir;
    writePng(dir.file("pets/dog/a.png"), 4, 5, 3, 1);
    writePng(dir.file("pets/cat/b.png"), 4, 5, 3, 2);
    writePng(dir.file("pets/cat/a.png"), 4, 5, 3, 3);
    dir.write("pets/cat/notes.txt", "not an image");
    const auto loaded = loadSource(dir.file("pets"));
    EXPECT_EQ(loaded.kind, "images");
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"cat", "dog"}));
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{3, 5, 4}));
    EXPECT_EQ(loaded.train.dtype(), "uint8");
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 0, 1}, torch::kInt64)));
    // Files are read in sorted order: cat/a.png (seed 3) first; features are [C, H, W].
    const auto first = loaded.train.features()[0];
    EXPECT_EQ(first[2][4][1].item<uint8_t>(), pngPixel(4, 1, 2, 3));
    EXPECT_EQ(loaded.train.features()[2][0][3][2].item<uint8_t>(), pngPixel(3, 2, 0, 1));
    EXPECT_TRUE(loaded.test.empty());
}

TEST(DataImages, GreyImagesKeepOneChannelAndOtherFormatsDecode) {
    TempDir dir;
    writePng(dir.file("g/a_zero/a.png"), 6, 6, 1);
    std::vector<uint8_t> grey(36, 128);
    ASSERT_TRUE(stbi_write_bmp(dir.file("g/b_one/b.bmp").c_str(), 6, 6, 1, grey.data()));
    ASSERT_TRUE(stbi_write_jpg(dir.file("g/b_one/c.JPG").c_str(), 6, 6, 1, grey.data(), 95));
    const auto loaded = loadSource(dir.file("g"));
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{1, 6, 6}));
    EXPECT_EQ(loaded.train.features()[1][0][3][3].item<uint8_t>(), 128);
    EXPECT_NEAR(loaded.train.features()[2][0][3][3].item<uint8_t>(), 128, 3);
}

TEST(DataImages, ResizesToTheDeclaredShape) {
    TempDir dir;
    writePng(dir.file("r/a/small.png"), 4, 4, 3);
    writePng(dir.file("r/b/large.png"), 20, 10, 3);
    SourceOptions options;
    options.shape = {1, 8, 8};
    const auto loaded = loadSource(dir.file("r"), options);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{1, 8, 8}));
    options.shape = {2, 8, 8};
    expectError<ConfigError>([&] { loadSource(dir.file("r"), options); }, {"2x8x8"});
}

TEST(DataImages, TrainAndTestFolders) {
    TempDir dir;
    for (const char* split : {"train", "test"})
        for (const char* cls : {"ant", "bee"})
            writePng(dir.file(std::string("s/") + split + "/" + cls + "/x.png"), 3, 3, 3);
    writePng(dir.file("s/train/bee/y.png"), 3, 3, 3);
    const auto loaded = loadSource(dir.file("s"));
    EXPECT_EQ(loaded.kind, "images");
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.test.size(), 2);
    EXPECT_EQ(loaded.test.classNames(), (std::vector<std::string>{"ant", "bee"}));

    writePng(dir.file("s/test/wasp/x.png"), 3, 3, 3);
    expectError<DataError>([&] { loadSource(dir.file("s")); }, {"wasp"});
}

TEST(DataImages, LimitTakesEveryClassInTurn) {
    TempDir dir;
    for (int i = 0; i < 3; ++i) {
        writePng(dir.file("l/a/" + std::to_string(i) + ".png"), 2, 2, 3);
        writePng(dir.file("l/b/" + std::to_string(i) + ".png"), 2, 2, 3);
    }
    SourceOptions options;
    options.limit = 2;
    const auto loaded = loadSource(dir.file("l"), options);
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 1}, torch::kInt64)));
}

TEST(DataImages, UndecodableImageNamesTheFile) {
    TempDir dir;
    writePng(dir.file("u/a/good.png"), 2, 2, 3);
    const auto broken = dir.write("u/b/broken.png", "\x89PNG but not really");
    SourceOptions options;
    options.kind = "images";
    expectError<DataError>([&] { loadSource(dir.file("u"), options); }, {broken, "cannot decode"});
}

TEST(DataImages, NoClassFolders) {
    TempDir dir;
    dir.write("empty/readme.txt", "x");
    SourceOptions options;
    options.kind = "images";
    expectError<DataError>([&] { loadSource(dir.file("empty"), options); }, {"no class subfolders"});
}

// A small PNG whose header claims 40000x10 pixels (stb_image takes up to 2^30 bytes an image) is
// a data error naming the file, with or without --shape, before its pixels are allocated.
// (stb_image itself refuses one of 60000x60000: "too large".)
TEST(DataImages, AHeaderClaimingAHugeImageIsADataError) {
    TempDir dir;
    writePng(dir.file("pics/a/small.png"), 4, 4, 3, 1);
    const auto bigEndian = [](uint32_t v) { return std::string{char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; };
    std::string png = "\x89PNG\r\n\x1a\n";
    png += bigEndian(13) + "IHDR" + bigEndian(40000) + bigEndian(10) + std::string("\x08\x02\x00\x00\x00", 5);
    png += bigEndian(0); // the chunk's CRC, which a header reader does not check
    png += bigEndian(0) + "IEND" + bigEndian(0xAE426082);
    dir.write("pics/a/huge.png", png);
    expectError<DataError>([&] { loadSource(dir.file("pics")); },
                           {"huge.png: the image claims 40000x10 pixels, over the 32768 a side"});
    SourceOptions o;
    o.shape = {3, 8, 8};
    expectError<DataError>([&] { loadSource(dir.file("pics"), o); }, {"huge.png: the image claims 40000x10"});
}
