#pragma once

// What every screen of the terminal workbench is: it draws its body into the canvas from the
// latest snapshot, lists its keys for the footer, and answers keys, possibly opening another
// screen or going back.

#include "tui/background.h"
#include "tui/canvas.h"
#include "tui/keys.h"
#include "tui/project_watch.h"

#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mppdl::tui {

class Screen;

/// What a screen needs besides the snapshot.
struct Context {
    std::shared_ptr<const Snapshot> snapshot;
    ProjectWatch* watch = nullptr;
    Jobs* jobs = nullptr;   ///< where a screen's longer work runs (background.h)
    std::string project;    ///< the project file
    std::string executable; ///< this mppdl, for the runs it starts
    bool unicode = true;
    double now = 0;      ///< seconds since the workbench started (animations)
    std::string message; ///< set by a screen: shown in the status line until the next key
};

struct Outcome {
    enum Kind { Stay, Back, Quit, Open } kind = Stay;
    std::unique_ptr<Screen> next;
    static Outcome stay() { return {}; }
    static Outcome back() { return {Back, nullptr}; }
    static Outcome quit() { return {Quit, nullptr}; }
    static Outcome open(std::unique_ptr<Screen> s) { return {Open, std::move(s)}; }
};

/// A key and what it does, for the footer and the help.
using KeyHelp = std::pair<std::string, std::string>;

class Screen {
public:
    virtual ~Screen() = default;
    virtual std::string title(const Context& context) const = 0;
    /// Draws into the w x h cells at (x, y).
    virtual void draw(Canvas& canvas, int x, int y, int w, int h, Context& context) = 0;
    virtual std::vector<KeyHelp> keys() const = 0;
    virtual Outcome key(int key, Context& context) = 0;
    /// The runs whose metrics this screen shows (ProjectWatch::want).
    virtual std::set<int64_t> wantedRuns(const Snapshot&) const { return {}; }
    /// Whether this screen shows the project's searches (ProjectWatch::wantSearches).
    virtual bool wantsSearches() const { return false; }
    /// True while typing into a field: q and ? are text then, Esc ends the typing.
    virtual bool typing() const { return false; }
};

std::unique_ptr<Screen> runsScreen();
std::unique_ptr<Screen> runScreen(int64_t runId);
std::unique_ptr<Screen> compareScreen(std::vector<int64_t> runIds);
std::unique_ptr<Screen> datasetsScreen();
/// One dataset's rows: a picture of a row of each class and how N segments would hold the rows,
/// read again from where the dataset is, on a job.
std::unique_ptr<Screen> datasetRowsScreen(const store::DatasetRecord& dataset, Context& context);
std::unique_ptr<Screen> searchesScreen();

/// The test rows behind one cell of a run's confusion matrix, predicted again on a job.
struct ConfusionCell {
    int64_t runId = 0;
    int epoch = 0;
    int trueClass = 0, predictedClass = 0;
    std::string trueName, predictedName;
};
std::unique_ptr<Screen> confusionCellScreen(const ConfusionCell& cell, Context& context);
/// The launch form, empty or filled from run `fromRun` (0: the defaults).
std::unique_ptr<Screen> launchScreen(int64_t fromRun, const Snapshot& snapshot);

/// `s` and `r` on the Runs and Run screens: asks a running run of this host to stop after its
/// minibatch (SIGINT: the trainer's cancel), or resumes an interrupted, cancelled or failed run as a
/// detached `mppdl resume`; what happened, for the status line.
std::string stopRun(const store::RunRecord& run);
std::string resumeRun(const store::RunRecord& run, const Context& context);

/// Up, Down, Page Up/Down, Home and End on a list's cursor; `rows` the list's length (the cursor
/// stays in 0..rows-1, or 0 for none). False for other keys.
bool moveCursor(int key, int& cursor, int rows);

/// A run's configuration JSON as "key.sub" and value pairs, in the document's order.
std::vector<std::pair<std::string, std::string>> flattenConfig(const std::string& json);

/// "running", "finished", ... with a live marker for a running run.
std::string stateText(const store::RunRecord& run, double now, bool unicode);
Style stateStyle(store::RunState state);

} // namespace mppdl::tui
