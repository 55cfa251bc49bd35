#pragma once

// A screen's worth of character cells, drawn into by the screens and shown by the terminal
// (terminal.h): what is on screen can be read back as text, so the screens are tested without a
// terminal and the ncurses layer only copies cells.

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::tui {

/// What a cell looks like; the terminal maps each to colours and attributes (or to plain text
/// without colours: NO_COLOR, a terminal without them).
enum class Style : uint8_t {
    Normal,
    Dim,
    Bold,
    Title,    ///< a screen's or panel's heading
    Header,   ///< a table's column names
    Selected, ///< the row under the cursor
    Key,      ///< a key named in the footer
    Good,     ///< finished, improving
    Bad,      ///< failed, errors
    Running,  ///< live runs
    Series0,  ///< chart lines, one colour each (eight)
    Series1,
    Series2,
    Series3,
    Series4,
    Series5,
    Series6,
    Series7,
};

/// Style of the chart line `i` (wrapping after eight).
Style seriesStyle(int i);

struct Cell {
    char32_t ch = U' ';
    Style style = Style::Normal;
    bool operator==(const Cell& o) const { return ch == o.ch && style == o.style; }
    bool operator!=(const Cell& o) const { return !(*this == o); }
};

/// Columns a code point takes on a terminal: 0 (combining marks), 2 (East Asian wide), else 1.
int columnsOf(char32_t c);
/// UTF-8 to code points; an invalid byte becomes U+FFFD.
std::u32string decodeUtf8(const std::string& text);
std::string encodeUtf8(const std::u32string& text);
/// Terminal columns of UTF-8 `text`.
int textColumns(const std::string& text);
/// `text` cut to `columns` columns, ending in "…" when cut.
std::string fitText(const std::string& text, int columns);
/// `text` in lines of at most `columns` columns, broken after spaces (a word longer than a line
/// is broken inside); no line ends in a space.
std::vector<std::string> wrapText(const std::string& text, int columns);

class Canvas {
public:
    Canvas(int width = 0, int height = 0);
    int width() const { return m_width; }
    int height() const { return m_height; }
    void resize(int width, int height);
    void clear();

    const Cell& at(int x, int y) const { return m_cells[size_t(y) * size_t(m_width) + size_t(x)]; }
    void set(int x, int y, char32_t ch, Style style = Style::Normal);
    /// UTF-8 `text` from (x, y) to the right, clipped at `maxColumns` (and the canvas); returns
    /// the columns drawn.
    int text(int x, int y, const std::string& text, Style style = Style::Normal, int maxColumns = 1 << 30);
    /// `text` right-aligned so that it ends at column x + width - 1.
    void textRight(int x, int y, int width, const std::string& text, Style style = Style::Normal);
    /// Every cell of a row's span in `style` (the selection bar).
    void fill(int x, int y, int width, Style style, char32_t ch = U' ');
    void restyle(int x, int y, int width, Style style);
    /// A box of light lines with `title` in its top edge.
    void box(int x, int y, int width, int height, const std::string& title = {}, Style style = Style::Dim);

    /// Row `y` as UTF-8 without trailing spaces; all rows joined by '\n'.
    std::string row(int y) const;
    std::string text() const;

private:
    int m_width = 0, m_height = 0;
    std::vector<Cell> m_cells;
};

} // namespace mppdl::tui
