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
    expectError<ConfigError>([&] { loadSource(path, options); }, {"--label 7 is a 0-based column index", "(0..2)"});
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

// Records before the data are passed over; a first row taken as the header is said, and one that
// is neither a header of the data nor data is refused naming line 1 and the option.
TEST(DataCsv, SkipRowsAndTheFirstRowExplained) {
    TempDir dir;
    const auto path = dir.write("notes.csv", "exported 2026-12-07\nby the lab\nx,y,label\n1,2,0\n3,4,1\n");
    SourceOptions options;
    options.skipRows = 2;
    const auto loaded = loadSource(path, options);
    EXPECT_EQ(loaded.train.size(), 2);
    EXPECT_EQ(loaded.featureNames, (std::vector<std::string>{"x", "y"}));
    ASSERT_EQ(loaded.notes.size(), 1u);
    EXPECT_EQ(loaded.notes[0], path + ":3: taken as the header (x, y, label); --no-header reads it as data");
    const auto titled = dir.write("titled.csv", "a title,here\n1,2,3,0\n4,5,6,1\n");
    expectError<DataError>([&] { loadSource(titled); },
                           {titled + ":1: 2 fields, where the data below has 4 (line 2)", "--skip-rows 1"});
    options.skipRows = 1;
    EXPECT_EQ(loadSource(titled, options).train.size(), 2);
    options.skipRows = 9;
    expectError<DataError>([&] { loadSource(titled, options); }, {"--skip-rows 9 passes over every record"});
}

// A first row of the row count, the feature count and the class names (scikit-learn's layout) is
// recognised whatever its width, and names the integer labels.
TEST(DataCsv, AFirstRowOfCountsAndClassNames) {
    TempDir dir;
    // As wide as the data: 4 features and the label.
    const auto iris = dir.write("iris.csv", "3,4,setosa,versicolor,virginica\n5.1,3.5,1.4,0.2,0\n"
                                            "7.0,3.2,4.7,1.4,1\n6.3,3.3,6.0,2.5,2\n");
    auto loaded = loadSource(iris);
    EXPECT_EQ(loaded.train.size(), 3);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{4}));
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"setosa", "versicolor", "virginica"}));
    ASSERT_EQ(loaded.notes.size(), 1u);
    EXPECT_NE(loaded.notes[0].find(iris + ":1: the row count (3), the feature count (4) and the class names "
                                          "(setosa, versicolor, virginica)"),
              std::string::npos)
        << loaded.notes[0];
    // Narrower than the data: 2 classes named, 6 features.
    const auto wide = dir.write("wide.csv", "2,6,benign,malignant\n1,2,3,4,5,6,0\n6,5,4,3,2,1,1\n");
    loaded = loadSource(wide);
    EXPECT_EQ(loaded.train.size(), 2);
    EXPECT_EQ(loaded.train.classNames(), (std::vector<std::string>{"benign", "malignant"}));
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 1}, torch::kInt64)));
}

// --label: digits are an index, other text a name; name: and index: force either.
TEST(DataCsv, TheLabelRuleIsOneRule) {
    TempDir dir;
    const auto path = dir.write("d.csv", "a,4,b,label\n1,0,2,1\n3,1,4,0\n5,1,6,1\n");
    SourceOptions options;
    options.label = "1"; // the column at index 1, which is named "4"
    auto loaded = loadSource(path, options);
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 1, 1}, torch::kInt64)));
    options.label = "name:4";
    EXPECT_TRUE(loadSource(path, options).train.labels().equal(torch::tensor({0, 1, 1}, torch::kInt64)));
    options.label = "4";
    expectError<ConfigError>([&] { loadSource(path, options); },
                             {"--label 4 is a 0-based column index", "4 columns", "--label name:4"});
    options.label = "index:3";
    EXPECT_TRUE(loadSource(path, options).train.labels().equal(torch::tensor({1, 0, 1}, torch::kInt64)));
    options.label = "label";
    EXPECT_TRUE(loadSource(path, options).train.labels().equal(torch::tensor({1, 0, 1}, torch::kInt64)));
}

// A label column of fractions (a feature, surely) or of a distinct value a row (an id) is refused
// with the count of its distinct values, rather than made into dozens of classes.
TEST(DataCsv, ALabelColumnThatIsNotClassesIsRefused) {
    TempDir dir;
    std::string fractions = "x,share\n", names = "x,customer\n";
    for (int i = 0; i < 600; ++i) {
        fractions += std::to_string(i) + "," + std::to_string(i % 37) + "." + std::to_string(i % 7 + 1) + "\n";
        names += std::to_string(i) + ",customer-" + std::to_string(i) + "\n";
    }
    const auto a = dir.write("fractions.csv", fractions);
    expectError<ConfigError>([&] { loadSource(a); },
                             {a, "the label column 'share' (1) holds", "distinct numbers that are not all integers",
                              "in 600 rows", "--label"});
    const auto b = dir.write("names.csv", names);
    expectError<ConfigError>([&] { loadSource(b); }, {"holds 600 distinct values in 600 rows"});
}

// Rows read to be predicted: a file of exactly the model's features has no label column.
TEST(DataCsv, RowsWithoutALabelColumnForPrediction) {
    TempDir dir;
    const auto path = dir.write("new.csv", "1,2,3\n4,5,6\n");
    SourceOptions options;
    options.labelsOptional = true;
    options.expectedFeatures = 3;
    const auto loaded = loadSource(path, options);
    EXPECT_EQ(loaded.train.size(), 2);
    EXPECT_FALSE(loaded.train.labeled());
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{3}));
    options.expectedFeatures = 2; // then the last column is the label, as for training
    EXPECT_TRUE(loadSource(path, options).train.labeled());
}

// A NaN or infinite value is refused naming the line and column, or the row is left out.
TEST(DataCsv, NonFiniteValuesAreRefusedOrSkipped) {
    TempDir dir;
    const auto path = dir.write("nan.csv", "a,b,label\n1,2,0\n3,nan,1\n4,-inf,0\n5,6,1\n");
    expectError<DataError>([&] { loadSource(path); },
                           {path + ":3: column 'b' (1): 'nan' is not a finite number", "--on-bad-rows skip"});
    SourceOptions options;
    options.onBadRows = "skip";
    const auto loaded = loadSource(path, options);
    EXPECT_EQ(loaded.train.size(), 2);
    EXPECT_EQ(loaded.badRows, 2);
    EXPECT_TRUE(loaded.train.labels().equal(torch::tensor({0, 1}, torch::kInt64)));
    options.onBadRows = "drop";
    expectError<ConfigError>([&] { loadSource(path, options); }, {"--on-bad-rows must be fail or skip"});
}

namespace {

/// The features of row r as a vector.
std::vector<float> rowOf(const Dataset& d, int64_t r) {
    const auto x = d.features()[r].contiguous();
    return {x.data_ptr<float>(), x.data_ptr<float>() + x.numel()};
}

} // namespace

// An id column left out, a text column one-hot (its categories fitted on the rows named for
// fitting), numbers as read; the same encoding applied to new rows in another column order, an
// unseen value all zeros and said.
TEST(DataCsv, ATextColumnIsOneHotAndAnIdColumnIgnored) {
    TempDir dir;
    const auto path = dir.write("shops.csv", "id,region,sales,label\n"
                                             "a1,south,1.5,0\n"
                                             "a2,north,2,1\n"
                                             "a3,east,3,0\n"
                                             "a4,south,4,1\n"
                                             "a5,west,5,0\n");
    SourceOptions options;
    options.ignore = {"id"};
    options.fitRows = [](int64_t rows) {
        EXPECT_EQ(rows, 5);
        return std::vector<int64_t>{0, 1, 2, 3}; // row 4 (west) is a validation row
    };
    const auto loaded = loadSource(path, options);
    ASSERT_EQ(loaded.encoding.columns.size(), 2u);
    EXPECT_EQ(loaded.encoding.columns[0].name, "region");
    EXPECT_EQ(loaded.encoding.columns[0].categories, (std::vector<std::string>{"east", "north", "south"}));
    EXPECT_FALSE(loaded.encoding.columns[1].categorical);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{4}));
    EXPECT_EQ(loaded.featureNames, (std::vector<std::string>{"region=east", "region=north", "region=south", "sales"}));
    EXPECT_EQ(rowOf(loaded.train, 0), (std::vector<float>{0, 0, 1, 1.5f}));
    EXPECT_EQ(rowOf(loaded.train, 2), (std::vector<float>{1, 0, 0, 3}));
    EXPECT_EQ(rowOf(loaded.train, 4), (std::vector<float>{0, 0, 0, 5})) << "west is not a training category";
    std::string said;
    for (const auto& n : loaded.notes)
        said += n + "\n";
    EXPECT_NE(said.find("column id left out"), std::string::npos) << said;
    EXPECT_NE(said.find("'region' read as 3 categories (east, north, south)"), std::string::npos) << said;
    EXPECT_NE(said.find("1 row with a value of column 'region' that the training rows do not have (west)"),
              std::string::npos)
        << said;

    // New rows: columns in another order, no label, no id, a region never seen.
    const auto fresh = dir.write("new.csv", "sales,region\n7,north\n8,mars\n");
    SourceOptions reading;
    reading.labelsOptional = true;
    reading.encoding = std::make_shared<const ColumnEncoding>(loaded.encoding);
    const auto scored = loadSource(fresh, reading);
    EXPECT_FALSE(scored.train.labeled());
    EXPECT_EQ(rowOf(scored.train, 0), (std::vector<float>{0, 1, 0, 7}));
    EXPECT_EQ(rowOf(scored.train, 1), (std::vector<float>{0, 0, 0, 8}));
    said.clear();
    for (const auto& n : scored.notes)
        said += n + "\n";
    EXPECT_NE(said.find("1 row with a value of column 'region' the model was not trained with (mars): its 3 "
                        "features are 0"),
              std::string::npos)
        << said;
    // A file without one of the model's columns is refused naming it.
    const auto missing = dir.write("missing.csv", "sales\n7\n");
    expectError<ConfigError>([&] { loadSource(missing, reading); }, {"no column named 'region'", "the model reads"});
}

TEST(DataCsv, FeaturesCategoricalAndTheirMistakes) {
    TempDir dir;
    const auto path = dir.write("d.csv", "id,zip,a,b,label\n"
                                         "x1,10115,1,2,0\n"
                                         "x2,80331,3,4,1\n"
                                         "x3,10115,5,6,0\n");
    SourceOptions options;
    options.features = {"zip", "3"}; // a name and an index, as --label takes them
    options.categorical = {"zip"};
    const auto loaded = loadSource(path, options);
    EXPECT_EQ(loaded.encoding.featureNames(), (std::vector<std::string>{"zip=10115", "zip=80331", "b"}));
    EXPECT_EQ(rowOf(loaded.train, 1), (std::vector<float>{0, 1, 4}));

    // An id detected as text is refused as categories, naming the way out.
    const auto ids = dir.write("ids.csv", [] {
        std::string text = "name,v,label\n";
        for (int i = 0; i < 300; ++i)
            text += "n" + std::to_string(i) + "," + std::to_string(i) + "," + std::to_string(i % 2) + "\n";
        return text;
    }());
    expectError<ConfigError>([&] { loadSource(ids); },
                             {"column 'name' (0) holds 300 distinct values", "--ignore name"});
    SourceOptions ignoring;
    ignoring.ignore = {"name"};
    EXPECT_EQ(loadSource(ids, ignoring).train.sampleShape(), (std::vector<int64_t>{1}));
    SourceOptions wrong;
    wrong.ignore = {"nmae"};
    expectError<ConfigError>([&] { loadSource(ids, wrong); }, {"--ignore nmae: no column named 'nmae'", "name (0)"});
    wrong.ignore = {"label"};
    expectError<ConfigError>([&] { loadSource(ids, wrong); }, {"--ignore label names the label column"});
    // A numeric column with a stray text stays numeric: the text is an error naming line and column.
    const auto stray = dir.write("stray.csv", "a,label\n1,0\n2,1\nn/a,0\n");
    expectError<DataError>([&] { loadSource(stray); }, {"stray.csv:4", "column 'a' (0)", "--categorical a"});
}

// --test-fraction: a seeded share of the rows becomes the test split; a read of some rows names
// them as the split source has them, and reads the same rows as a whole read.
TEST(DataCsv, ATestFractionHoldsSeededRowsOut) {
    TempDir dir;
    std::string text;
    for (int i = 0; i < 40; ++i)
        text += std::to_string(i) + "," + std::to_string(i % 3) + "\n";
    const auto path = dir.write("d.csv", text);
    SourceOptions options;
    options.testFraction = 0.25;
    options.testSeed = 7;
    const auto whole = loadSource(path, options);
    EXPECT_EQ(whole.train.size(), 30);
    EXPECT_EQ(whole.test.size(), 10);
    const auto all = torch::cat({whole.train.features(), whole.test.features()}).reshape({-1});
    EXPECT_EQ(std::get<0>(all.sort()).equal(torch::arange(40, torch::kFloat32)), true) << "every row once";
    EXPECT_FALSE(whole.test.features().equal(torch::arange(10, torch::kFloat32).reshape({10, 1})))
        << "a draw, not the first rows";
    options.testSeed = 8;
    EXPECT_FALSE(loadSource(path, options).test.features().equal(whole.test.features())) << "seeded";
    options.testSeed = 7;

    auto some = options;
    some.rows = std::make_shared<RowSelection>(RowSelection{{1, 5, 29}, {0, 9}});
    const auto part = loadSource(path, some);
    EXPECT_EQ(part.sourceTrainRows, 30);
    EXPECT_EQ(part.sourceTestRows, 10);
    EXPECT_EQ(part.allLabels.size(), 30u);
    EXPECT_TRUE(part.train.features().equal(whole.train.features().index_select(0, torch::tensor({1, 5, 29}))));
    EXPECT_TRUE(part.test.features().equal(whole.test.features().index_select(0, torch::tensor({0, 9}))));
    const auto planned = planSource(path, options);
    EXPECT_EQ(planned.sourceTrainRows, 30);
    EXPECT_EQ(planned.sourceTestRows, 10);
    const auto labels = whole.train.labels().contiguous();
    EXPECT_EQ(planned.allLabels, std::vector<int64_t>(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + 30));

    // A source with a test split of its own keeps it.
    SourceOptions idx;
    idx.testFraction = 0.1;
    idx.limit = 100;
    expectError<ConfigError>([&] { loadSource(MPPDL_FASHION_MNIST_DIR, idx); }, {"has a test split of its own"});
}

// Flat rows as wide as the network's input take its shape, and the read says so.
TEST(DataCsv, FlatRowsTakeTheNetworksShape) {
    TempDir dir;
    const auto path = dir.write("d.csv", "1,2,3,4,5,6,0\n6,5,4,3,2,1,1\n");
    SourceOptions options;
    options.flatShape = {1, 2, 3};
    const auto loaded = loadSource(path, options);
    EXPECT_EQ(loaded.train.sampleShape(), (std::vector<int64_t>{1, 2, 3}));
    ASSERT_FALSE(loaded.notes.empty());
    EXPECT_NE(loaded.notes.back().find("rows of 6 values taken as 1x2x3, the network's input"), std::string::npos);
    options.flatShape = {1, 2, 2};
    EXPECT_EQ(loadSource(path, options).train.sampleShape(), (std::vector<int64_t>{6})) << "another width: as read";
}
