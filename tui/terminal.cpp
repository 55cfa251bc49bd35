#include "tui/terminal.h"

#include "mppdl/core/error.h"

#ifndef NCURSES_WIDECHAR
#define NCURSES_WIDECHAR 1
#endif
#include <curses.h>

#include <clocale>
#include <cstdlib>
#include <cstring>
#include <langinfo.h>
#include <unistd.h>

namespace mppdl::tui {

namespace {

/// Colour pair and attributes of each Style (pair numbers are the Style's value + 1).
struct Look {
    short foreground;
    attr_t attributes;
};

Look lookOf(Style style) {
    switch (style) {
    case Style::Normal: return {-1, A_NORMAL};
    case Style::Dim: return {-1, A_DIM};
    case Style::Bold: return {-1, A_BOLD};
    case Style::Title: return {COLOR_CYAN, A_BOLD};
    case Style::Header: return {-1, A_BOLD | A_UNDERLINE};
    case Style::Selected: return {-1, A_REVERSE};
    case Style::Key: return {COLOR_YELLOW, A_BOLD};
    case Style::Good: return {COLOR_GREEN, A_NORMAL};
    case Style::Bad: return {COLOR_RED, A_BOLD};
    case Style::Running: return {COLOR_CYAN, A_BOLD};
    case Style::Series0: return {COLOR_CYAN, A_NORMAL};
    case Style::Series1: return {COLOR_YELLOW, A_NORMAL};
    case Style::Series2: return {COLOR_GREEN, A_NORMAL};
    case Style::Series3: return {COLOR_MAGENTA, A_NORMAL};
    case Style::Series4: return {COLOR_RED, A_NORMAL};
    case Style::Series5: return {COLOR_BLUE, A_NORMAL};
    case Style::Series6: return {COLOR_WHITE, A_BOLD};
    case Style::Series7: return {COLOR_CYAN, A_BOLD};
    }
    return {-1, A_NORMAL};
}

constexpr int kStyles = int(Style::Series7) + 1;

} // namespace

Terminal::Terminal() {
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        throw ConfigError("the terminal workbench needs a terminal (stdin and stdout are not one)");
    std::setlocale(LC_ALL, "");
    const char* codeset = nl_langinfo(CODESET);
    m_unicode = codeset && (std::strcmp(codeset, "UTF-8") == 0 || std::strcmp(codeset, "utf8") == 0);
    // ESC alone must not wait a second for an escape sequence.
    setenv("ESCDELAY", "25", 0);
    if (!initscr())
        throw ConfigError("cannot start the terminal workbench on this terminal ($TERM=" +
                          std::string(std::getenv("TERM") ? std::getenv("TERM") : "") + ")");
    cbreak();
    noecho();
    nonl();
    keypad(stdscr, TRUE);
    curs_set(0);
    const char* noColor = std::getenv("NO_COLOR");
    m_colours = has_colors() && !(noColor && *noColor);
    if (m_colours) {
        start_color();
        use_default_colors();
        for (int s = 0; s < kStyles; ++s)
            init_pair(short(s + 1), lookOf(Style(s)).foreground, -1);
    }
}

Terminal::~Terminal() { endwin(); }

int Terminal::width() const { return COLS; }
int Terminal::height() const { return LINES; }

void Terminal::show(const Canvas& canvas) {
    for (int y = 0; y < canvas.height() && y < LINES; ++y)
        for (int x = 0; x < canvas.width() && x < COLS; ++x) {
            const Cell& cell = canvas.at(x, y);
            if (cell.ch == 0)
                continue; // the right half of a wide character drawn before it
            const Look look = lookOf(cell.style);
            attr_t attributes = look.attributes;
            if (!m_colours && look.foreground != -1 && cell.style >= Style::Series0)
                attributes = A_NORMAL;
            char32_t ch = cell.ch;
            if (!m_unicode && ch > 0x7e)
                ch = '?';
            wchar_t text[2] = {wchar_t(ch), 0};
            cchar_t c;
            setcchar(&c, text, attributes, m_colours ? short(int(cell.style) + 1) : 0, nullptr);
            mvadd_wch(y, x, &c);
        }
    refresh();
}

int Terminal::key(int timeoutMs) {
    timeout(timeoutMs);
    wint_t c = 0;
    const int kind = get_wch(&c);
    if (kind == ERR)
        return kNoKey;
    if (kind == KEY_CODE_YES) {
        switch (c) {
        case KEY_UP: return kUp;
        case KEY_DOWN: return kDown;
        case KEY_LEFT: return kLeft;
        case KEY_RIGHT: return kRight;
        case KEY_PPAGE: return kPageUp;
        case KEY_NPAGE: return kPageDown;
        case KEY_HOME: return kHome;
        case KEY_END: return kEnd;
        case KEY_ENTER: return kEnter;
        case KEY_BACKSPACE: return kBackspace;
        case KEY_DC: return kDelete;
        case KEY_BTAB: return kBackTab;
        case KEY_RESIZE: return kResize;
        default: return kNoKey;
        }
    }
    switch (c) {
    case '\r':
    case '\n': return kEnter;
    case 27: return kEscape;
    case 127:
    case 8: return kBackspace;
    case '\t': return kTab;
    default: return int(c);
    }
}

} // namespace mppdl::tui
