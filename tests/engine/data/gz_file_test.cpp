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

TEST(DataGz, MissingFileIsADataError) {
    TempDir dir;
    const auto path = dir.file("nope.gz");
    expectError<DataError>([&] { readFile(path); }, {path + ": no such file"});
    expectError<DataError>([&] { readFile(dir.path().string()); }, {"directory"});
}
