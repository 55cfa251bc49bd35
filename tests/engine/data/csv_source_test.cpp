#include "mppdl/data/source.h"

#include "data/test_files.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>

using namespace mppdl;
using namespace mppdl::data;
using namespace mppdl::data::testing;

TEST(DataCsv, HeaderAndStringLabels) {
    TempDir dir;
    const auto path = dir.write("iris.csv", "sepal,petal,width,species\n"
                                            "5.1,3.5,1.4,setosa\n"
                                            "7.0,3.2,4.7,versicolor\n"
                                            "6.3,3.3,6.0,virginica\n"
                                            "4.9,3.0,1.4,setosa\n");
    const auto loaded = loadSource(path);
    EXPECT_EQ(loaded.kind, "csv");
    EXPECT_EQ(loaded.train.size(), 4);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{3}));
    EXPECT_EQ(loaded.train.dtype(), "float32");
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 1, 2, 0}, torch::kInt64)));
    EXPECT_FLOAT_EQ(loaded.train.features()[1][2].item<float>(), 4.7f);
    EXPECT_TRUE(loaded.test.empty());
}

TEST(DataCsv, NoHeaderAndIntegerLabelsInTheLastColumn) {
    TempDir dir;
    const auto path = dir.write("d.csv", "0.5,-1e-3,2\n+1,2.25,0\n");
    const auto loaded = loadSource(path);
    EXPECT_EQ(loaded.train.size(), 2);
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"0", "1", "2"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({2, 0}, torch::kInt64)));
    EXPECT_FLOAT_EQ(loaded.train.features()[0][1].item<float>(), -1e-3f);
    EXPECT_FLOAT_EQ(loaded.train.features()[1][0].item<float>(), 1.0f);
}

TEST(DataCsv, LabelColumnByNameOrIndex) {
    TempDir dir;
    const auto path = dir.write("d.csv", "id,label,x\n1,7,0.5\n2,3,0.25\n");
    SourceOptions byName;
    byName.label = "label";
    const auto a = loadSource(path, byName);
    EXPECT_TRUE(a.train.labels().equal(torch::tensor({7, 3}, torch::kInt64)));
    EXPECT_EQ(a.train.numClasses(), 8);
    EXPECT_TRUE(a.train.features().equal(torch::tensor({1.0f, 0.5f, 2.0f, 0.25f}).view({2, 2})));

    SourceOptions byIndex;
    byIndex.label = "0";
    const auto b = loadSource(path, byIndex);
    EXPECT_EQ(b.train.classNames(), (std::vector<std::string>{"0", "1", "2"}));
    EXPECT_FLOAT_EQ(b.train.features()[1][0].item<float>(), 3.0f);
}

TEST(DataCsv, QuotedFieldsCrlfAndBlankLines) {
    TempDir dir;
    const auto path = dir.write("q.csv", "\"a\",\"b, with comma\",label\r\n"
                                         "\"1.5\",2,\"big, \"\"red\"\"\"\r\n"
                                         "\r\n"
                                         "3,4,\"two\nlines\"\r\n"
                                         "5,6,plain\r\n");
    const auto loaded = loadSource(path);
    ASSERT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"big, \"red\"", "plain", "two\nlines"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 2, 1}, torch::kInt64)));
    EXPECT_FLOAT_EQ(loaded.train.features()[0][0].item<float>(), 1.5f);

    // Line numbers count the line break inside the quoted field.
    const auto bad = dir.write("bad.csv", "a,b,label\n1,2,\"x\ny\"\n3,oops,z\n");
    expectError<DataError>([&] { loadSource(bad); }, {bad + ":4: column 'b' (1): 'oops' is not a number"});
}

TEST(DataCsv, GzippedCsv) {
    TempDir dir;
    const auto path = dir.write("d.csv.gz", gzip("x,y,label\n1,2,a\n3,4,b\n"));
    const auto loaded = loadSource(path);
    EXPECT_EQ(loaded.kind, "csv");
    EXPECT_EQ(loaded.train.size(), 2);
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"a", "b"}));
}

TEST(DataCsv, ReshapesToTheDeclaredShape) {
    TempDir dir;
    const auto path = dir.write("d.csv", "1,2,3,4,0\n5,6,7,8,1\n");
    SourceOptions options;
    options.shape = {1, 2, 2};
    const auto loaded = loadSource(path, options);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{1, 2, 2}));
    EXPECT_EQ(loaded.train.features()[1][0][1][0].item<float>(), 7.0f);

    options.shape = {1, 2, 3};
    expectError<ConfigError>([&] { loadSource(path, options); }, {path, "1x2x3", "6", "4"});
}

TEST(DataCsv, HeaderCanBeForced) {
    TempDir dir;
    const auto path = dir.write("d.csv", "1,2,0\n3,4,1\n");
    SourceOptions options;
    options.header = true;
    options.label = "0";
    EXPECT_EQ(loadSource(path, options).train.size(), 1);
    options.header = false;
    const auto text = dir.write("t.csv", "a,b,c\n1,2,0\n");
    expectError<DataError>([&] { loadSource(text, options); }, {text + ":1: column 1: 'b' is not a number"});
}

TEST(DataCsv, Limit) {
    TempDir dir;
    const auto path = dir.write("d.csv", "x,label\n1,0\n2,1\n3,0\n4,1\n");
    SourceOptions options;
    options.limit = 2;
    EXPECT_EQ(loadSource(path, options).train.size(), 2);
}

TEST(DataCsv, RaggedRowNamesFileAndLine) {
    TempDir dir;
    const auto path = dir.write("ragged.csv", "a,b,label\n1,2,x\n3,y\n");
    expectError<DataError>([&] { loadSource(path); }, {path + ":3: expected 3 fields, found 2"});
}

TEST(DataCsv, NonNumericValueNamesFileLineAndColumn) {
    TempDir dir;
    const auto path = dir.write("bad.csv", "a,b,c,d,label\n1,2,3,4,x\n1,2,3,abc,y\n");
    expectError<DataError>([&] { loadSource(path); }, {path + ":3: column 'd' (3): 'abc' is not a number"});
}

TEST(DataCsv, MissingLabelColumnListsTheColumns) {
    TempDir dir;
    const auto path = dir.write("d.csv", "alpha,beta,gamma\n1,2,0\n");
    SourceOptions options;
    options.label = "target";
    expectError<ConfigError>([&] { loadSource(path, options); }, {path, "'target'", "alpha", "beta", "gamma"});
    options.label = "7";
    expectError<ConfigError>([&] { loadSource(path, options); }, {"'7'"});
}

TEST(DataCsv, EmptyFileAndHeaderOnly) {
    TempDir dir;
    const auto empty = dir.write("empty.csv", "");
    expectError<DataError>([&] { loadSource(empty); }, {empty, "empty"});
    const auto blank = dir.write("blank.csv", "\n\n  \n");
    expectError<DataError>([&] { loadSource(blank); }, {blank, "empty"});
    const auto headerOnly = dir.write("header.csv", "a,b,label\n");
    expectError<DataError>([&] { loadSource(headerOnly); }, {headerOnly, "no data rows"});
}

TEST(DataCsv, UnterminatedQuote) {
    TempDir dir;
    const auto path = dir.write("q.csv", "a,b\n1,\"open\n");
    expectError<DataError>([&] { loadSource(path); }, {path + ":2:", "unterminated"});
}

TEST(DataCsv, ParsesAMnistSizedFileQuickly) {
    TempDir dir;
    std::string text;
    text.reserve(6000 * 785 * 4);
    for (int r = 0; r < 6000; ++r) {
        text += std::to_string(r % 10);
        for (int c = 0; c < 784; ++c)
            text += "," + std::to_string((r * 31 + c) % 256);
        text += '\n';
    }
    const auto path = dir.write("big.csv", text);
    SourceOptions options;
    options.label = "0";
    const auto start = std::chrono::steady_clock::now();
    const auto loaded = loadSource(path, options);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_EQ(loaded.train.size(), 6000);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{784}));
    EXPECT_LT(seconds, 3.0);
}
