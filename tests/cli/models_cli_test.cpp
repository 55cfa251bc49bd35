// mppdl predict, eval and export through the real binary on real Fashion-MNIST: the CSV a user
// reads (every class, top-k), its agreement with eval, the export's report, and the refusals that
// must name the problem and leave nothing behind.

#include "mppdl/store/project.h"

#include "support/background.h"
#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <thread>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <vector>

namespace fs = std::filesystem;
using namespace mppdl;

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

std::vector<std::string> splitCsv(const std::string& line) {
    std::vector<std::string> cells;
    std::string cell;
    bool quoted = false;
    for (char c : line) {
        if (c == '"')
            quoted = !quoted;
        else if (c == ',' && !quoted) {
            cells.push_back(cell);
            cell.clear();
        } else
            cell += c;
    }
    cells.push_back(cell);
    return cells;
}

std::vector<std::vector<std::string>> readCsv(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::vector<std::string>> rows;
    std::string line;
    while (std::getline(in, line))
        rows.push_back(splitCsv(line));
    return rows;
}

std::vector<int> testLabels() {
    gzFile f = gzopen((kFmnist + "/t10k-labels-idx1-ubyte.gz").c_str(), "rb");
    std::vector<unsigned char> bytes(10008);
    const int n = gzread(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
    EXPECT_EQ(n, 10008);
    return std::vector<int>(bytes.begin() + 8, bytes.end());
}

/// Two prediction CSVs of the same rows, made apart (other shards, processes): the same header,
/// ids and classes, probabilities within float rounding.
void expectSameRows(const std::vector<std::vector<std::string>>& a, const std::vector<std::vector<std::string>>& b) {
    ASSERT_EQ(b.size(), a.size());
    for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_EQ(b[i][0], a[i][0]) << "row " << i;
        EXPECT_EQ(b[i][1], a[i][1]) << "row " << i;
        for (size_t c = 2; i > 0 && c < a[i].size(); ++c)
            EXPECT_NEAR(std::stod(b[i][c]), std::stod(a[i][c]), 1e-6) << "row " << i;
    }
}

/// One trained run shared by the tests (an MLP, two epochs on 2,000 rows: a second), in a project
/// each test copies into its scratch directory.
class ModelsCli : public ScratchDirTest {
protected:
    static void SetUpTestSuite() {
        s_project = (fs::temp_directory_path() / ("mppdl_models_cli_" + std::to_string(getpid()) + ".mppdl")).string();
        fs::remove(s_project);
        const auto r = runMppdl("train --data " + kFmnist +
                                " --arch mlp --epochs 2 --limit 2000 --seed 2 --lr 0.05 --momentum 0.9 "
                                "--batch-size 32 --quiet "
                                "--name mlp1 --project " +
                                s_project);
        ASSERT_EQ(r.code, 0) << r.out;
    }
    static void TearDownTestSuite() { fs::remove(s_project); }
    void SetUp() override {
        ScratchDirTest::SetUp();
        fs::copy_file(s_project, path("p.mppdl"));
    }
    CliResult run(const std::string& args) { return runMppdl(args + " --project " + path("p.mppdl")); }

    static std::string s_project;
};
std::string ModelsCli::s_project;

} // namespace

TEST_F(ModelsCli, PredictCsvHoldsEveryClassAndAgreesWithEval) {
    auto r = run("predict --run mlp1 --data " + kFmnist + " --out " + path("p.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("wrote 10,000 predictions (test rows"), std::string::npos) << r.out;
    const auto rows = readCsv(path("p.csv"));
    ASSERT_EQ(rows.size(), 10001u);
    ASSERT_EQ(rows[0].size(), 12u);
    EXPECT_EQ(rows[0][0], "row");
    EXPECT_EQ(rows[0][1], "class");
    EXPECT_EQ(rows[0][2], "prob_T-shirt/top");
    EXPECT_EQ(rows[0][11], "prob_Ankle boot");

    const auto labels = testLabels();
    int correct = 0;
    for (size_t i = 1; i < rows.size(); ++i) {
        ASSERT_EQ(rows[i].size(), 12u) << "row " << i;
        EXPECT_EQ(rows[i][0], std::to_string(i));
        std::vector<double> p;
        for (size_t c = 2; c < 12; ++c)
            p.push_back(std::stod(rows[i][c]));
        double sum = 0;
        for (double v : p)
            sum += v;
        EXPECT_NEAR(sum, 1.0, 1e-5) << "row " << i;
        const auto best = size_t(std::max_element(p.begin(), p.end()) - p.begin());
        EXPECT_EQ(rows[i][1], rows[0][2 + best].substr(5)) << "row " << i << ": class is not the most probable";
        correct += int(best) == labels[i - 1];
    }
    r = run("eval --run mlp1 --data " + kFmnist + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto evaluation = nlohmann::json::parse(r.out);
    EXPECT_NEAR(evaluation.at("accuracy").get<double>(), correct / 10000.0, 1e-9);
    EXPECT_GT(correct, 6000) << "an MLP after two epochs on 2,000 rows (70% here)";
}

// --segments cuts the rows into shards predicted side by side: the CSV is the one-segment CSV.
TEST_F(ModelsCli, SegmentsWriteTheSameCsvInRowOrder) {
    auto r = run("predict --run mlp1 --data " + kFmnist + " --segments 1 --out " + path("one.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("rows/s on 1 segment,"), std::string::npos) << r.out;
    r = run("predict --run mlp1 --data " + kFmnist + " --segments 3 --threads 2 --out " + path("three.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("rows/s on 3 segments,"), std::string::npos) << r.out;
    r = run("predict --run mlp1 --data " + kFmnist + " --threads 2 --out " + path("auto.csv") + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out).at("segments"), 2) << "one segment per thread by default";
    const auto one = readCsv(path("one.csv")), three = readCsv(path("three.csv")),
               automatic = readCsv(path("auto.csv"));
    ASSERT_EQ(one.size(), 10001u);
    expectSameRows(one, three);
    expectSameRows(one, automatic);
    r = run("predict --run mlp1 --data " + kFmnist + " --segments -2 --out " + path("bad.csv"));
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_FALSE(fs::exists(path("bad.csv")));
}

// Over the memory budget the rows are read, predicted and written a chunk at a time: the same CSV,
// numbered on from chunk to chunk, as predicting them whole.
TEST_F(ModelsCli, RowsOverTheBudgetStreamToTheSameCsv) {
    auto r = run("predict --run mlp1 --data " + kFmnist + " --segments 1 --out " + path("whole.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find("streamed"), std::string::npos) << r.out;
    r = run("predict --run mlp1 --data " + kFmnist + " --segments 1 --memory-budget 1M --out " + path("chunks.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    // 10,000 test rows of 3,144 bytes prepared, 8 MB a chunk: 4 chunks.
    EXPECT_NE(r.out.find("streamed in 4 chunks: 30 MB of rows exceed the memory budget of 1.0 MB"), std::string::npos)
        << r.out;
    const auto whole = readCsv(path("whole.csv")), chunks = readCsv(path("chunks.csv"));
    ASSERT_EQ(whole.size(), 10001u);
    EXPECT_EQ(chunks, whole);
    r = run("predict --run mlp1 --data " + kFmnist + " --memory-budget 1M --top-k 2 --split train --out " +
            path("train.csv") + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto report = nlohmann::json::parse(r.out);
    EXPECT_EQ(report.at("rows"), 60000);
    EXPECT_EQ(report.at("memory"), "streamed in 23 chunks");
    const auto train = readCsv(path("train.csv"));
    ASSERT_EQ(train.size(), 60001u);
    EXPECT_EQ(train.back()[0], "60000");
}

// --processes P: each process reads and predicts a contiguous share of the rows; the CSV is the
// one process's, in row order, or one file per process.
TEST_F(ModelsCli, ProcessesPredictTheirSharesIntoOneCsvInRowOrder) {
    auto r = run("predict --run mlp1 --data " + kFmnist + " --threads 2 --out " + path("one.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    r = run("predict --run mlp1 --data " + kFmnist + " --threads 2 --processes 2 --json --out " + path("two.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto report = nlohmann::json::parse(r.out); // one line: the result
    EXPECT_EQ(report.at("processes"), 2);
    ASSERT_EQ(report.at("ranks").size(), 2u);
    EXPECT_EQ(report.at("ranks")[0].at("rows"), 5000);
    EXPECT_EQ(report.at("ranks")[1].at("rows"), 5000);
    EXPECT_EQ(report.at("rows"), 10000);
    EXPECT_FALSE(fs::exists(path("two.csv.part-0")));
    EXPECT_FALSE(fs::exists(path("two.csv.part-1")));
    const auto one = readCsv(path("one.csv")), two = readCsv(path("two.csv"));
    ASSERT_EQ(one.size(), 10001u);
    expectSameRows(one, two);

    r = run("predict --run mlp1 --data " + kFmnist + " --threads 2 --processes 2 --out-per-rank --out " +
            path("rank.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto first = readCsv(path("rank-0.csv")), second = readCsv(path("rank-1.csv"));
    ASSERT_EQ(first.size(), 5001u);
    ASSERT_EQ(second.size(), 5001u);
    EXPECT_EQ(first[0], one[0]);
    EXPECT_EQ(second[0], one[0]);
    EXPECT_EQ(first[1][0], "1");
    EXPECT_EQ(second[1][0], "5001");
    EXPECT_EQ(second.back()[0], "10000");

    r = run("predict --run mlp1 --data " + kFmnist + " --out-per-rank --out " + path("x.csv"));
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--out-per-rank splits the CSV of --out over the processes"), std::string::npos) << r.out;
}

// A worker killed mid-way fails the prediction at once, naming it; no CSV and no part is left.
TEST_F(ModelsCli, AKilledWorkerFailsThePredictionAndLeavesNothing) {
    Background predicting("predict --run mlp1 --project " + path("p.mppdl") + " --data " + kFmnist +
                          " --split train --memory-budget 1M --threads 2 --processes 2 --out " + path("p.csv"));
    // Its part file is opened once it has joined: then it is inside its share of 30,000 rows.
    for (int i = 0; i < 4000 && !fs::exists(path("p.csv.part-1.tmp")); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    ASSERT_TRUE(fs::exists(path("p.csv.part-1.tmp"))) << "the worker never started its part";
    pid_t worker = 0;
    std::ifstream("/proc/" + std::to_string(predicting.pid()) + "/task/" + std::to_string(predicting.pid()) +
                  "/children") >>
        worker;
    ASSERT_GT(worker, 0);
    kill(worker, SIGKILL);
    const auto start = std::chrono::steady_clock::now();
    EXPECT_EQ(predicting.wait(), 4); // a device error
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 20.0);
    EXPECT_FALSE(fs::exists(path("p.csv")));
    for (const auto& e : fs::directory_iterator(m_dir))
        EXPECT_EQ(e.path().filename().string().find("p.csv"), std::string::npos) << e.path();
}

TEST_F(ModelsCli, TopKListsTheBestClassesInOrder) {
    ASSERT_EQ(run("predict --run mlp1 --data " + kFmnist + " --out " + path("all.csv")).code, 0);
    auto r = run("predict --run mlp1 --data " + kFmnist + " --split train --out " + path("train.csv") + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(nlohmann::json::parse(r.out).at("rows"), 60000);
    r = run("predict --run mlp1 --data " + kFmnist + " --out " + path("top.csv") + " --top-k 3");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto all = readCsv(path("all.csv"));
    const auto top = readCsv(path("top.csv"));
    ASSERT_EQ(top.size(), all.size());
    EXPECT_EQ(top[0], (std::vector<std::string>{"row", "class_1", "prob_1", "class_2", "prob_2", "class_3", "prob_3"}));
    for (size_t i = 1; i < top.size(); i += 97) {
        EXPECT_EQ(top[i][1], all[i][1]);
        const double p1 = std::stod(top[i][2]), p2 = std::stod(top[i][4]), p3 = std::stod(top[i][6]);
        EXPECT_GE(p1, p2);
        EXPECT_GE(p2, p3);
        // The best probability is the largest of the full row.
        double best = 0;
        for (size_t c = 2; c < 12; ++c)
            best = std::max(best, std::stod(all[i][c]));
        EXPECT_DOUBLE_EQ(p1, best);
    }
}

TEST_F(ModelsCli, ExportReportsWhatItWrote) {
#ifndef MPPDL_WITH_ONNX
    // A build without libonnx (the GPU servers' gpu-headless) says so and writes nothing.
    const auto refused = run("export --run mlp1 --out " + path("m.onnx"));
    EXPECT_EQ(refused.code, 2) << refused.out;
    EXPECT_NE(refused.out.find("built without ONNX"), std::string::npos) << refused.out;
    EXPECT_FALSE(fs::exists(path("m.onnx")));
    return;
#endif
    auto r = run("export --run mlp1 --epoch 1 --format onnx --out " + path("m.onnx"));
    ASSERT_EQ(r.code, 0) << r.out;
    for (const char* part : {"ONNX opset 13", "mlp from run 1 (mlp1), epoch 1", "\"input\" float32 batchx1x28x28",
                             "scale normalization", "\"probabilities\" float32 batchx10"})
        EXPECT_NE(r.out.find(part), std::string::npos) << part << "\n" << r.out;
    r = run("export --run mlp1 --out " + path("m17.onnx") + " --opset 17 --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j.at("opset"), 17);
    EXPECT_EQ(j.at("input_shape"), nlohmann::json({1, 28, 28}));
    EXPECT_EQ(j.at("file_bytes").get<int64_t>(), int64_t(fs::file_size(path("m17.onnx"))));
}

TEST_F(ModelsCli, RefusalsNameTheProblemAndWriteNothing) {
    // A run with no weights: recorded, never trained.
    {
        auto project = store::Project::open(path("p.mppdl"), store::Access::Write);
        store::NewRun run;
        run.name = "empty";
        run.architectureVersionId = project.runs().front().architectureVersionId;
        project.createRun(run);
    }
    struct Case {
        std::string args;
        int code;
        std::vector<std::string> parts;
    };
    const std::vector<Case> cases{
        {"export --run empty --out " + path("e.onnx"), 2, {"run 2 (empty) has no saved weights"}},
        {"predict --run empty --data " + kFmnist + " --out " + path("e.csv"), 2, {"has no saved weights"}},
        {"export --run mlp1 --out " + path("missing/dir/m.onnx"), 5, {path("missing/dir/m.onnx"), "cannot write"}},
        {"predict --run mlp1 --data " + kFmnist + " --out " + path("missing/p.csv"),
         5,
         {path("missing/p.csv"), "cannot write"}},
        {"predict --run mlp1 --data " + path("rows.csv") + " --out " + path("r.csv"), 2, {"shape 3", "1x28x28"}},
        {"export --run mlp1 --out " + path("o.onnx") + " --opset 12", 2, {"opset 12", "13 to 17"}},
        {"export --run mlp1:1 --epoch 1 --out " + path("o.onnx"), 2, {"already names an epoch"}},
        {"export --run mlp1 --epoch 9 --out " + path("o.onnx"), 2, {"no weights for epoch 9", "kept: epochs 1, 2"}},
        {"export --run mlp1 --format torchscript --out " + path("o.pt"), 2, {"unknown --format 'torchscript'"}},
        {"predict --run mlp1 --data " + kFmnist, 2, {"--out FILE.csv"}},
        {"predict --run mlp1 --data " + kFmnist + " --out " + path("k.csv") + " --top-k 11",
         2,
         {"--top-k 11", "10 classes"}},
    };
    std::ofstream(path("rows.csv")) << "a,b,c,label\n1,2,3,0\n4,5,6,1\n";
    for (const auto& c : cases) {
#ifndef MPPDL_WITH_ONNX
        // Without the ONNX export every export but an unknown --format is refused as such (above).
        if (c.args.rfind("export", 0) == 0 && c.args.find("--format") == std::string::npos)
            continue;
#endif
        const auto r = run(c.args);
        EXPECT_EQ(r.code, c.code) << c.args << "\n" << r.out;
        for (const auto& part : c.parts)
            EXPECT_NE(r.out.find(part), std::string::npos) << c.args << "\nlacks: " << part << "\n" << r.out;
    }
    for (const auto& entry : fs::directory_iterator(m_dir)) {
        const auto name = entry.path().filename().string();
        EXPECT_TRUE(name == "p.mppdl" || name == "rows.csv") << "a refused command left " << name;
    }
}

namespace {

/// The first `n` Fashion-MNIST test images, 784 pixels each.
std::vector<std::vector<int>> testImages(int n) {
    gzFile f = gzopen((kFmnist + "/t10k-images-idx3-ubyte.gz").c_str(), "rb");
    std::vector<unsigned char> bytes(16 + size_t(n) * 784);
    const int got = gzread(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
    EXPECT_EQ(got, int(bytes.size()));
    std::vector<std::vector<int>> images(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i)
        images[size_t(i)].assign(bytes.begin() + 16 + i * 784, bytes.begin() + 16 + (i + 1) * 784);
    return images;
}

/// The first `n` test rows as a CSV: the pixels, then (with `labels`) the label column; `edit`
/// may change a row's fields before it is written.
void writeImagesCsv(const std::string& path, int n, bool labels,
                    const std::function<void(int, std::vector<std::string>&)>& edit = {}) {
    const auto images = testImages(n);
    const auto truth = testLabels();
    std::ofstream out(path);
    for (int i = 0; i < n; ++i) {
        std::vector<std::string> fields;
        for (const int p : images[size_t(i)])
            fields.push_back(std::to_string(p));
        if (labels)
            fields.push_back(std::to_string(truth[size_t(i)]));
        if (edit)
            edit(i, fields);
        for (size_t k = 0; k < fields.size(); ++k)
            out << (k ? "," : "") << fields[k];
        out << "\n";
    }
}

/// The first JSON object line of an output.
nlohmann::json jsonOf(const std::string& out) {
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
        if (!line.empty() && line[0] == '{')
            return nlohmann::json::parse(line);
    return {};
}

} // namespace

// Rows to score need no label: a CSV of exactly the model's 784 features is predicted as it is;
// the same rows with their label column are predicted alike and also evaluated (classes "0".."9"
// are the model's by index), with the accuracy eval gives.
TEST_F(ModelsCli, PredictScoresRowsWithoutLabelsAndEvaluatesRowsWithThem) {
    writeImagesCsv(path("unlabeled.csv"), 300, false);
    writeImagesCsv(path("labeled.csv"), 300, true);
    auto r = run("predict --run mlp1 --data " + path("unlabeled.csv") + " --shape 1,28,28 --out " + path("u.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("wrote 300 predictions"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("accuracy"), std::string::npos) << "nothing to measure without labels\n" << r.out;
    r = run("predict --run mlp1 --data " + path("labeled.csv") + " --shape 1,28,28 --out " + path("l.csv") + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto predicted = jsonOf(r.out);
    ASSERT_TRUE(predicted.contains("evaluation")) << r.out;
    expectSameRows(readCsv(path("u.csv")), readCsv(path("l.csv")));
    r = run("eval --run mlp1 --data " + path("labeled.csv") + " --shape 1,28,28 --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto evaluation = jsonOf(r.out);
    EXPECT_EQ(predicted["evaluation"]["samples"], 300);
    EXPECT_NEAR(predicted["evaluation"]["accuracy"].get<double>(), evaluation["accuracy"].get<double>(), 1e-12);
    EXPECT_NEAR(predicted["evaluation"]["loss"].get<double>(), evaluation["loss"].get<double>(), 1e-4);
    EXPECT_EQ(predicted["evaluation"]["confusion_matrix"], evaluation["confusion_matrix"]);
    // In text, the evaluation follows what was written.
    r = run("predict --run mlp1 --data " + path("labeled.csv") + " --shape 1,28,28 --out " + path("l2.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("rows, labelled: accuracy"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("confusion matrix"), std::string::npos) << r.out;
}

// An IDX images file without its labels file beside it is scored too.
TEST_F(ModelsCli, PredictScoresAnImagesFileWithoutLabels) {
    fs::copy_file(kFmnist + "/t10k-images-idx3-ubyte.gz", path("new-images-idx3-ubyte.gz"));
    auto r = run("predict --run mlp1 --data " + path("new-images-idx3-ubyte.gz") + " --out " + path("p.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("wrote 10,000 predictions"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("accuracy"), std::string::npos) << r.out;
    // Training still needs the labels, and says where it looked.
    r = runMppdl("train --data " + path("new-images-idx3-ubyte.gz") + " --arch mlp --epochs 1 --no-project");
    EXPECT_NE(r.code, 0);
    EXPECT_NE(r.out.find("no labels file beside it"), std::string::npos) << r.out;
}

// A NaN or infinite feature is refused, naming the line and column; --on-bad-rows skip leaves
// such rows out and says how many.
TEST_F(ModelsCli, NonFiniteFeaturesAreRefusedNamingTheRowOrSkipped) {
    writeImagesCsv(path("bad.csv"), 200, true, [](int i, std::vector<std::string>& fields) {
        if (i == 3)
            fields[5] = "nan";
        if (i == 9)
            fields[700] = "-inf";
    });
    auto r = run("predict --run mlp1 --data " + path("bad.csv") + " --shape 1,28,28 --out " + path("p.csv"));
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(path("bad.csv") + ":4: column 5: 'nan' is not a finite number"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("--on-bad-rows skip"), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(path("p.csv"))) << "nothing written";
    r = run("predict --run mlp1 --data " + path("bad.csv") + " --shape 1,28,28 --on-bad-rows skip --json --out " +
            path("p.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = jsonOf(r.out);
    EXPECT_EQ(j["rows"], 198);
    EXPECT_EQ(j["bad_rows_skipped"], 2) << r.out;
    r = run("predict --run mlp1 --data " + path("bad.csv") + " --shape 1,28,28 --on-bad-rows skip --out " +
            path("p2.csv"));
    EXPECT_NE(r.out.find("2 rows with a NaN or infinite feature left out"), std::string::npos) << r.out;
}
