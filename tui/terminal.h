#pragma once

// The terminal itself, through ncurses (wide-character ncursesw): full screen, keys, resizes, and
// a Canvas copied to the screen cell by cell where it changed (ncurses then sends only the
// difference: no flicker).

#include "tui/canvas.h"
#include "tui/keys.h"

#include <string>

namespace mppdl::tui {

class Terminal {
public:
    /// Takes over the terminal (ncurses' initscr); colours unless NO_COLOR is set or the
    /// terminal has none. Throws ConfigError when stdin or stdout is not a terminal.
    Terminal();
    ~Terminal();
    Terminal(const Terminal&) = delete;
    Terminal& operator=(const Terminal&) = delete;

    int width() const;
    int height() const;
    /// Whether the locale is UTF-8 (braille and box drawing) or not (ASCII only).
    bool unicode() const { return m_unicode; }
    bool colours() const { return m_colours; }

    /// Shows `canvas` (of the terminal's size).
    void show(const Canvas& canvas);
    /// The next key, waiting up to `timeoutMs` (kNoKey when none came).
    int key(int timeoutMs);

private:
    bool m_unicode = true, m_colours = false;
};

} // namespace mppdl::tui
