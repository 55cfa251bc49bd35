#include "tui/canvas.h"

#include <algorithm>

namespace mppdl::tui {

Style seriesStyle(int i) { return Style(int(Style::Series0) + ((i % 8) + 8) % 8); }

int columnsOf(char32_t c) {
    if (c == 0)
        return 0;
    if ((c >= 0x0300 && c <= 0x036F) || (c >= 0x200B && c <= 0x200F) || (c >= 0xFE00 && c <= 0xFE0F))
        return 0;
    // East Asian wide and fullwidth ranges, and the emoji planes.
    if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF) || (c >= 0xAC00 && c <= 0xD7A3) ||
        (c >= 0xF900 && c <= 0xFAFF) || (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
        (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1FAFF) || (c >= 0x20000 && c <= 0x3FFFD))
        return 2;
    return 1;
}

std::u32string decodeUtf8(const std::string& text) {
    std::u32string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        const auto b = static_cast<unsigned char>(text[i]);
        const int extra = b < 0x80 ? 0 : (b >> 5) == 6 ? 1 : (b >> 4) == 14 ? 2 : (b >> 3) == 30 ? 3 : -1;
        bool ok = extra >= 0 && i + size_t(extra) < text.size();
        char32_t c = extra == 0 ? b : extra == 1 ? (b & 0x1F) : extra == 2 ? (b & 0x0F) : (b & 0x07);
        for (int k = 1; ok && k <= extra; ++k) {
            const auto next = static_cast<unsigned char>(text[i + size_t(k)]);
            ok = (next >> 6) == 2;
            c = (c << 6) | (next & 0x3F);
        }
        if (!ok) {
            out.push_back(U'\uFFFD');
            ++i;
            continue;
        }
        out.push_back(c);
        i += size_t(extra) + 1;
    }
    return out;
}

std::string encodeUtf8(const std::u32string& text) {
    std::string out;
    for (const char32_t c : text) {
        if (c < 0x80) {
            out += char(c);
        } else if (c < 0x800) {
            out += char(0xC0 | (c >> 6));
            out += char(0x80 | (c & 0x3F));
        } else if (c < 0x10000) {
            out += char(0xE0 | (c >> 12));
            out += char(0x80 | ((c >> 6) & 0x3F));
            out += char(0x80 | (c & 0x3F));
        } else {
            out += char(0xF0 | (c >> 18));
            out += char(0x80 | ((c >> 12) & 0x3F));
            out += char(0x80 | ((c >> 6) & 0x3F));
            out += char(0x80 | (c & 0x3F));
        }
    }
    return out;
}

int textColumns(const std::string& text) {
    int n = 0;
    for (const char32_t c : decodeUtf8(text))
        n += columnsOf(c);
    return n;
}

std::string fitText(const std::string& text, int columns) {
    if (columns <= 0)
        return {};
    if (textColumns(text) <= columns)
        return text;
    std::u32string out;
    int used = 0;
    for (const char32_t c : decodeUtf8(text)) {
        const int w = columnsOf(c);
        if (used + w > columns - 1)
            break;
        out.push_back(c);
        used += w;
    }
    return encodeUtf8(out) + "…";
}

std::vector<std::string> wrapText(const std::string& text, int columns) {
    std::vector<std::string> lines;
    if (columns <= 0)
        return lines;
    const std::u32string all = decodeUtf8(text);
    std::u32string line;
    int used = 0;
    size_t lastSpace = std::u32string::npos; // in `line`
    const auto flush = [&](std::u32string part) {
        while (!part.empty() && part.back() == U' ')
            part.pop_back();
        lines.push_back(encodeUtf8(part));
    };
    for (const char32_t c : all) {
        const int w = columnsOf(c);
        if (used + w > columns && !(c == U' ')) {
            if (lastSpace != std::u32string::npos) {
                // Break after the last space: the word in progress starts the next line.
                flush(line.substr(0, lastSpace + 1));
                line.erase(0, lastSpace + 1);
            } else {
                flush(line);
                line.clear();
            }
            used = 0;
            for (const char32_t k : line)
                used += columnsOf(k);
            lastSpace = std::u32string::npos;
        }
        if (c == U' ' && used + w > columns) {
            flush(line);
            line.clear();
            used = 0;
            lastSpace = std::u32string::npos;
            continue;
        }
        line.push_back(c);
        used += w;
        if (c == U' ')
            lastSpace = line.size() - 1;
    }
    if (!line.empty())
        flush(line);
    return lines;
}

Canvas::Canvas(int width, int height) { resize(width, height); }

void Canvas::resize(int width, int height) {
    m_width = std::max(0, width);
    m_height = std::max(0, height);
    m_cells.assign(size_t(m_width) * size_t(m_height), Cell{});
}

void Canvas::clear() { std::fill(m_cells.begin(), m_cells.end(), Cell{}); }

void Canvas::set(int x, int y, char32_t ch, Style style) {
    if (x < 0 || y < 0 || x >= m_width || y >= m_height)
        return;
    m_cells[size_t(y) * size_t(m_width) + size_t(x)] = Cell{ch, style};
}

int Canvas::text(int x, int y, const std::string& text, Style style, int maxColumns) {
    if (y < 0 || y >= m_height)
        return 0;
    int used = 0;
    for (const char32_t c : decodeUtf8(text)) {
        const int w = columnsOf(c);
        if (w == 0)
            continue;
        if (used + w > maxColumns || x + used + w > m_width)
            break;
        set(x + used, y, c, style);
        if (w == 2)
            set(x + used + 1, y, 0, style); // the right half of a wide character
        used += w;
    }
    return used;
}

void Canvas::textRight(int x, int y, int width, const std::string& value, Style style) {
    const std::string fitted = fitText(value, width);
    text(x + width - textColumns(fitted), y, fitted, style);
}

void Canvas::fill(int x, int y, int width, Style style, char32_t ch) {
    for (int i = 0; i < width; ++i)
        set(x + i, y, ch, style);
}

void Canvas::restyle(int x, int y, int width, Style style) {
    if (y < 0 || y >= m_height)
        return;
    for (int i = std::max(0, x); i < std::min(m_width, x + width); ++i)
        m_cells[size_t(y) * size_t(m_width) + size_t(i)].style = style;
}

void Canvas::box(int x, int y, int width, int height, const std::string& title, Style style) {
    if (width < 2 || height < 2)
        return;
    for (int i = 1; i < width - 1; ++i) {
        set(x + i, y, U'─', style);
        set(x + i, y + height - 1, U'─', style);
    }
    for (int j = 1; j < height - 1; ++j) {
        set(x, y + j, U'│', style);
        set(x + width - 1, y + j, U'│', style);
    }
    set(x, y, U'┌', style);
    set(x + width - 1, y, U'┐', style);
    set(x, y + height - 1, U'└', style);
    set(x + width - 1, y + height - 1, U'┘', style);
    if (!title.empty())
        text(x + 2, y, " " + fitText(title, width - 6) + " ", Style::Title);
}

std::string Canvas::row(int y) const {
    std::u32string line;
    for (int x = 0; x < m_width; ++x)
        if (at(x, y).ch != 0)
            line.push_back(at(x, y).ch);
    while (!line.empty() && line.back() == U' ')
        line.pop_back();
    return encodeUtf8(line);
}

std::string Canvas::text() const {
    std::string out;
    for (int y = 0; y < m_height; ++y)
        out += row(y) + (y + 1 < m_height ? "\n" : "");
    return out;
}

} // namespace mppdl::tui
