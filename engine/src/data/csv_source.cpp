// CSV (RFC 4180): one sample per record, numeric feature columns and one label column.

#include "data/formats.h"
#include "data/gz_file.h"
#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <string_view>
#include <unordered_map>

namespace mppdl::data {

namespace {

/// Splits a buffer into records of fields. Quoted fields may hold delimiters, doubled quotes and
/// line breaks; views stay valid until the next call of next().
class CsvReader {
public:
    CsvReader(const std::string& path, std::string_view text, char delimiter)
        : m_path(path), m_text(text), m_delimiter(delimiter) {
        if (m_text.substr(0, 3) == "\xEF\xBB\xBF") // a UTF-8 byte order mark is not part of the first field
            m_pos = 3;
    }

    /// The next record's fields; false at the end. Empty lines are skipped.
    bool next(std::vector<std::string_view>& fields) {
        fields.clear();
        m_spans.clear();
        m_scratch.clear();
        skipEmptyLines();
        if (m_pos >= m_text.size())
            return false;
        m_recordLine = m_line;
        for (;;) {
            const char end = m_pos < m_text.size() && m_text[m_pos] == '"' ? readQuoted() : readPlain();
            if (end != m_delimiter)
                break;
        }
        for (const auto& s : m_spans)
            fields.emplace_back(s.inScratch ? std::string_view(m_scratch).substr(s.begin, s.length)
                                            : m_text.substr(s.begin, s.length));
        return true;
    }

    /// The line (1-based) where the record that next() returned last began.
    size_t line() const { return m_recordLine; }

private:
    struct Span {
        bool inScratch;
        size_t begin;
        size_t length;
    };

    void skipEmptyLines() {
        while (m_pos < m_text.size()) {
            if (m_text[m_pos] == '\n') {
                ++m_pos;
                ++m_line;
            } else if (m_text[m_pos] == '\r' && m_pos + 1 < m_text.size() && m_text[m_pos + 1] == '\n') {
                m_pos += 2;
                ++m_line;
            } else {
                break;
            }
        }
    }

    /// Consumes the character that ended a field and returns it ('\n' at the end of a line or input).
    char consumeEnd() {
        if (m_pos >= m_text.size())
            return '\n';
        const char c = m_text[m_pos++];
        if (c == '\n')
            ++m_line;
        return c;
    }

    char readPlain() {
        const size_t begin = m_pos;
        const char* data = m_text.data();
        const size_t size = m_text.size();
        size_t pos = m_pos;
        while (pos < size && data[pos] != m_delimiter && data[pos] != '\n')
            ++pos;
        size_t end = pos;
        if (end > begin && data[end - 1] == '\r' && (pos == size || data[pos] == '\n'))
            --end;
        m_spans.push_back({false, begin, end - begin});
        m_pos = pos;
        return consumeEnd();
    }

    char readQuoted() {
        const size_t quoteLine = m_line;
        ++m_pos;
        const size_t begin = m_pos;
        bool escaped = false;
        size_t scratchBegin = 0;
        for (;;) {
            const size_t quote = m_text.find('"', m_pos);
            if (quote == std::string_view::npos)
                throw DataError(m_path + ":" + std::to_string(quoteLine) + ": unterminated quoted field");
            m_line += static_cast<size_t>(std::count(m_text.begin() + m_pos, m_text.begin() + quote, '\n'));
            if (quote + 1 < m_text.size() && m_text[quote + 1] == '"') {
                if (!escaped) {
                    escaped = true;
                    scratchBegin = m_scratch.size();
                }
                m_scratch.append(m_text.substr(m_pos, quote + 1 - m_pos)); // keeps one of the two quotes
                m_pos = quote + 2;
                continue;
            }
            if (escaped) {
                m_scratch.append(m_text.substr(m_pos, quote - m_pos));
                m_spans.push_back({true, scratchBegin, m_scratch.size() - scratchBegin});
            } else {
                m_spans.push_back({false, begin, quote - begin});
            }
            m_pos = quote + 1;
            break;
        }
        if (m_pos < m_text.size() && m_text[m_pos] == '\r' && m_pos + 1 < m_text.size() && m_text[m_pos + 1] == '\n')
            ++m_pos;
        if (m_pos < m_text.size() && m_text[m_pos] != m_delimiter && m_text[m_pos] != '\n')
            throw DataError(m_path + ":" + std::to_string(m_line) + ": unexpected '" + std::string(1, m_text[m_pos]) +
                            "' after a closing quote");
        return consumeEnd();
    }

    const std::string& m_path;
    std::string_view m_text;
    char m_delimiter;
    size_t m_pos = 0;
    size_t m_line = 1;
    size_t m_recordLine = 1;
    std::vector<Span> m_spans;
    std::string m_scratch;
};

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

/// The whole field as a number of type T (surrounding spaces and a leading '+' allowed).
template <typename T>
bool parseNumber(std::string_view text, T& value) {
    text = trim(text);
    if (!text.empty() && text.front() == '+')
        text.remove_prefix(1);
    if (text.empty())
        return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc() && end == text.data() + text.size();
}

bool parseFloat(std::string_view text, float& value) { return parseNumber(text, value) && std::isfinite(value); }

bool parseInteger(std::string_view text, int64_t& value) { return parseNumber(text, value); }

bool isNumber(std::string_view text) {
    float value = 0;
    return parseFloat(text, value);
}

std::string describeColumns(const std::vector<std::string>& names) {
    std::string out;
    for (size_t i = 0; i < names.size(); ++i)
        out += (i ? ", " : "") + names[i] + " (" + std::to_string(i) + ")";
    return out;
}

size_t findLabelColumn(const std::string& path, const SourceOptions& options, const std::vector<std::string>& names,
                       size_t columns) {
    if (options.label.empty())
        return columns - 1;
    for (size_t i = 0; i < names.size(); ++i)
        if (std::string(trim(names[i])) == options.label)
            return i;
    size_t index = 0;
    const auto& label = options.label;
    const auto [end, ec] = std::from_chars(label.data(), label.data() + label.size(), index);
    if (ec == std::errc() && end == label.data() + label.size() && index < columns)
        return index;
    if (names.empty())
        throw ConfigError(path + ": no label column '" + options.label + "': the file has no header row and " +
                          std::to_string(columns) + " columns; name the label column by 0-based index 0.." +
                          std::to_string(columns - 1));
    throw ConfigError(path + ": no label column '" + options.label + "'; the columns are: " + describeColumns(names));
}

} // namespace

bool detectCsv(const std::string& location) {
    std::error_code ec;
    return !std::filesystem::is_directory(location, ec) && endsWith(baseNameWithoutGz(location), ".csv");
}

LoadedSource loadCsv(const std::string& path, const SourceOptions& options) {
    if (options.delimiter == '"' || options.delimiter == '\n' || options.delimiter == '\r')
        throw ConfigError("a CSV delimiter cannot be a quote or a line break");
    const std::string text = readFile(path);
    if (text.find_first_not_of(" \t\r\n") == std::string::npos)
        throw DataError(path + ": empty file");

    std::vector<std::string_view> fields;
    std::vector<std::string> first;
    std::vector<std::string> second;
    {
        CsvReader reader(path, text, options.delimiter);
        reader.next(fields);
        first.assign(fields.begin(), fields.end());
        if (reader.next(fields))
            second.assign(fields.begin(), fields.end());
    }
    bool header = false;
    if (options.header) {
        header = *options.header;
    } else if (second.empty()) {
        header = std::none_of(first.begin(), first.end(), [](const std::string& f) { return isNumber(f); });
    } else {
        // A header is a first row with a text field where the row below has a number.
        for (size_t i = 0; i < std::min(first.size(), second.size()) && !header; ++i)
            header = !isNumber(first[i]) && isNumber(second[i]);
    }

    const size_t columns = first.size();
    if (columns < 2)
        throw DataError(path + ": only one column; need at least one feature column and a label column");
    std::vector<std::string> names;
    if (header)
        names = first;
    const size_t labelColumn = findLabelColumn(path, options, names, columns);
    const size_t featureCount = columns - 1;

    auto columnName = [&](size_t i) {
        return names.empty() ? "column " + std::to_string(i)
                             : "column '" + std::string(trim(names[i])) + "' (" + std::to_string(i) + ")";
    };

    std::vector<float> features;
    std::vector<int64_t> labelIds;
    std::unordered_map<std::string, int64_t> labelIdOf;
    std::vector<std::string> labelValues;

    // With a selection every row's label is read (the classes are the whole file's) but only the
    // selected rows' features are parsed.
    const std::vector<int64_t>* selected = options.rows ? &options.rows->train : nullptr;
    size_t nextSelected = 0;
    CsvReader reader(path, text, options.delimiter);
    if (header)
        reader.next(fields);
    int64_t rows = 0;
    while ((options.limit <= 0 || rows < options.limit) && reader.next(fields)) {
        const auto where = [&] { return path + ":" + std::to_string(reader.line()) + ": "; };
        if (fields.size() != columns)
            throw DataError(where() + "expected " + std::to_string(columns) + " fields, found " +
                            std::to_string(fields.size()));
        const bool wanted = !selected || (nextSelected < selected->size() && (*selected)[nextSelected] == rows);
        if (wanted && selected)
            ++nextSelected;
        for (size_t i = 0; i < columns && wanted; ++i) {
            if (i == labelColumn)
                continue;
            float value = 0;
            if (!parseFloat(fields[i], value))
                throw DataError(where() + columnName(i) + ": '" + std::string(fields[i]) + "' is not a number");
            features.push_back(value);
        }
        const auto label = std::string(trim(fields[labelColumn]));
        if (label.empty())
            throw DataError(where() + columnName(labelColumn) + ": empty label");
        auto [it, added] = labelIdOf.try_emplace(label, static_cast<int64_t>(labelValues.size()));
        if (added)
            labelValues.push_back(label);
        labelIds.push_back(it->second);
        ++rows;
    }
    if (rows == 0)
        throw DataError(path + ": no data rows" + (header ? " below the header" : ""));

    auto ids = torch::from_blob(labelIds.data(), {rows}, torch::kInt64);
    // Integer labels keep their value (classes "0".."max"); any other text is a class name, sorted.
    std::vector<int64_t> asIntegers(labelValues.size());
    bool integers = true;
    for (size_t i = 0; i < labelValues.size() && integers; ++i)
        integers = parseInteger(labelValues[i], asIntegers[i]);
    EncodedLabels encoded;
    if (integers) {
        const auto values = torch::from_blob(asIntegers.data(), {static_cast<int64_t>(asIntegers.size())},
                                             torch::kInt64);
        encoded = encodeIntegerLabels(values.index_select(0, ids));
    } else {
        std::vector<int64_t> order(labelValues.size());
        for (size_t i = 0; i < order.size(); ++i)
            order[i] = static_cast<int64_t>(i);
        std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return labelValues[a] < labelValues[b]; });
        std::vector<int64_t> rank(order.size());
        for (size_t r = 0; r < order.size(); ++r) {
            rank[static_cast<size_t>(order[r])] = static_cast<int64_t>(r);
            encoded.classNames.push_back(labelValues[static_cast<size_t>(order[r])]);
        }
        const auto ranks = torch::from_blob(rank.data(), {static_cast<int64_t>(rank.size())}, torch::kInt64);
        encoded.indices = ranks.index_select(0, ids);
    }

    if (selected && nextSelected != selected->size())
        throw InternalError(path + ": row " + std::to_string((*selected)[nextSelected]) + " selected of " +
                            std::to_string(rows));
    const int64_t taken = selected ? static_cast<int64_t>(selected->size()) : rows;
    auto x = torch::from_blob(features.data(), {taken, static_cast<int64_t>(featureCount)}, torch::kFloat32).clone();
    LoadedSource out;
    const auto labels = encoded.indices.contiguous();
    out.train = Dataset(reshapeFeatures(x, options.shape, path),
                        selected
                            ? labels.index_select(0, torch::tensor(at::ArrayRef<int64_t>(*selected), torch::kInt64))
                            : labels.clone(),
                        encoded.classNames);
    out.rowsRead = taken;
    out.bytesRead = taken * static_cast<int64_t>(featureCount * sizeof(float));
    if (selected) {
        out.sourceTrainRows = rows;
        out.sourceTestRows = 0;
        out.allLabels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + rows);
    }
    return out;
}

} // namespace mppdl::data
