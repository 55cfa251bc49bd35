#include "tui/workbench.h"

#include "tui/screen.h"
#include "tui/terminal.h"

#include "mppdl/core/error.h"

#include <chrono>
#include <csignal>
#include <vector>

namespace mppdl::tui {

namespace {

/// The keys every screen shares, for the help.
const std::vector<KeyHelp> kCommonKeys = {
    {"?", "this help"}, {"q / Esc", "back (q on Runs: quit)"}, {"Ctrl-L", "redraw"}};

void drawFooter(Canvas& canvas, const std::vector<KeyHelp>& screenKeys, bool typing) {
    const int y = canvas.height() - 1;
    canvas.fill(0, y, canvas.width(), Style::Normal);
    // Help and the way back first: on a narrow terminal they are what must stay.
    std::vector<KeyHelp> keys;
    if (!typing)
        keys.push_back({"?", "help"});
    for (const auto& k : screenKeys)
        if (k.first == "q" || k.first == "Esc")
            keys.push_back(k);
    for (const auto& k : screenKeys)
        if (k.first != "q" && k.first != "Esc" && k.first != "?")
            keys.push_back(k);
    int x = 0;
    for (const auto& [key, what] : keys) {
        const int need = textColumns(key) + textColumns(what) + 3;
        if (x + need > canvas.width())
            break;
        x += canvas.text(x, y, key, Style::Key);
        x += canvas.text(x, y, " " + what + "  ", Style::Dim);
    }
}

void drawHelp(Canvas& canvas, const std::vector<KeyHelp>& keys) {
    std::vector<KeyHelp> all = keys;
    all.insert(all.end(), kCommonKeys.begin(), kCommonKeys.end());
    const int w = std::min(canvas.width() - 4, 60), h = std::min(canvas.height() - 4, int(all.size()) + 4);
    const int x = (canvas.width() - w) / 2, y = (canvas.height() - h) / 2;
    for (int j = 0; j < h; ++j)
        canvas.fill(x, y + j, w, Style::Normal);
    canvas.box(x, y, w, h, "keys");
    for (int i = 0; i < int(all.size()) && i < h - 4; ++i) {
        canvas.text(x + 2, y + 2 + i, all[size_t(i)].first, Style::Key, 14);
        canvas.text(x + 17, y + 2 + i, fitText(all[size_t(i)].second, w - 19));
    }
    canvas.text(x + 2, y + h - 1, " any key closes ", Style::Dim);
}

} // namespace

int runWorkbench(const WorkbenchOptions& options) {
    // The project must open before the terminal is taken over: its error then reads as any other.
    { store::Project::open(options.project, store::Access::Read); }
    ProjectWatch watch(options.project, options.pollSeconds);
    // Declared before the screens: quitting destroys the screens first, then waits here for the
    // work they started (a prediction, a dataset read) rather than leaving a thread running.
    Jobs jobs;
    Terminal terminal;
    Context context;
    context.watch = &watch;
    context.jobs = &jobs;
    context.project = options.project;
    context.executable = options.executable;
    context.unicode = terminal.unicode();
    std::vector<std::unique_ptr<Screen>> screens;
    screens.push_back(runsScreen());
    Canvas canvas;
    bool help = false;
    std::string message;
    const auto start = std::chrono::steady_clock::now();
    // Redraw at most 10 times a second: on a key, on a new snapshot, and for the live markers.
    for (;;) {
        context.snapshot = watch.latest();
        context.now = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        Screen& screen = *screens.back();
        watch.want(screen.wantedRuns(*context.snapshot));
        watch.wantSearches(screen.wantsSearches());
        if (canvas.width() != terminal.width() || canvas.height() != terminal.height())
            canvas.resize(terminal.width(), terminal.height());
        canvas.clear();
        if (canvas.width() >= 20 && canvas.height() >= 6) {
            // The title bar: where we are, and whether the project reads.
            std::string path;
            for (size_t i = 0; i < screens.size(); ++i)
                path += (i ? " › " : "") + screens[i]->title(context);
            if (!context.unicode)
                for (size_t at; (at = path.find("›")) != std::string::npos;)
                    path.replace(at, std::string("›").size(), ">");
            canvas.fill(0, 0, canvas.width(), Style::Selected);
            const std::string& error = context.snapshot->error;
            // The project's file name on the right, when the path of screens leaves room for it.
            std::string file = error.empty() ? options.project.substr(options.project.rfind('/') + 1)
                                             : "cannot read the project";
            const int titleColumns = textColumns("mppdl  " + path) + 3;
            if (titleColumns + textColumns(file) + 1 > canvas.width())
                file.clear();
            canvas.text(1, 0, fitText("mppdl  " + path, canvas.width() - 2 - textColumns(file)), Style::Selected);
            canvas.textRight(0, 0, canvas.width() - 1, file, Style::Selected);
            screen.draw(canvas, 0, 2, canvas.width(), canvas.height() - 4, context);
            const std::string status = error.empty() ? message : message.empty() ? error : error + "  |  " + message;
            if (!status.empty())
                canvas.text(0, canvas.height() - 2, fitText(status, canvas.width()),
                            error.empty() ? Style::Key : Style::Bad);
            drawFooter(canvas, screen.keys(), screen.typing());
            if (help)
                drawHelp(canvas, screen.keys());
        } else {
            canvas.text(0, 0, "mppdl: the terminal is too small");
        }
        terminal.show(canvas);

        const int key = terminal.key(100);
        if (key == kNoKey || key == kResize)
            continue;
        message.clear();
        if (help) {
            help = false;
            continue;
        }
        if (key == 12) { // Ctrl-L
            canvas.resize(0, 0);
            continue;
        }
        if (key == '?' && !screen.typing()) {
            help = true;
            continue;
        }
        context.message.clear();
        Outcome outcome = screen.key(key, context);
        message = context.message;
        if (outcome.kind == Outcome::Quit)
            return 0;
        if (outcome.kind == Outcome::Back) {
            if (screens.size() == 1)
                return 0;
            screens.pop_back();
        } else if (outcome.kind == Outcome::Open) {
            screens.push_back(std::move(outcome.next));
        } else if (key == kEscape && !screen.typing() && screens.size() > 1) {
            screens.pop_back();
        }
    }
}

} // namespace mppdl::tui
