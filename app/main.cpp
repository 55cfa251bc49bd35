// mppdl: the one binary. Subcommands for headless work; `mppdl gui` (and a plain `mppdl` with a
// display) opens the desktop workbench in builds with the GUI, `mppdl tui` (and a plain `mppdl`
// on a terminal without a display) the terminal workbench.

#include "cli_common.h"
#include "cli_processes.h"
#include "cli_project.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/train/devices.h"

#ifdef MPPDL_WITH_GUI
#include "ui/gui.h"
#endif

#include <cstdlib>
#include <iostream>
#include <sstream>
#include <set>
#include <malloc.h>
#include <unistd.h>

namespace {

/// Whether a window can open: Qt on Linux needs an X11 or Wayland display, or a platform plugin
/// named in QT_QPA_PLATFORM (offscreen, vnc). Asked before Qt starts, which would abort
/// ("could not connect to display") on a GPU server reached over SSH.
bool displayAvailable() {
    for (const char* name : {"DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"}) {
        const char* value = std::getenv(name);
        if (value && *value)
            return true;
    }
    return false;
}

/// A plain `mppdl` (or `mppdl gui`) where no window can open: the terminal workbench on a
/// terminal; otherwise (a pipe, a script) why not, then the help.
int noWorkbench(const CLI::App& app) {
    if (isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
        try {
            return mppdl::cli::openTerminalWorkbench("");
        } catch (const mppdl::Error& e) {
            std::cerr << "mppdl: " << mppdl::toString(e.kind()) << " error: " << e.what() << std::endl;
            return mppdl::exitCode(e.kind());
        }
    }
#ifdef MPPDL_WITH_GUI
    std::cerr << "mppdl: no display (DISPLAY and WAYLAND_DISPLAY are unset), so the workbench cannot open; "
                 "the commands below work without one\n\n";
#else
    std::cerr << "mppdl: this build has no workbench (MPPDL_GUI=OFF); the commands below work without one\n\n";
#endif
    std::cout << app.help() << std::flush;
    return mppdl::exitCode(mppdl::ErrorKind::Config);
}

const char* kExitCodes = R"(exit codes:
  0    success
  2    configuration: bad flags, an invalid architecture, shapes that do not fit
  3    data: a missing or malformed data file (file, line and column named)
  4    device: no such device, out of device memory
  5    storage: a model, output or project file that cannot be read or written
       (not a project, corrupt, from a newer mppdl, read-only)
  70   internal error (a bug: please report it)
  130  cancelled with Ctrl-C)";

/// glibc raises its mmap threshold to the size of each large block freed (up to 32 MB), so after
/// loading frees the rows as read, the data's next copies of a few to 32 MB land on the heap, and
/// what they free stays resident. Fixed thresholds keep the blocks of 16 MB and more (the data)
/// in mmaps given back when freed, and 64 MB of freed heap for the training steps to reuse:
/// full Fashion-MNIST (mlp) peaks at 425 MB instead of 570, with the same epoch time (fmnist_cnn,
/// 10,000 rows: 4.3 s either way; trimming at glibc's 128 KB default made it 6.6 s).
/// MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_, when set, still decide.
void setAllocatorThresholds() {
    if (!std::getenv("MALLOC_MMAP_THRESHOLD_"))
        mallopt(M_MMAP_THRESHOLD, 16 << 20);
    if (!std::getenv("MALLOC_TRIM_THRESHOLD_"))
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

} // namespace

int main(int argc, char** argv) {
    using namespace mppdl;
    setAllocatorThresholds();
    CLI::App app("mppdl " + std::string(versionString()) + ": deep learning on data in files and PostgreSQL/Greenplum",
                 "mppdl");
    app.set_version_flag("--version", [] {
        return "mppdl " + std::string(versionString()) + " (" + train::libraryVersions() + ")";
    });
    app.footer(kExitCodes);
    app.require_subcommand(1);
#ifdef MPPDL_WITH_GUI
    // Qt reads its own options from the environment (QT_QPA_PLATFORM, ...): it gets only the name.
    int qtArgc = 1;
    if (argc == 1 && displayAvailable())
        return ui::runGui(qtArgc, argv, {});
#endif

    cli::Command selected;
    cli::registerTrainCommands(app, selected);
    cli::registerModelCommands(app, selected);
    cli::registerTuneCommands(app, selected);
    cli::registerWorkerCommand(app, selected);
    cli::registerInspectCommands(app, selected);
    cli::registerProjectCommands(app, selected); // after inspect: it adds to `arch`
    cli::registerTuiCommand(app, selected);
#ifdef MPPDL_WITH_POSTGRES
    cli::registerDbCommands(app, selected);
#endif
#ifdef MPPDL_WITH_GUI
    ui::GuiStart guiStart;
    auto* gui = app.add_subcommand("gui", "open the workbench (the same as a plain `mppdl`)");
    gui->add_option("project,--project", guiStart.project, "a project file to open (default: the last one)");
    gui->add_option("--run", guiStart.run, "open this run's view (an id or a name)");
    gui->add_option("--dataset", guiStart.dataset, "open this dataset's view (an id or a name)");
    gui->add_option("--search", guiStart.search, "open this search's leaderboard (mppdl tune --name)");
    gui->add_option("--design", guiStart.design,
                    "open an architecture in the designer: NAME[@VERSION] of the project, a bundled one or a file");
    gui->add_flag("--new-run", guiStart.newRun, "open the run launcher");
    gui->add_option("--add-dataset", guiStart.addDataset,
                    "open File > Add Dataset on a source: a path, or pg:TABLE (with --conn)");
    gui->add_option("--conn", guiStart.connection, std::string("pg: ") + cli::kConnectionHelp);
    gui->add_option("--repeat", guiStart.repeat,
                    "train a run again with its recorded settings (an id or a name), watching it live");
    gui->add_option("--compare", guiStart.compare, "compare these runs (ids or names, comma-separated)")
        ->delimiter(',');
    gui->callback(
        [&] { selected = [&] { return displayAvailable() ? ui::runGui(qtArgc, argv, guiStart) : noWorkbench(app); }; });
#endif
    if (argc == 1)
        return noWorkbench(app);

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ExtrasError& e) {
        // CLI11 lists the extras last first; they are said in the order they were typed.
        const std::string text = e.what();
        std::multiset<std::string> extras;
        std::istringstream words(text.substr(std::min(text.size(), text.find(": ") + 2)));
        for (std::string w; words >> w;)
            extras.insert(w);
        std::string ordered;
        for (int i = 1; i < argc; ++i)
            if (const auto it = extras.find(argv[i]); it != extras.end()) {
                ordered += (ordered.empty() ? "" : " ") + std::string(argv[i]);
                extras.erase(it);
            }
        if (!extras.empty() || ordered.empty()) { // an argument with a space in it: CLI11's own words
            app.exit(e);
            return exitCode(ErrorKind::Config);
        }
        std::cerr << "mppdl: "
                  << (ordered.find(' ') == std::string::npos ? "an unexpected argument: " : "unexpected arguments: ")
                  << ordered << "\nRun with --help for more information." << std::endl;
        return exitCode(ErrorKind::Config);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return exitCode(ErrorKind::Config);
    } catch (const Error& e) {
        std::cerr << "mppdl: error: " << e.what() << std::endl;
        return exitCode(e.kind());
    }

    cli::installSignalHandlers();
    try {
        train::applyThreadCount(0);
        return selected ? selected() : 0;
    } catch (const CancelledError& e) {
        std::cerr << "mppdl: " << e.what() << std::endl;
        return exitCode(ErrorKind::Cancelled);
    } catch (const Error& e) {
        std::cerr << "mppdl: " << toString(e.kind()) << " error: " << e.what() << std::endl;
        return exitCode(e.kind());
    } catch (const std::exception& e) {
        // libtorch's messages carry a backtrace after their first line.
        const std::string what = e.what();
        std::cerr << "mppdl: internal error: " << what.substr(0, what.find('\n')) << std::endl;
        return exitCode(ErrorKind::Internal);
    }
}
