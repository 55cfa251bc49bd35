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

/// No label column: a read for prediction (labelsOptional) of a file without one.
constexpr size_t kNoLabel = size_t(-1);

/// --label: digits are a 0-based index, anything else a header name; "name:" and "index:" force
/// either (a header column named "4" is --label name:4). One rule, so that the same flag never
/// means two columns.
size_t findLabelColumn(const std::string& path, const SourceOptions& options, const std::vector<std::string>& names,
                       size_t columns) {
    if (options.label.empty())
        // Exactly the model's features: no label column (else the last column is the label).
        return options.labelsOptional && options.expectedFeatures == int64_t(columns) ? kNoLabel : columns - 1;
    std::string label = options.label;
    bool byName = false, byIndex = false;
    if (label.rfind("name:", 0) == 0) {
        byName = true;
        label.erase(0, 5);
    } else if (label.rfind("index:", 0) == 0) {
        byIndex = true;
        label.erase(0, 6);
    } else {
        byIndex = !label.empty() && label.find_first_not_of("0123456789") == std::string::npos;
        byName = !byIndex;
    }
    if (byName) {
        for (size_t i = 0; i < names.size(); ++i)
            if (std::string(trim(names[i])) == label)
                return i;
        if (options.labelsOptional && !names.empty())
            return kNoLabel; // a header without the named label column: rows to predict
        if (names.empty())
            throw ConfigError(path + ": no label column named '" + label + "': the file has no header row; name the " +
                              "label column by its 0-based index 0.." + std::to_string(columns - 1));
        throw ConfigError(path + ": no label column named '" + label + "'; the columns are: " + describeColumns(names));
    }
    size_t index = 0;
    const auto [end, ec] = std::from_chars(label.data(), label.data() + label.size(), index);
    if (ec == std::errc() && end == label.data() + label.size() && index < columns)
        return index;
    throw ConfigError(path + ": --label " + options.label + " is a 0-based column index, and the file has " +
                      std::to_string(columns) + " columns (0.." + std::to_string(columns - 1) + ")" +
                      (names.empty() ? std::string() : "; a column named so is --label name:" + label));
}

/// How a CSV begins: the records before the data (--skip-rows, a header, a first row of counts
/// and class names), the header's names, the class names a first row gives, and what was decided,
/// for the output.
struct CsvLayout {
    size_t skip = 0;
    std::vector<std::string> names;
    std::vector<std::string> classNames;
    std::vector<std::string> notes;
};

/// A first row as scikit-learn's bundled CSV files have: the row count, the feature count, then
/// the class names ("150,4,setosa,versicolor,virginica"), whatever its width; `dataColumns` is the
/// width of the row below.
bool countsAndClassNames(const std::vector<std::string>& row, size_t dataColumns) {
    int64_t rows = 0, features = 0;
    if (row.size() < 3 || !parseInteger(row[0], rows) || !parseInteger(row[1], features))
        return false;
    for (size_t i = 2; i < row.size(); ++i)
        if (trim(row[i]).empty() || isNumber(row[i]))
            return false;
    return rows > 0 && features > 0 && size_t(features) + 1 == dataColumns;
}

std::string joinNames(const std::vector<std::string>& names, size_t from = 0) {
    std::string out;
    for (size_t i = from; i < names.size(); ++i) {
        if (i - from == 8) {
            out += ", ... (" + std::to_string(names.size() - from) + " in all)";
            break;
        }
        out += (i > from ? ", " : "") + std::string(trim(names[i]));
    }
    return out;
}

CsvLayout layoutOf(const std::string& path, const std::string& text, const SourceOptions& options) {
    CsvLayout out;
    out.skip = size_t(options.skipRows);
    std::vector<std::string_view> fields;
    std::vector<std::string> first, second;
    size_t firstLine = 0, secondLine = 0;
    {
        CsvReader reader(path, text, options.delimiter);
        for (int64_t i = 0; i < options.skipRows; ++i)
            if (!reader.next(fields))
                throw DataError(path + ": --skip-rows " + std::to_string(options.skipRows) +
                                " passes over every record of the file");
        if (!reader.next(fields))
            throw DataError(path + ": no records after the " + std::to_string(options.skipRows) + " skipped");
        first.assign(fields.begin(), fields.end());
        firstLine = reader.line();
        if (reader.next(fields)) {
            second.assign(fields.begin(), fields.end());
            secondLine = reader.line();
        }
    }
    const std::string at = path + ":" + std::to_string(firstLine) + ": ";
    if (!options.header && !second.empty() && countsAndClassNames(first, second.size())) {
        out.skip += 1;
        out.classNames.assign(first.begin() + 2, first.end());
        for (auto& n : out.classNames)
            n = std::string(trim(n));
        out.notes.push_back(at + "the row count (" + first[0] + "), the feature count (" + first[1] +
                            ") and the class names (" + joinNames(first, 2) +
                            "), as scikit-learn's CSV files begin: not data; the class names name the labels 0.." +
                            std::to_string(out.classNames.size() - 1));
        return out;
    }
    bool header = false;
    if (options.header)
        header = *options.header;
    else if (second.empty())
        header = std::none_of(first.begin(), first.end(), [](const std::string& f) { return isNumber(f); });
    else // a header is a first row with a text field where the row below has a number
        for (size_t i = 0; i < std::min(first.size(), second.size()) && !header; ++i)
            header = !isNumber(first[i]) && isNumber(second[i]);
    if (!second.empty() && first.size() != second.size() && !(options.header && !*options.header))
        throw DataError(at + std::to_string(first.size()) + " fields, where the data below has " +
                        std::to_string(second.size()) + " (line " + std::to_string(secondLine) +
                        "): " + (header ? "not a header of the data" : "not a row of the data") + "; --skip-rows " +
                        std::to_string(options.skipRows + 1) + " passes over it");
    if (header) {
        out.skip += 1;
        out.names = first;
        out.notes.push_back(at + "taken as the header (" + joinNames(first) + "); --no-header reads it as data");
    }
    return out;
}

/// The label column's values as classes: integers keep their value (classes "0".."max", named by
/// a first row of class names when it gives them); other text is a class name, sorted. A column
/// of other numbers, or of so many distinct values that they cannot be classes, is refused with
/// their count: it is a feature or an id, not the label.
EncodedLabels encodeLabels(const std::string& path, const std::vector<std::string>& values,
                           std::vector<int64_t>& valueOfRow, const std::string& column,
                           const std::vector<std::string>& namesFromFile, std::vector<std::string>& notes) {
    const auto rows = int64_t(valueOfRow.size());
    auto ids = torch::from_blob(valueOfRow.data(), {rows}, torch::kInt64);
    std::vector<int64_t> asIntegers(values.size());
    bool integers = true;
    for (size_t i = 0; i < values.size() && integers; ++i)
        integers = parseInteger(values[i], asIntegers[i]);
    EncodedLabels encoded;
    if (integers) {
        const auto v = torch::from_blob(asIntegers.data(), {static_cast<int64_t>(asIntegers.size())}, torch::kInt64);
        encoded = encodeIntegerLabels(v.index_select(0, ids));
        if (!namesFromFile.empty()) {
            if (encoded.classNames.size() <= namesFromFile.size())
                encoded.classNames = namesFromFile;
            else
                notes.push_back(path + ": the first row names " + std::to_string(namesFromFile.size()) +
                                " classes but the labels go up to " + std::to_string(encoded.classNames.size() - 1) +
                                ": the classes keep their numbers");
        }
        return encoded;
    }
    const size_t distinct = values.size();
    const bool numbers = std::all_of(values.begin(), values.end(), [](const std::string& v) { return isNumber(v); });
    if (numbers || distinct > 1000 || (distinct > 100 && int64_t(distinct) * 5 > rows))
        throw ConfigError(path + ": the label " + column + " holds " + std::to_string(distinct) + " distinct " +
                          (numbers ? "numbers that are not all integers" : "values") + " in " + std::to_string(rows) +
                          " rows: not classes (a label holds integers or a few names); " +
                          "choose the label column with --label");
    std::vector<int64_t> order(values.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = static_cast<int64_t>(i);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return values[size_t(a)] < values[size_t(b)]; });
    std::vector<int64_t> rank(order.size());
    for (size_t r = 0; r < order.size(); ++r) {
        rank[static_cast<size_t>(order[r])] = static_cast<int64_t>(r);
        encoded.classNames.push_back(values[static_cast<size_t>(order[r])]);
    }
    const auto ranks = torch::from_blob(rank.data(), {static_cast<int64_t>(rank.size())}, torch::kInt64);
    encoded.indices = ranks.index_select(0, ids).clone();
    return encoded;
}

/// The header's names of the feature columns (empty without a header).
std::vector<std::string> featureNamesOf(const std::vector<std::string>& names, size_t labelColumn) {
    std::vector<std::string> out;
    for (size_t i = 0; i < names.size(); ++i)
        if (i != labelColumn)
            out.emplace_back(trim(names[i]));
    return out;
}

/// Rows read for prediction from a file without a label column: `taken` of the file's `rows`
/// (fewer when some were selected).
LoadedSource unlabeledCsv(const std::string& path, std::vector<float>& features, int64_t rows, int64_t taken,
                          size_t featureCount, const SourceOptions& options) {
    auto x = torch::from_blob(features.data(), {taken, static_cast<int64_t>(featureCount)}, torch::kFloat32).clone();
    LoadedSource out;
    out.train = Dataset(reshapeFeatures(x, options.shape, path), torch::full({taken}, -1, torch::kInt64), {});
    out.rowsRead = taken;
    out.bytesRead = taken * static_cast<int64_t>(featureCount * sizeof(float));
    if (options.rows) {
        out.sourceTrainRows = rows;
        out.sourceTestRows = 0;
        out.allLabels.assign(size_t(rows), -1);
    }
    return out;
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

    if (options.skipRows < 0)
        throw ConfigError("--skip-rows must be 0 or more, got " + std::to_string(options.skipRows));
    const CsvLayout layout = layoutOf(path, text, options);
    std::vector<std::string_view> fields;
    size_t columns = 0;
    {
        CsvReader reader(path, text, options.delimiter);
        for (size_t i = 0; i <= layout.skip && reader.next(fields); ++i)
            columns = fields.size();
        if (columns == 0) // nothing after the header
            throw DataError(path + ": no data rows" + (layout.names.empty() ? "" : " below the header"));
    }
    if (columns < 2 && !options.labelsOptional)
        throw DataError(path + ": only one column; need at least one feature column and a label column");
    const auto& names = layout.names;
    const bool header = !names.empty();
    const size_t labelColumn = findLabelColumn(path, options, names, columns);
    const bool labeled = labelColumn != kNoLabel;
    const size_t featureCount = labeled ? columns - 1 : columns;

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
    for (size_t i = 0; i < layout.skip; ++i)
        reader.next(fields);
    int64_t rows = 0, badRows = 0;
    const bool skipBad = options.onBadRows == "skip";
    if (skipBad && selected && !selected->empty())
        throw ConfigError(path + ": --on-bad-rows skip reads the file whole, not some of its rows (a process's "
                                 "share, a chunk): leave it out, or fix the rows");
    while ((options.limit <= 0 || rows < options.limit) && reader.next(fields)) {
        const auto where = [&] { return path + ":" + std::to_string(reader.line()) + ": "; };
        if (fields.size() != columns)
            throw DataError(where() + "expected " + std::to_string(columns) + " fields, found " +
                            std::to_string(fields.size()));
        const bool wanted = !selected || (nextSelected < selected->size() && (*selected)[nextSelected] == rows);
        if (wanted && selected)
            ++nextSelected;
        const size_t rowStart = features.size();
        bool bad = false;
        for (size_t i = 0; i < columns && wanted && !bad; ++i) {
            if (i == labelColumn)
                continue;
            float value = 0;
            if (!parseNumber(fields[i], value))
                throw DataError(where() + columnName(i) + ": '" + std::string(fields[i]) + "' is not a number");
            if (!std::isfinite(value)) {
                if (!skipBad)
                    throw DataError(where() + columnName(i) + ": '" + std::string(trim(fields[i])) +
                                    "' is not a finite number (--on-bad-rows skip leaves such rows out)");
                bad = true;
            }
            features.push_back(value);
        }
        if (bad) { // left out: its features go, and it is not a row
            features.resize(rowStart);
            ++badRows;
            continue;
        }
        if (!labeled) {
            ++rows;
            continue;
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

    if (!labeled) {
        auto out = unlabeledCsv(path, features, rows, selected ? int64_t(selected->size()) : rows, featureCount,
                                options);
        out.badRows = badRows;
        out.featureNames = featureNamesOf(names, kNoLabel);
        out.notes = layout.notes;
        return out;
    }
    std::vector<std::string> notes = layout.notes;
    const EncodedLabels encoded = encodeLabels(path, labelValues, labelIds, columnName(labelColumn), layout.classNames,
                                               notes);

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
    out.badRows = badRows;
    out.featureNames = featureNamesOf(names, labelColumn);
    out.notes = std::move(notes);
    if (selected) {
        out.sourceTrainRows = rows;
        out.sourceTestRows = 0;
        out.allLabels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + rows);
    }
    return out;
}

} // namespace mppdl::data
