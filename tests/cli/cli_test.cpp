// Runs the mppdl binary end to end: exit codes, what it prints, and that bad input gives a clear
// message instead of a crash or a libtorch stack trace.

#include "support/run_cli.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fs = std::filesystem;

namespace {

using Result = CliResult;

Result run(const std::string& args) { return runMppdl(args); }

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

/// A scratch directory per test, removed afterwards.
class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        m_dir = fs::temp_directory_path() /
                ("mppdl_cli_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" +
                 std::to_string(getpid()));
        fs::create_directories(m_dir);
        // Runs are recorded in ./project.mppdl by default: keep them in the scratch directory.
        m_previous = fs::current_path();
        fs::current_path(m_dir);
    }
    void TearDown() override {
        fs::current_path(m_previous);
        fs::remove_all(m_dir);
    }

    std::string file(const std::string& name, const std::string& content) {
        const auto path = m_dir / name;
        std::ofstream(path, std::ios::binary) << content;
        return path.string();
    }
    std::string path(const std::string& name) const { return (m_dir / name).string(); }

    fs::path m_dir, m_previous;
};

void expectClean(const Result& r) {
    EXPECT_EQ(r.out.find("terminate called"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("Exception raised from"), std::string::npos) << "a libtorch stack trace leaked:\n" << r.out;
    EXPECT_EQ(r.out.find("Segmentation"), std::string::npos) << r.out;
}

std::string be32(uint32_t v) { return {char(v >> 24), char(v >> 16), char(v >> 8), char(v)}; }

std::string idxImages(uint32_t count, uint32_t magic = 0x00000803) {
    return be32(magic) + be32(count) + be32(4) + be32(4) + std::string(count * 16, '\x10');
}
std::string idxLabels(uint32_t count) { return be32(0x00000801) + be32(count) + std::string(count, '\x01'); }

std::string gzip(const std::string& data) {
    std::string out(compressBound(uLong(data.size())) + 64, '\0');
    z_stream s{};
    deflateInit2(&s, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    s.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
    s.avail_in = uInt(data.size());
    s.next_out = reinterpret_cast<Bytef*>(out.data());
    s.avail_out = uInt(out.size());
    deflate(&s, Z_FINISH);
    out.resize(s.total_out);
    deflateEnd(&s);
    return out;
}

} // namespace

TEST_F(Cli, VersionAndHelp) {
    auto r = run("--version");
    EXPECT_EQ(r.code, 0);
    EXPECT_NE(r.out.find("mppdl 0."), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("libtorch"), std::string::npos) << r.out;
    for (const char* sub : {"train", "eval", "demo", "devices", "arch show", "data show"}) {
        r = run(std::string(sub) + " --help");
        EXPECT_EQ(r.code, 0) << sub;
        EXPECT_NE(r.out.find("Usage"), std::string::npos) << sub << ": " << r.out;
    }
    r = run("train --help");
    EXPECT_NE(r.out.find("adamw"), std::string::npos) << "the optimizer list comes from the engine's table";
}

// A GPU server over SSH has no display: a plain `mppdl` says so and shows what works there, instead
// of aborting inside Qt ("could not connect to display", exit 134).
TEST_F(Cli, PlainMppdlWithoutADisplayPrintsTheHelp) {
    const std::string noDisplay = "env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM ";
    for (const char* args : {"", "gui"}) {
        const auto r = runMppdl(args, noDisplay);
        EXPECT_EQ(r.code, 2) << args << ": " << r.out;
        EXPECT_TRUE(r.out.find("no display") != std::string::npos || r.out.find("no workbench") != std::string::npos)
            << r.out;
        EXPECT_NE(r.out.find("train"), std::string::npos) << "the help lists the commands: " << r.out;
        EXPECT_EQ(r.out.find("could not connect"), std::string::npos) << r.out;
    }
}

// A network whose weights do not fit is a device error (exit 4) naming the allocation, in a run and
// in a search alike; the address-space limit makes the allocation fail at once.
TEST_F(Cli, OutOfMemoryIsADeviceErrorInTrainAndTune) {
    const auto arch = path("huge.json");
    std::ofstream(arch) << R"({"format": "mppdl-architecture", "version": 1, "name": "huge", "layers": [
        {"name": "input", "type": "Input", "shape": [1, 28, 28]}, {"name": "flatten", "type": "Flatten"},
        {"name": "wide", "type": "Dense", "units": 1000000}, {"name": "out", "type": "Dense", "units": 10}]})";
    const std::string limit = "ulimit -v 3000000; "; // 3 GB of address space; the weights need 3.1 GB
    auto r = runMppdl("train --data " + kFmnist + " --limit 200 --arch " + arch + " --epochs 1 --no-project", limit);
    EXPECT_EQ(r.code, 4) << r.out;
    EXPECT_NE(r.out.find("ran out of memory"), std::string::npos) << r.out;
    ASSERT_EQ(run("arch add " + arch + " --project " + path("p.mppdl")).code, 0);
    std::ofstream(path("space.json")) << R"({"architecture": "huge", "lr": [0.05, 0.01], "epochs": 1})";
    r = runMppdl("tune --space " + path("space.json") + " --data " + kFmnist + " --limit 200 --project " +
                     path("p.mppdl"),
                 limit);
    EXPECT_EQ(r.code, 4) << r.out;
    EXPECT_NE(r.out.find("ran out of memory"), std::string::npos) << r.out;
}

TEST_F(Cli, TrainJsonEndsWithFinished) {
    const auto r = run("train --data " + kFmnist +
                       " --arch mlp --epochs 1 --limit 2000 --batch-size 64 "
                       "--optimizer adam --lr 0.002 --seed 1 --json");
    ASSERT_EQ(r.code, 0) << r.out;
    std::istringstream lines(r.out);
    std::string line, last;
    int epochs = 0;
    while (std::getline(lines, line)) {
        if (line.empty())
            continue;
        const auto j = nlohmann::json::parse(line); // every line is JSON
        epochs += j["event"] == "epoch";
        last = line;
    }
    EXPECT_EQ(epochs, 1);
    const auto finished = nlohmann::json::parse(last);
    EXPECT_EQ(finished["event"], "finished");
    EXPECT_GT(finished["test_accuracy"].get<double>(), 0.6);
    EXPECT_GT(finished["test_loss"].get<double>(), 0.0);
    EXPECT_EQ(finished["epochs"], 1);
    EXPECT_GT(finished["seconds"].get<double>(), 0.0);
    EXPECT_EQ(finished["confusion_matrix"].size(), 10u);
}

TEST_F(Cli, JsonFailureIsTheLastLine) {
    // From the trainer (the data) and from before it (the architecture name): both end the JSON stream.
    struct Case {
        std::string args;
        int code;
        std::string kind;
        std::string mention;
    };
    for (const Case& c : {Case{"--data " + path("missing.csv") + " --arch mlp", 3, "data", "missing.csv"},
                          Case{"--data " + kFmnist + " --arch nosuchnet", 2, "config", "nosuchnet"}}) {
        const auto r = run("train " + c.args + " --json");
        EXPECT_EQ(r.code, c.code) << r.out;
        const auto json = r.out.substr(0, r.out.find("\nmppdl:"));
        const auto j = nlohmann::json::parse(json.substr(json.rfind('{')));
        EXPECT_EQ(j["event"], "failed") << r.out;
        EXPECT_EQ(j["kind"], c.kind) << r.out;
        EXPECT_NE(j["message"].get<std::string>().find(c.mention), std::string::npos) << r.out;
    }
}

// A model that cannot be written names why (libtorch's cause), exits with the storage code and leaves
// nothing half-written behind.
TEST_F(Cli, SaveFailureNamesItsCause) {
    const auto model = path("no-such-dir") + "/model.pt";
    const auto r = run("train --data " + kFmnist + " --arch mlp --epochs 1 --limit 300 --no-project --save " + model);
    EXPECT_EQ(r.code, 5) << r.out;
    EXPECT_NE(r.out.find(model + ": cannot write the model file ("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("no-such-dir does not exist"), std::string::npos) << "the cause: " << r.out;
    EXPECT_FALSE(fs::exists(model + ".tmp"));
}

TEST_F(Cli, TrainTextSaveAndEval) {
    const auto model = path("model.pt");
    auto r = run("train --data " + kFmnist +
                 " --arch fmnist_cnn --epochs 1 --limit 1500 --batch-size 64 "
                 "--lr 0.05 --momentum 0.9 --seed 2 --save " +
                 model);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("epoch 1/1  train loss"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("test accuracy"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Ankle boot"), std::string::npos) << "per-class table: " << r.out;
    ASSERT_TRUE(fs::exists(model));

    r = run("eval --model " + model + " --data " + kFmnist + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["samples"], 10000);
    EXPECT_GT(j["accuracy"].get<double>(), 0.5);
}

TEST_F(Cli, ArchShowTable) {
    const auto r = run("arch show mlp");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("235,146"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("output shape"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("FLOPs"), std::string::npos) << r.out;
}

TEST_F(Cli, ArchProblemsExitWithConfigCode) {
    const auto unknown = file("unknown.json", R"({"name":"u","layers":[{"name":"in","type":"Input","shape":[1,28,28]},
        {"name":"f","type":"Flatten"},{"name":"d1","type":"Dense3","units":10}]})");
    auto r = run("arch show " + unknown);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("d1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Dense3"), std::string::npos) << r.out;
    expectClean(r);

    const auto misfit = file("misfit.json", R"({"name":"m","layers":[{"name":"in","type":"Input","shape":[1,28,28]},
        {"name":"dense1","type":"Dense","units":10}]})");
    r = run("train --data " + kFmnist + " --limit 100 --epochs 1 --arch " + misfit);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("dense1"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("1x28x28"), std::string::npos) << r.out;
    expectClean(r);

    const auto cycle = file("cycle.json", R"({"name":"c","layers":[{"name":"in","type":"Input","shape":[4]},
        {"name":"a","type":"Add","inputs":["in","b"]},{"name":"b","type":"ReLU","inputs":["a"]}]})");
    r = run("arch show " + cycle);
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("cycle"), std::string::npos) << r.out;
    expectClean(r);
}

TEST_F(Cli, BadDataFilesExitWithDataCode) {
    struct Case {
        std::string name;
        std::string data;
        std::vector<std::string> mustMention;
    };
    const auto images = idxImages(5);
    const std::string truncatedGz = gzip(images).substr(0, 20);
    const std::vector<Case> cases = {
        {"missing", "", {"no such file"}},
        {"truncated-idx3-ubyte.gz", truncatedGz, {"truncated-idx3-ubyte.gz", "truncated or corrupt"}},
        {"truncated.csv.gz",
         gzip("a,b,label\n1,2,x\n3,4,y\n").substr(0, 25),
         {"truncated.csv.gz", "truncated or corrupt"}},
        {"wrong-magic-idx3-ubyte", idxImages(5, 0x00000903), {"magic"}},
        {"ragged.csv", "a,b,label\n1,2,x\n3,4,5,y\n", {"ragged.csv:3"}},
        {"nonnumeric.csv", "a,b,label\n1,2,x\n3,abc,y\n", {"nonnumeric.csv:3", "'b'", "abc"}},
    };
    file("truncated-idx1-ubyte.gz", gzip(idxLabels(5))); // intact labels beside the truncated images
    for (const auto& c : cases) {
        const std::string p = c.name == "missing" ? path("missing.csv") : file(c.name, c.data);
        const auto r = run("train --data " + p + " --arch mlp --epochs 1");
        EXPECT_EQ(r.code, 3) << c.name << ": " << r.out;
        for (const auto& m : c.mustMention)
            EXPECT_NE(r.out.find(m), std::string::npos) << c.name << " should mention '" << m << "': " << r.out;
        expectClean(r);
    }
}

TEST_F(Cli, IdxCountMismatchNamesBothCounts) {
    fs::create_directories(m_dir / "idx");
    file("idx/train-images-idx3-ubyte", idxImages(5));
    file("idx/train-labels-idx1-ubyte", idxLabels(4));
    const auto r = run("data show " + path("idx"));
    EXPECT_EQ(r.code, 3) << r.out;
    EXPECT_NE(r.out.find("5"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("4"), std::string::npos) << r.out;
    expectClean(r);
}

TEST_F(Cli, MissingLabelColumnIsAConfigError) {
    const auto csv = file("ok.csv", "a,b,label\n1,2,x\n3,4,y\n");
    const auto r = run("data show " + csv + " --label target");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("target"), std::string::npos) << r.out;
    expectClean(r);
}

TEST_F(Cli, TabSeparatedFilesWithDelimiter) {
    const auto tsv = file("rows.tsv", "a\tb\tlabel\n1\t2\tx\n3\t4\ty\n");
    auto r = run("data show " + tsv + " --kind csv --delimiter tab");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("samples  2 float32"), std::string::npos) << r.out;
    r = run("data show " + tsv + " --kind csv --delimiter ab");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("--delimiter"), std::string::npos) << r.out;
}

TEST_F(Cli, DataShowFashionMnist) {
    const auto r = run("data show " + kFmnist);
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("60,000 train, 10,000 test"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("Ankle boot"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("1x28x28"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("|"), std::string::npos) << "an ASCII preview: " << r.out;
}

TEST_F(Cli, DataShowSegmentsByLabel) {
    const auto r = run("data show " + kFmnist + " --limit 2000 --segments 4 --distribute-by by-label");
    ASSERT_EQ(r.code, 0) << r.out;
    expectClean(r);
    const auto start = r.out.find("4 segments, distributed by by-label");
    ASSERT_NE(start, std::string::npos) << r.out;
    // The table after that line: segment, rows, share, classes, then the rows of classes 0..9.
    std::istringstream lines(r.out.substr(start));
    std::string line;
    std::getline(lines, line);
    std::getline(lines, line);
    std::istringstream headerWords(line);
    std::vector<std::string> header{std::istream_iterator<std::string>(headerWords), {}};
    ASSERT_EQ(header.size(), 14u) << line;
    EXPECT_EQ(header[0], "segment");
    EXPECT_EQ(header[1], "rows");
    EXPECT_EQ(header[2], "share");
    EXPECT_EQ(header[13], "9");
    auto number = [](std::string text) {
        text.erase(std::remove(text.begin(), text.end(), ','), text.end());
        return std::stoll(text);
    };
    std::vector<long long> segmentRows;
    std::vector<int> classHome(10, -1);
    double skew = -1;
    while (std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> w{std::istream_iterator<std::string>(words), {}};
        if (line.rfind("skew (max/mean rows): ", 0) == 0) {
            skew = std::stod(line.substr(22));
            break;
        }
        if (w.size() != 14 || w[0] == "total")
            continue;
        const int segment = std::stoi(w[0]);
        EXPECT_EQ(segment, int(segmentRows.size())) << line;
        segmentRows.push_back(number(w[1]));
        long long sum = 0;
        int classes = 0;
        for (int c = 0; c < 10; ++c) {
            const long long count = number(w[size_t(4 + c)]);
            sum += count;
            if (count > 0) {
                ++classes;
                EXPECT_EQ(classHome[size_t(c)], -1) << "class " << c << " on two segments:\n" << r.out;
                classHome[size_t(c)] = segment;
            }
        }
        EXPECT_EQ(sum, segmentRows.back()) << line;
        EXPECT_EQ(number(w[3]), classes) << line;
    }
    ASSERT_EQ(segmentRows.size(), 4u) << r.out;
    for (int c = 0; c < 10; ++c)
        EXPECT_EQ(classHome[size_t(c)], c % 4) << "class " << c << ":\n" << r.out;
    long long total = 0, fullest = 0;
    for (const auto rows : segmentRows) {
        total += rows;
        fullest = std::max(fullest, rows);
    }
    EXPECT_EQ(total, 2000);
    EXPECT_NE(r.out.find("2,000"), std::string::npos) << r.out;
    ASSERT_GE(skew, 0) << "no skew line:\n" << r.out;
    EXPECT_NEAR(skew, double(fullest) / (2000.0 / 4), 0.005) << r.out;
    EXPECT_GT(skew, 1.0) << "by-label over 4 segments is uneven: " << r.out;
}

TEST_F(Cli, DataShowSegmentsEvenAndErrors) {
    auto r = run("data show " + kFmnist + " --limit 2000 --segments 4 --distribute-by round-robin");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("skew (max/mean rows): 1.00"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("25.0%"), std::string::npos) << r.out;

    r = run("data show " + kFmnist + " --limit 100");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_EQ(r.out.find("skew"), std::string::npos) << "no --segments, no distribution table: " << r.out;

    r = run("data show " + kFmnist + " --limit 100 --segments 4 --distribute-by striped");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("striped"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("random, hash, round-robin, by-label"), std::string::npos) << r.out;
    expectClean(r);

    r = run("data show " + kFmnist + " --limit 5 --segments 8");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("cannot spread 5 rows over 8 segments"), std::string::npos) << r.out;
    expectClean(r);

    r = run("data show " + kFmnist + " --limit 5 --segments 0");
    EXPECT_EQ(r.code, 2) << r.out;

    r = run("data show --help");
    EXPECT_NE(r.out.find("round-robin"), std::string::npos) << "the policies come from the engine's table: " << r.out;
}

TEST_F(Cli, DevicesAndMissingGpu) {
    auto r = run("devices");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("cpu"), std::string::npos) << r.out;
    r = run("train --data " + kFmnist + " --arch mlp --limit 100 --device cuda:7");
    EXPECT_EQ(r.code, 4) << r.out;
    EXPECT_NE(r.out.find("cuda:7"), std::string::npos) << r.out;
    expectClean(r);
}

TEST_F(Cli, UsageErrorsExitWithConfigCode) {
    EXPECT_EQ(run("train --data x").code, 2);
    EXPECT_EQ(run("train --data " + kFmnist + " --arch mlp --optimizer sgdx --limit 10").code, 2);
    EXPECT_EQ(run("train --data " + kFmnist + " --arch nosuchnet --limit 10").code, 2);
    EXPECT_EQ(run("frobnicate").code, 2);
}

TEST_F(Cli, CtrlCCancelsCleanly) {
    const std::string out = path("out.txt");
    const pid_t child = fork();
    if (child == 0) {
        freopen(out.c_str(), "w", stdout);
        dup2(fileno(stdout), STDERR_FILENO);
        execl(MPPDL_BINARY, MPPDL_BINARY, "train", "--data", kFmnist.c_str(), "--arch", "fmnist_cnn", "--epochs", "50",
              "--threads", "1", static_cast<char*>(nullptr));
        _exit(127);
    }
    // Wait until training has started (the first line is printed), then press Ctrl-C.
    for (int i = 0; i < 300; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::ifstream in(out);
        std::string text((std::istreambuf_iterator<char>(in)), {});
        if (text.find("training '") != std::string::npos)
            break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    kill(child, SIGINT);
    int status = 0;
    waitpid(child, &status, 0);
    std::ifstream in(out);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    ASSERT_TRUE(WIFEXITED(status)) << text;
    EXPECT_EQ(WEXITSTATUS(status), 130) << text;
    EXPECT_NE(text.find("cancelled in epoch 1"), std::string::npos) << text;
}

// One command line: --threads wherever mppdl computes, extras said in the order typed, singular
// and plural right, --rows N showing N rows, rows/s for data that are not images, and arch show
// taking a project's NAME@VERSION.
TEST_F(Cli, EveryComputingSubcommandTakesThreads) {
    // (mppdl worker takes the run's thread count from rank 0, with the rest of its configuration.)
    for (const char* command : {"train", "resume", "eval", "predict", "tune", "demo"}) {
        const auto r = run(std::string(command) + " --help");
        EXPECT_EQ(r.code, 0) << command << "\n" << r.out;
        EXPECT_NE(r.out.find("--threads"), std::string::npos) << command << " has no --threads:\n" << r.out;
    }
    for (const char* command : {"train", "eval", "predict", "tune"}) {
        const auto r = run(std::string(command) + " --help");
        EXPECT_NE(r.out.find("--device"), std::string::npos) << command << " has no --device:\n" << r.out;
    }
}

TEST_F(Cli, UnexpectedArgumentsAreSaidInTheOrderTyped) {
    const auto r = run("devices first second third");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("unexpected arguments: first second third"), std::string::npos) << r.out;
    const auto one = run("devices stray");
    EXPECT_NE(one.out.find("an unexpected argument: stray"), std::string::npos) << one.out;
}

TEST_F(Cli, TabularDataIsCountedInRowsAndShownAsAsked) {
    std::string rows = "a,b,c,label\n";
    for (int i = 0; i < 300; ++i)
        rows += std::to_string(i % 7) + "," + std::to_string(i % 5) + "," + std::to_string(i % 3) + "," +
                std::to_string(i % 2) + "\n";
    const auto csv = file("t.csv", rows);
    auto r = run("data show " + csv + " --rows 2");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("taken as the header (a, b, c, label)"), std::string::npos) << r.out;
    // The preview: its header (the columns by their names), a rule, then one line a row.
    std::istringstream lines(r.out.substr(std::min(r.out.size(), r.out.find("row  a  b  c  label"))));
    std::string line;
    std::getline(lines, line);
    std::getline(lines, line);
    int rowLines = 0;
    while (std::getline(lines, line) && !line.empty())
        ++rowLines;
    EXPECT_EQ(rowLines, 2) << "--rows 2 shows rows 0 and 1\n" << r.out;
    const auto arch = file("tab.json", R"({"format": "mppdl-architecture", "version": 1, "name": "tab", "layers": [
        {"name": "input", "type": "Input", "shape": [3]}, {"name": "d1", "type": "Dense", "units": 8},
        {"name": "r1", "type": "ReLU"}, {"name": "d2", "type": "Dense", "units": 2}]})");
    r = run("train --data " + csv + " --arch " + arch + " --epochs 1 --no-project");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find(" rows/s"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(" img/s"), std::string::npos) << r.out;
}

TEST_F(Cli, ShowAndArchShowSpeakOfAProjectsRunsAndVersions) {
    auto r = run("train --data " + kFmnist + " --arch mlp --epochs 1 --limit 500 --project p.mppdl -q");
    ASSERT_EQ(r.code, 0) << r.out;
    r = run("show 1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("1 epoch, batch"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("1 epochs"), std::string::npos) << r.out;
    r = run("arch show mlp@1 --project p.mppdl");
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("mlp (mlp@1 of the project)"), std::string::npos) << r.out;
    r = run("arch show mlp@7 --project p.mppdl");
    EXPECT_EQ(r.code, 2) << r.out;
    EXPECT_NE(r.out.find("has no version 7"), std::string::npos) << r.out;
}

namespace {

/// Shops in four regions: the label follows the region and the sign of x, so that only a model
/// that reads the region's one-hot features learns it.
std::string shopsCsv(int rows, unsigned seed, bool withLabel, const std::vector<std::string>& regions) {
    std::string text = withLabel ? "id,region,x,label\n" : "id,region,x\n";
    unsigned state = seed;
    auto next = [&] { return (state = state * 1103515245u + 12345u) >> 8; };
    for (int i = 0; i < rows; ++i) {
        const size_t r = next() % regions.size();
        const double x = double(next() % 2000) / 1000.0 - 1.0;
        text += "s" + std::to_string(seed) + "-" + std::to_string(i) + "," + regions[r] + "," + std::to_string(x);
        if (withLabel)
            text += "," + std::to_string((r + (x > 0 ? 1 : 0)) % 3);
        text += "\n";
    }
    return text;
}

} // namespace

// The everyday CSV: an id column ignored, a text column one-hot encoded with categories of the
// training rows, trained with a seeded test split (a test evaluation and its confusion matrix),
// then new rows predicted with the model's categories (an unseen region said) and the model
// exported to ONNX with the categories in its metadata.
TEST_F(Cli, ACsvWithAnIdAndATextColumnTrainsPredictsAndExports) {
    const std::vector<std::string> regions = {"east", "north", "south", "west"};
    const auto csv = file("shops.csv", shopsCsv(800, 1, true, regions));
    const auto arch = file("shops.json", R"({"format": "mppdl-architecture", "version": 1, "name": "shops", "layers": [
        {"name": "input", "type": "Input", "shape": [5]}, {"name": "d1", "type": "Dense", "units": 32},
        {"name": "r1", "type": "ReLU"}, {"name": "d2", "type": "Dense", "units": 3}]})");
    auto r = run("train --data " + csv + " --ignore id --test-fraction 0.2 --arch " + arch +
                 " --epochs 60 --batch-size 16 --seed 3 --no-project --save " + path("m.pt"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("column id left out (--ignore)"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("column 'region' read as 4 categories (east, north, south, west)"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("a seeded 160 of the 800 training rows held out as the test split (--test-fraction 0.2)"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("576 train / 64 validation / 160 test rows of 5"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("confusion matrix"), std::string::npos) << "a test evaluation at the end\n" << r.out;
    const auto at = r.out.find("test accuracy ");
    ASSERT_NE(at, std::string::npos) << r.out;
    EXPECT_GT(std::stod(r.out.substr(at + 14)), 90.0) << "the label needs the region: it was read\n" << r.out;

    const auto fresh = file("new.csv", shopsCsv(50, 9, false, {"east", "north", "south", "west", "mars"}));
    r = run("predict --model " + path("m.pt") + " --data " + fresh + " --out " + path("p.csv"));
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("with a value of column 'region' the model was not trained with (mars)"), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("wrote 50 predictions"), std::string::npos) << r.out;
    // The training file predicted again: labelled rows are evaluated with the model's encoding.
    r = run("predict --model " + path("m.pt") + " --data " + csv + " --out " + path("again.csv") + " --json");
    ASSERT_EQ(r.code, 0) << r.out;
    nlohmann::json evaluated;
    std::istringstream lines(r.out);
    for (std::string line; std::getline(lines, line);)
        if (line.rfind('{', 0) == 0 && line.find("\"evaluation\"") != std::string::npos)
            evaluated = nlohmann::json::parse(line);
    ASSERT_TRUE(evaluated.contains("evaluation")) << r.out;
    EXPECT_GT(evaluated["evaluation"]["accuracy"].get<double>(), 0.9) << r.out;

    r = run("export --model " + path("m.pt") + " --out " + path("m.onnx"));
    ASSERT_EQ(r.code, 0) << r.out;
    std::ifstream in(path("m.onnx"), std::ios::binary);
    const std::string onnx((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(onnx.find("mppdl.columns"), std::string::npos);
    EXPECT_NE(onnx.find(R"([{"categories":["east","north","south","west"],"name":"region"},{"name":"x"}])"),
              std::string::npos)
        << "the vocabulary in the export's metadata";
}

// Every subcommand that computes takes --threads and --device.
TEST_F(Cli, EveryComputingSubcommandTakesThreadsAndDevice) {
    for (const std::string command : {"train", "demo", "scale-study", "resume", "eval", "predict", "tune", "worker"}) {
        const auto r = run(command + " --help");
        EXPECT_EQ(r.code, 0) << command << "\n" << r.out;
        EXPECT_NE(r.out.find("--threads"), std::string::npos) << command << "\n" << r.out;
        EXPECT_NE(r.out.find("--device"), std::string::npos) << command << "\n" << r.out;
    }
    for (const std::string command : {"runs", "show", "export-metrics", "tui", "gui", "arch list", "eval", "predict"})
        EXPECT_NE(run(command + " --help").out.find("--project"), std::string::npos) << command;
}
