#include "data/gz_file.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

namespace {

std::string someText() {
    std::string text;
    for (int i = 0; i < 20000; ++i)
        text += std::to_string(i * 7919 % 1000) + (i % 10 == 9 ? "\n" : ",");
    return text;
}

} // namespace

TEST(DataGz, ReadsRawAndGzippedFiles) {
    TempDir dir;
    const auto text = someText();
    EXPECT_EQ(readFile(dir.write("a.txt", text)), text);
    EXPECT_EQ(readFile(dir.write("a.txt.gz", gzip(text))), text);
    EXPECT_EQ(readFile(dir.write("empty", "")), "");
}

TEST(DataGz, ReadsConcatenatedMembers) {
    TempDir dir;
    EXPECT_EQ(readFile(dir.write("two.gz", gzip("hello ") + gzip("world"))), "hello world");
}

TEST(DataGz, TruncatedOrCorruptDataIsADataError) {
    TempDir dir;
    const auto packed = gzip(someText());
    for (const size_t keep : {size_t(2), size_t(10), packed.size() / 2, packed.size() - 1}) {
        const auto path = dir.write("cut.gz", packed.substr(0, keep));
        expectError<DataError>([&] { readFile(path); }, {path, "truncated or corrupt gzip data"});
    }
    auto damaged = packed;
    for (size_t i = 20; i < 60; ++i)
        damaged[i] = static_cast<char>(damaged[i] ^ 0x5a);
    const auto path = dir.write("damaged.gz", damaged);
    expectError<DataError>([&] { readFile(path); }, {path, "truncated or corrupt gzip data"});
}

// A small file of repeated bytes that would expand past the cap is a clear error naming it, and
// decompresses no further than the cap (here 1 MiB; by default 64 GiB or half of memory).
TEST(DataGz, AFileExpandingPastTheCapIsADataError) {
    TempDir dir;
    const std::string zeros(8 << 20, '0');
    const auto path = dir.write("bomb.csv.gz", gzip(zeros));
    expectError<DataError>([&] { readFile(path, 1 << 20); }, {path, "expands to more than 1.0 MB", "gunzip it"});
    EXPECT_EQ(readFile(path, 16 << 20), zeros);
    EXPECT_EQ(readFile(path), zeros);
    EXPECT_LE(maxExpandedBytes(), uint64_t(64) << 30);
    EXPECT_GT(maxExpandedBytes(), uint64_t(16) << 20);
}

TEST(DataGz, MissingFileIsADataError) {
    TempDir dir;
    const auto path = dir.file("nope.gz");
    expectError<DataError>([&] { readFile(path); }, {path + ": no such file"});
    expectError<DataError>([&] { readFile(dir.path().string()); }, {"directory"});
}

// The stream the readers of some rows use: skips and reads land on the same bytes in a raw and a
// gzipped file (members concatenated too), and a file that ends early is named.
TEST(DataGz, InputFileSkipsAndReadsTheSameBytesRawAndGzipped) {
    TempDir dir;
    const auto text = someText();
    const auto half = text.size() / 2;
    for (const auto& path : {dir.write("a.txt", text), dir.write("a.txt.gz", gzip(text)),
                             dir.write("b.txt.gz", gzip(text.substr(0, half)) + gzip(text.substr(half)))}) {
        InputFile file(path);
        std::string got(100, '\0');
        file.read(got.data(), 100, "the start");
        EXPECT_EQ(got, text.substr(0, 100)) << path;
        file.skip(half - 150, "the middle"); // across the members' boundary of b.txt.gz
        file.read(got.data(), 100, "the middle");
        EXPECT_EQ(got, text.substr(half - 50, 100)) << path;
        EXPECT_EQ(file.position(), half + 50);
        InputFile again(path);
        again.skip(text.size() - 10, "the end");
        expectError<DataError>([&] { again.read(got.data(), 100, "row 7"); }, {path, "truncated", "row 7"});
    }
    expectError<DataError>([&] { InputFile missing(dir.file("nope")); }, {dir.file("nope"), "no such file"});
}
