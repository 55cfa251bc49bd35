#include "mppdl/core/text_table.h"

#include <sstream>
#include <utility>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace mppdl {

TextTable::TextTable(std::vector<std::string> header, std::vector<Align> align)
    : m_header(std::move(header)), m_align(std::move(align)) {
    m_align.resize(m_header.size(), Align::Left);
}

void TextTable::addRow(std::vector<std::string> cells) {
    cells.resize(m_header.size());
    m_rows.push_back(std::move(cells));
}

void TextTable::addRule() { m_rows.emplace_back(); }

std::string TextTable::render() const {
    std::vector<size_t> width(m_header.size());
    for (size_t c = 0; c < m_header.size(); ++c)
        width[c] = m_header[c].size();
    for (const auto& row : m_rows)
        for (size_t c = 0; c < row.size(); ++c)
            width[c] = std::max(width[c], row[c].size());

    auto line = [&](const std::vector<std::string>& cells) {
        std::string out;
        for (size_t c = 0; c < cells.size(); ++c) {
            const size_t pad = width[c] - cells[c].size();
            if (c > 0)
                out += "  ";
            if (m_align[c] == Align::Right)
                out += std::string(pad, ' ') + cells[c];
            else if (c + 1 < cells.size())
                out += cells[c] + std::string(pad, ' ');
            else
                out += cells[c];
        }
        return out + '\n';
    };
    auto rule = [&]() {
        size_t total = 0;
        for (size_t c = 0; c < width.size(); ++c)
            total += width[c] + (c > 0 ? 2 : 0);
        return std::string(total, '-') + '\n';
    };

    std::string out = line(m_header) + rule();
    for (const auto& row : m_rows)
        out += row.empty() ? rule() : line(row);
    return out;
}

std::string groupThousands(long long value) {
    std::string digits = std::to_string(value < 0 ? -value : value);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0)
            out += ',';
        out += digits[i];
    }
    return value < 0 ? "-" + out : out;
}

std::string countText(long long count, const std::string& one, const std::string& many) {
    return groupThousands(count) + " " + (count == 1 || count == -1 ? one : many.empty() ? one + "s" : many);
}

namespace {

/// `value` divided by `base` until below it (at most 4 times), with the unit of that power.
std::pair<double, int> scaled(double value, double base) {
    int u = 0;
    while (std::fabs(value) >= base && u < 4) {
        value /= base;
        ++u;
    }
    return {value, u};
}

} // namespace

std::string humanCount(double value) {
    const char* units[] = {"", " K", " M", " G", " T"};
    const auto [v, u] = scaled(value, 1000.0);
    char buf[32];
    if (u == 0)
        std::snprintf(buf, sizeof buf, "%.0f", v);
    else
        std::snprintf(buf, sizeof buf, "%.2f%s", v, units[u]);
    return buf;
}

std::string humanBytes(double bytes) {
    const char* units[] = {"bytes", "KB", "MB", "GB", "TB"};
    const auto [v, u] = scaled(bytes, 1024.0);
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 || v >= 10 ? "%.0f %s" : "%.1f %s", v, units[u]);
    return buf;
}

std::string fixedText(double value, int digits) {
    std::ostringstream s;
    s.setf(std::ios::fixed);
    s.precision(digits);
    s << value;
    return s.str();
}

std::string percentText(double fraction) { return fixedText(100.0 * fraction, 2) + "%"; }

std::string humanDuration(double seconds) {
    char buf[32];
    if (seconds < 60)
        std::snprintf(buf, sizeof buf, "%.1fs", seconds);
    else if (seconds < 3600)
        std::snprintf(buf, sizeof buf, "%dm%02ds", int(seconds) / 60, int(seconds) % 60);
    else
        std::snprintf(buf, sizeof buf, "%dh%02dm", int(seconds) / 3600, (int(seconds) % 3600) / 60);
    return buf;
}

} // namespace mppdl
