// The terminal workbench as a user drives it: the real binary inside tmux (at 80x24 and 200x60),
// keys sent with send-keys, the screen read back with capture-pane. Skipped without tmux.

#include "support/run_cli.h"
#include "support/scratch_dir.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

namespace {

const std::string kFmnist = MPPDL_FASHION_MNIST_DIR;

std::string output(const std::string& command) { return runCommand(command).out; }

/// One tmux server of the test's own (its own socket), one session in it.
class Tmux {
public:
    Tmux(const std::string& command, int width, int height, const std::string& dir)
        : m_socket("mppdl_tui_" + std::to_string(getpid()) + "_" + std::to_string(++s_count)) {
        // No display, UTF-8, logs of detached runs in the scratch directory.
        const std::string env = "env -u DISPLAY -u WAYLAND_DISPLAY -u QT_QPA_PLATFORM TERM=xterm-256color "
                                "LANG=C.UTF-8 LC_ALL=C.UTF-8 XDG_STATE_HOME=" +
                                dir + "/state ";
        tmux("new-session -d -s w -x " + std::to_string(width) + " -y " + std::to_string(height) + " -c " +
             shellQuote(dir) + " " + shellQuote(env + command));
    }
    ~Tmux() { tmux("kill-server"); }

    std::string tmux(const std::string& args) const { return output("tmux -L " + m_socket + " " + args); }
    void keys(const std::string& keys) const { tmux("send-keys -t w " + keys); }
    std::string screen() const { return tmux("capture-pane -p -t w"); }
    void resize(int width, int height) const {
        tmux("resize-window -t w -x " + std::to_string(width) + " -y " + std::to_string(height));
    }
    /// Waits up to `seconds` for `text` on the screen; the last screen either way.
    std::string waitFor(const std::string& text, double seconds = 20) const {
        const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        std::string shown;
        do {
            shown = screen();
            if (shown.find(text) != std::string::npos)
                return shown;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        } while (std::chrono::steady_clock::now() < until);
        return shown;
    }

private:
    std::string m_socket;
    static inline int s_count = 0;
};

class TuiTmux : public ScratchDirTest {
protected:
    void SetUp() override {
        ScratchDirTest::SetUp();
        if (std::system("tmux -V >/dev/null 2>&1") != 0)
            GTEST_SKIP() << "tmux is not installed (packaging/install-deps.sh installs it)";
    }
    void TearDown() override {
        // Runs started from the workbench are detached: stop any still going.
        const auto listed = runMppdl("runs --json --project " + path("p.mppdl"));
        const auto runs = nlohmann::json::parse(listed.out, nullptr, false);
        if (runs.is_array())
            for (const auto& r : runs)
                if (r.value("state", "") == "running")
                    std::system(("pkill -KILL -f 'project " + path("p.mppdl") + "'").c_str());
        ScratchDirTest::TearDown();
    }
    /// A finished one-epoch run in p.mppdl: its `mppdl runs` test accuracy.
    std::string trainOne() {
        const auto r = runMppdl("train --data " + kFmnist +
                                " --arch mlp --limit 1000 --epochs 1 --seed 3 --threads 2 -q --project " +
                                path("p.mppdl"));
        EXPECT_EQ(r.code, 0) << r.out;
        const auto runs = nlohmann::json::parse(runMppdl("runs --json --project " + path("p.mppdl")).out);
        char percent[16];
        std::snprintf(percent, sizeof percent, "%.2f%%", runs[0]["test_accuracy"].get<double>() * 100);
        return percent;
    }
    std::string tui() const { return std::string(MPPDL_BINARY) + " tui " + path("p.mppdl"); }
};

bool hasBraille(const std::string& text) {
    // U+2801..U+28FF in UTF-8: E2 A0 81 .. E2 A3 BF
    for (size_t i = 0; i + 2 < text.size(); ++i)
        if (uint8_t(text[i]) == 0xE2 && uint8_t(text[i + 1]) >= 0xA0 && uint8_t(text[i + 1]) <= 0xA3 &&
            !(uint8_t(text[i + 1]) == 0xA0 && uint8_t(text[i + 2]) == 0x80))
            return true;
    return false;
}

} // namespace

// A plain `mppdl` on a terminal without a display opens the Runs screen (it used to abort inside
// Qt), and a finished run's row shows its test accuracy as `mppdl runs` prints it.
TEST_F(TuiTmux, PlainMppdlWithoutADisplayOpensTheRunsScreen) {
    const std::string accuracy = trainOne();
    Tmux tmux(std::string(MPPDL_BINARY), 80, 24, m_dir.string());
    const auto screen = tmux.waitFor("Runs (1)");
    EXPECT_NE(screen.find("Runs (1)"), std::string::npos) << screen;
    EXPECT_NE(screen.find("finished"), std::string::npos) << screen;
    EXPECT_NE(screen.find(accuracy), std::string::npos) << "test accuracy " << accuracy << "\n" << screen;
    EXPECT_NE(screen.find("quit"), std::string::npos) << "the footer lists the keys\n" << screen;
    tmux.keys("q");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const auto gone = tmux.tmux("has-session -t w");
    EXPECT_TRUE(gone.find("can't find") != std::string::npos || gone.find("no server") != std::string::npos)
        << "q quits: " << gone;
}

// The run screen draws its curves in braille, and its Test panel the confusion matrix.
TEST_F(TuiTmux, TheRunScreenShowsCurvesAndTheConfusionMatrix) {
    trainOne();
    Tmux tmux(tui(), 200, 60, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("Enter");
    auto screen = tmux.waitFor("validation accuracy");
    EXPECT_NE(screen.find("1 Curves"), std::string::npos) << screen;
    EXPECT_TRUE(hasBraille(screen)) << screen;
    tmux.keys("5");
    screen = tmux.waitFor("true class");
    EXPECT_NE(screen.find("T-shirt/top"), std::string::npos) << screen;
    EXPECT_NE(screen.find("accuracy"), std::string::npos) << screen;
    tmux.keys("q");
    screen = tmux.waitFor("Runs (1)");
    EXPECT_EQ(screen.find("true class"), std::string::npos) << screen;
}

// n/d open the Launch form; Enter starts a detached `mppdl train` whose row goes from running to
// finished; s stops another, which turns cancelled.
TEST_F(TuiTmux, ARunLaunchedFromTheFormFinishesAndStopCancelsOne) {
    trainOne();
    Tmux tmux(tui(), 200, 60, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("d");
    auto screen = tmux.waitFor("Enter starts");
    EXPECT_NE(screen.find("--limit 1000"), std::string::npos) << "what the form does not show goes along\n" << screen;
    tmux.keys("Enter");
    screen = tmux.waitFor("Runs (2)");
    ASSERT_NE(screen.find("Runs (2)"), std::string::npos) << screen;
    screen = tmux.waitFor("finished", 5);
    // The new run (the newest is listed first) finishes.
    bool finished = false;
    for (int i = 0; i < 600 && !finished; ++i) {
        const auto runs = nlohmann::json::parse(runMppdl("runs --json --project " + path("p.mppdl")).out);
        finished = runs.size() == 2 && runs[1]["state"] == "finished";
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(finished) << tmux.screen();
    screen = tmux.screen();
    // A long one, then s on it.
    tmux.keys("d");
    tmux.waitFor("Enter starts");
    for (int i = 0; i < 6; ++i)
        tmux.keys("Down");
    tmux.keys("BSpace BSpace BSpace 4 0");
    screen = tmux.waitFor("--epochs 40");
    ASSERT_NE(screen.find("--epochs 40"), std::string::npos) << screen;
    tmux.keys("Enter");
    screen = tmux.waitFor("running", 30);
    ASSERT_NE(screen.find("running"), std::string::npos) << screen;
    bool training = false;
    for (int i = 0; i < 300 && !training; ++i) {
        const auto runs = nlohmann::json::parse(runMppdl("runs --json --project " + path("p.mppdl")).out);
        training = runs.size() == 3 && runs[2]["state"] == "running" && runs[2]["epochs_done"].get<int>() >= 1;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(training) << tmux.screen();
    tmux.keys("Home s");
    screen = tmux.waitFor("cancelled", 30);
    EXPECT_NE(screen.find("cancelled"), std::string::npos) << screen;
    const auto runs = nlohmann::json::parse(runMppdl("runs --json --project " + path("p.mppdl")).out);
    EXPECT_EQ(runs[2]["state"], "cancelled");
}

// Resizing redraws the whole screen: nothing of the larger layout is left behind.
TEST_F(TuiTmux, AResizeRedrawsWithoutLeftovers) {
    trainOne();
    Tmux tmux(tui(), 200, 60, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("Enter");
    tmux.waitFor("validation accuracy");
    tmux.resize(80, 24);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    const auto screen = tmux.screen();
    std::istringstream lines(screen);
    std::string line;
    int count = 0, last = 0;
    while (std::getline(lines, line)) {
        ++count;
        EXPECT_LE(line.size(), 80u * 3) << line; // at most 80 cells, each up to 3 bytes of UTF-8
        if (!line.empty())
            last = count;
    }
    EXPECT_EQ(count, 24) << screen;
    EXPECT_EQ(last, 24) << "the footer is on the last row\n" << screen;
    EXPECT_NE(screen.find("back"), std::string::npos) << screen;
    tmux.resize(200, 60);
    const auto again = tmux.waitFor("validation accuracy", 5);
    EXPECT_TRUE(hasBraille(again)) << again;
}

namespace {

/// The confusion matrix as the Test panel shows it: per true class, its cells (the last numbers of
/// each row under "true class").
std::vector<std::vector<long>> confusionOnScreen(const std::string& screen, int classes) {
    std::vector<std::vector<long>> matrix;
    std::istringstream lines(screen.substr(std::min(screen.size(), screen.find("true class"))));
    std::string line;
    std::getline(lines, line); // the heading
    while (int(matrix.size()) < classes && std::getline(lines, line)) {
        std::istringstream words(line);
        std::vector<std::string> tokens;
        for (std::string t; words >> t;)
            tokens.push_back(t);
        if (int(tokens.size()) < classes + 2)
            break;
        std::vector<long> row;
        for (size_t k = tokens.size() - size_t(classes); k < tokens.size(); ++k)
            row.push_back(std::stol(tokens[k]));
        matrix.push_back(row);
    }
    return matrix;
}

bool hasShading(const std::string& text) {
    for (const char* shade : {"░", "▒", "▓", "█"})
        if (text.find(shade) != std::string::npos)
            return true;
    return false;
}

} // namespace

// Enter on a cell of the confusion matrix lists the test rows behind it, as many as the cell
// counts, with a picture of the chosen one in shading characters.
TEST_F(TuiTmux, AConfusionCellListsItsRowsWithAPicture) {
    trainOne();
    Tmux tmux(tui(), 200, 60, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("Enter");
    tmux.waitFor("validation accuracy");
    tmux.keys("5");
    const auto screen = tmux.waitFor("Ankle boot");
    const auto matrix = confusionOnScreen(screen, 10);
    ASSERT_EQ(matrix.size(), 10u) << screen;
    int row = -1, column = -1;
    for (int r = 0; r < 10 && row < 0; ++r)
        for (int c = 0; c < 10 && row < 0; ++c)
            if (r != c && matrix[size_t(r)][size_t(c)] > 0)
                row = r, column = c;
    ASSERT_GE(row, 0) << "no misclassified rows at all?\n" << screen;
    for (int i = 0; i < row; ++i)
        tmux.keys("Down");
    for (int i = 0; i < column; ++i)
        tmux.keys("Right");
    tmux.keys("Enter");
    const auto cell = tmux.waitFor("test rows of class", 60);
    const long count = matrix[size_t(row)][size_t(column)];
    EXPECT_NE(cell.find(std::to_string(count) + " of the 10,000 test rows"), std::string::npos)
        << "the cell's " << count << " rows, predicted again\n"
        << cell;
    EXPECT_NE(cell.find("row #"), std::string::npos) << cell;
    EXPECT_TRUE(hasShading(cell)) << "a Fashion-MNIST row drawn in shading characters\n" << cell;
    tmux.keys("q");
    EXPECT_NE(tmux.waitFor("true class").find("true class"), std::string::npos) << "q goes back to the Test panel";
}

// Enter on a dataset reads it again: a picture of a row of each class, and how N segments would
// hold the rows, for each distribution policy (p) and segment count (+ -).
TEST_F(TuiTmux, TheDatasetsScreenShowsRowsAndSegments) {
    trainOne();
    Tmux tmux(tui(), 80, 24, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("D");
    tmux.waitFor("fashion-mnist");
    tmux.keys("Enter");
    auto screen = tmux.waitFor("distributed by random", 30);
    EXPECT_NE(screen.find("1,000 train / 10,000 test rows"), std::string::npos) << screen;
    EXPECT_NE(screen.find("T-shirt/top"), std::string::npos) << screen;
    EXPECT_TRUE(hasShading(screen)) << screen;
    EXPECT_NE(screen.find("4 segments"), std::string::npos) << screen;
    EXPECT_NE(screen.find("skew 1.000"), std::string::npos) << "1,000 rows dealt evenly\n" << screen;
    tmux.keys("p p p");
    screen = tmux.waitFor("distributed by by-label");
    ASSERT_NE(screen.find("distributed by by-label"), std::string::npos) << screen;
    EXPECT_EQ(screen.find("skew 1.000"), std::string::npos) << "whole classes per segment: uneven\n" << screen;
    tmux.keys("+");
    screen = tmux.waitFor("5 segments");
    EXPECT_NE(screen.find("5 segments"), std::string::npos) << screen;
}

// The Searches screen shows a search's leaderboard live: a configuration training while `mppdl
// tune` runs in another process, then every one finished with the test accuracy tune reports.
TEST_F(TuiTmux, TheSearchesScreenFollowsASearchLive) {
    trainOne(); // the project exists before the workbench opens it
    std::ofstream(path("space.json"))
        << R"({"architecture": "lenet5", "lr": [0.05, 0.02], "momentum": 0.9, "batch_size": 32, "epochs": 3})";
    Tmux tmux(tui(), 80, 24, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("S");
    tmux.waitFor("No searches");
    const std::string tune = "tune --space " + path("space.json") + " --data " + kFmnist +
                             " --limit 3000 --segments 2 --threads 2 --project " + path("p.mppdl");
    CliResult result;
    std::thread search([&] { result = runMppdl(tune); });
    auto screen = tmux.waitFor(" training", 60);
    EXPECT_NE(screen.find(" training"), std::string::npos) << "a configuration seen training\n" << screen;
    search.join();
    ASSERT_EQ(result.code, 0) << result.out;
    const auto shown = runMppdl("tune --show search-1 --json --project " + path("p.mppdl"));
    const auto board = nlohmann::json::parse(shown.out, nullptr, false);
    ASSERT_FALSE(board.is_discarded()) << shown.out;
    ASSERT_EQ(board["leaderboard"].size(), 2u) << shown.out;
    // The rows as tune reports them, once the watch has read the search's end (about a second).
    std::vector<std::string> expected;
    for (const auto& row : board["leaderboard"]) {
        char percent[16];
        std::snprintf(percent, sizeof percent, "%.2f%%", row["test_accuracy"].get<double>() * 100);
        expected.push_back(row["name"].get<std::string>());
        expected.push_back(percent);
    }
    const auto showsAll = [&](const std::string& text) {
        for (const auto& e : expected)
            if (text.find(e) == std::string::npos)
                return false;
        return text.find(" training") == std::string::npos;
    };
    for (int i = 0; i < 100 && !showsAll(screen); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        screen = tmux.screen();
    }
    EXPECT_TRUE(showsAll(screen)) << shown.out << "\n" << screen;
    EXPECT_NE(screen.find("every configuration: lenet5 sgd momentum 0.9 batch 32"), std::string::npos) << screen;
    tmux.keys("Enter");
    EXPECT_NE(tmux.waitFor("1 Curves").find("1 Curves"), std::string::npos) << "Enter opens the best run";
}

// The Launch form checks its data source as it is typed: a path that is not there, and a pg:
// table whose server cannot be reached (the connection's error, in full), before any run starts.
TEST_F(TuiTmux, TheLaunchFormChecksTheDataSourceAsItIsTyped) {
    trainOne();
    Tmux tmux(tui(), 80, 24, m_dir.string());
    tmux.waitFor("Runs (1)");
    tmux.keys("n");
    tmux.waitFor("Enter starts");
    tmux.keys("C-u");
    tmux.keys("-l " + shellQuote(path("nowhere")));
    auto screen = tmux.waitFor("no such file or folder");
    EXPECT_NE(screen.find("data: no such file or folder"), std::string::npos) << screen;
    tmux.keys("C-u");
    tmux.keys("-l pg:fashion");
    tmux.keys("Down");
    // Port 1 on loopback: nothing listens there.
    tmux.keys("-l " + shellQuote("host=127.0.0.1 port=1 dbname=none"));
    screen = tmux.waitFor("Connection refused", 20);
    EXPECT_NE(screen.find("data: pg:fashion: cannot connect"), std::string::npos) << screen;
    EXPECT_NE(screen.find("Connection refused"), std::string::npos) << screen;
    EXPECT_EQ(screen.find("Enter starts"), std::string::npos) << screen;
    tmux.keys("Enter");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(nlohmann::json::parse(runMppdl("runs --json --project " + path("p.mppdl")).out).size(), 1u)
        << "no run was started";
}
