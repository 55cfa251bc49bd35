#pragma once

#include <string>
#include <vector>

namespace mppdl {

/// A plain-text table for terminals: columns sized to their widths, numbers right-aligned.
class TextTable {
public:
    enum class Align { Left, Right };

    explicit TextTable(std::vector<std::string> header, std::vector<Align> align = {});
    void addRow(std::vector<std::string> cells);
    /// A horizontal rule before the next row (e.g. above a totals row).
    void addRule();
    std::string render() const;

private:
    std::vector<std::string> m_header;
    std::vector<Align> m_align;
    std::vector<std::vector<std::string>> m_rows; // an empty row is a rule
};

/// 1234567 -> "1,234,567".
std::string groupThousands(long long value);
/// A count and its noun, singular for one: (1, "epoch") -> "1 epoch", (1200, "row") -> "1,200
/// rows"; `many` for a plural that is not the noun and "s" ("class", "classes").
std::string countText(long long count, const std::string& one, const std::string& many = {});
/// 1.5e9 -> "1.50 G"; for FLOPs and parameter counts.
std::string humanCount(double value);
/// Bytes in powers of 1024, three significant figures: "512 bytes", "1.5 KB", "188 MB", "1.2 GB".
std::string humanBytes(double bytes);
/// (0.92345, 2) -> "0.92".
std::string fixedText(double value, int digits);
/// A fraction as a percentage with two decimals: 0.9229 -> "92.29%".
std::string percentText(double fraction);
/// Seconds as "12.3s", "4m05s" or "1h02m".
std::string humanDuration(double seconds);

} // namespace mppdl
