#pragma once

// The keys the screens of the terminal workbench answer (terminal.h reads them from ncurses).

namespace mppdl::tui {

/// Keys as the screens see them: a Unicode character, or one of these.
enum Key : int {
    kNoKey = -1,
    kUp = 0x110000,
    kDown,
    kLeft,
    kRight,
    kPageUp,
    kPageDown,
    kHome,
    kEnd,
    kEnter,
    kEscape,
    kBackspace,
    kTab,
    kBackTab,
    kResize,
    kDelete,
};

} // namespace mppdl::tui
