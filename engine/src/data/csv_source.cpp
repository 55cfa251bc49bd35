// CSV (RFC 4180): one sample per record, numeric feature columns and one label column.

#include "data/formats.h"
#include "data/gz_file.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"

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

/// A column named on the command line (--label, --features, --ignore, --categorical): digits are
/// a 0-based index, anything else a header name; "name:" and "index:" force either (a header
/// column named "4" is name:4). One rule, so that the same flag never means two columns.
/// kNoLabel for a name the header does not have when `missingOk`.
size_t columnOf(const std::string& path, const std::string& flag, const std::string& spec,
                const std::vector<std::string>& names, size_t columns, bool missingOk) {
    std::string name = spec;
    bool byName = false, byIndex = false;
    if (name.rfind("name:", 0) == 0) {
        byName = true;
        name.erase(0, 5);
    } else if (name.rfind("index:", 0) == 0) {
        byIndex = true;
        name.erase(0, 6);
    } else {
        byIndex = !name.empty() && name.find_first_not_of("0123456789") == std::string::npos;
        byName = !byIndex;
    }
    if (byName) {
        for (size_t i = 0; i < names.size(); ++i)
            if (std::string(trim(names[i])) == name)
                return i;
        if (missingOk)
            return kNoLabel;
        if (names.empty())
            throw ConfigError(path + ": " + flag + " " + spec + ": no column named '" + name +
                              "': the file has no header row; name the column by its 0-based index 0.." +
                              std::to_string(columns - 1));
        throw ConfigError(path + ": " + flag + " " + spec + ": no column named '" + name +
                          "'; the columns are: " + describeColumns(names));
    }
    size_t index = 0;
    const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), index);
    if (ec == std::errc() && end == name.data() + name.size() && index < columns)
        return index;
    throw ConfigError(path + ": " + flag + " " + spec + " is a 0-based column index, and the file has " +
                      std::to_string(columns) + " columns (0.." + std::to_string(columns - 1) + ")" +
                      (names.empty() ? std::string() : "; a column named so is " + flag + " name:" + name));
}

/// The label column (columnOf's rule); empty --label: the last column, or none when the file has
/// exactly the model's features, or when its last column is one the model reads.
size_t findLabelColumn(const std::string& path, const SourceOptions& options, const std::vector<std::string>& names,
                       size_t columns) {
    if (options.label.empty()) {
        if (options.labelsOptional && options.encoding && !options.encoding->empty()) {
            // The last column is the label unless the model reads it (by name, or by index
            // without a header).
            const std::string last = names.empty() ? std::to_string(columns - 1) : std::string(trim(names.back()));
            for (const auto& c : options.encoding->columns)
                if (c.name == last)
                    return kNoLabel;
            return columns - 1;
        }
        // Exactly the model's features: no label column (else the last column is the label).
        return options.labelsOptional && options.expectedFeatures == int64_t(columns) ? kNoLabel : columns - 1;
    }
    // A header without the named label column: rows to predict.
    return columnOf(path, "--label", options.label, names, columns, options.labelsOptional && !names.empty());
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

/// What each column of a file is for: the label, left out, or a feature read as a number or as a
/// category; and the feature columns in feature order.
struct ColumnPlan {
    size_t label = kNoLabel;
    std::vector<size_t> features;    ///< feature columns, in feature order
    std::vector<int> category;       ///< per column: its index among the categorical columns, or -1
    std::vector<size_t> categorical; ///< the categorical columns, in feature order
    std::vector<bool> detected;      ///< per categorical column: detected as text, not named
    std::vector<std::string> keys;   ///< per column: the header's name, or its index without a header
    std::vector<size_t> ignored;
    /// The features are not simply every column but the label as numbers: an encoding is kept.
    bool encoded = false;
};

/// Whether a column is text: more than half of its non-empty values in the first rows are not
/// numbers (a numeric column with a stray "n/a" stays numeric, and the "n/a" is an error).
std::vector<bool> textColumns(const std::string& path, const std::string& text, const SourceOptions& options,
                              size_t skip, size_t columns) {
    constexpr int kSampleRows = 1000;
    std::vector<int64_t> values(columns), texts(columns);
    std::vector<std::string_view> fields;
    CsvReader reader(path, text, options.delimiter);
    for (size_t i = 0; i < skip; ++i)
        reader.next(fields);
    for (int r = 0; r < kSampleRows && reader.next(fields); ++r)
        for (size_t i = 0; i < std::min(columns, fields.size()); ++i)
            if (!trim(fields[i]).empty()) {
                ++values[i];
                texts[i] += isNumber(fields[i]) ? 0 : 1;
            }
    std::vector<bool> out(columns);
    for (size_t i = 0; i < columns; ++i)
        out[i] = texts[i] * 2 > values[i];
    return out;
}

ColumnPlan planColumns(const std::string& path, const std::string& text, const SourceOptions& options,
                       const CsvLayout& layout, size_t columns) {
    ColumnPlan plan;
    const auto& names = layout.names;
    for (size_t i = 0; i < columns; ++i)
        plan.keys.push_back(names.empty() ? std::to_string(i) : std::string(trim(names[i])));
    plan.label = findLabelColumn(path, options, names, columns);
    plan.category.assign(columns, -1);
    auto resolve = [&](const std::string& flag, const std::vector<std::string>& specs) {
        std::vector<size_t> out;
        for (const auto& spec : specs) {
            const size_t i = columnOf(path, flag, spec, names, columns, false);
            if (i == plan.label)
                throw ConfigError(path + ": " + flag + " " + spec + " names the label column");
            out.push_back(i);
        }
        return out;
    };
    if (options.encoding && !options.encoding->empty()) { // the model's columns, by name, in its order
        for (const auto& c : options.encoding->columns) {
            const auto it = std::find(plan.keys.begin(), plan.keys.end(), c.name);
            if (it == plan.keys.end())
                throw ConfigError(path + ": no column " + (names.empty() ? "at index " : "named '") + c.name +
                                  (names.empty() ? "" : "'") + ", which the model reads (" +
                                  options.encoding->describe() + ")");
            const auto i = size_t(it - plan.keys.begin());
            plan.features.push_back(i);
            if (c.categorical) {
                plan.category[i] = int(plan.categorical.size());
                plan.categorical.push_back(i);
                plan.detected.push_back(false);
            }
        }
        plan.encoded = true;
        return plan;
    }
    plan.ignored = resolve("--ignore", options.ignore);
    const auto chosen = resolve("--features", options.features);
    const auto named = resolve("--categorical", options.categorical);
    const auto isText = textColumns(path, text, options, layout.skip, columns);
    for (size_t i = 0; i < columns; ++i) {
        const bool ignored = std::find(plan.ignored.begin(), plan.ignored.end(), i) != plan.ignored.end();
        const bool wanted = chosen.empty() || std::find(chosen.begin(), chosen.end(), i) != chosen.end();
        if (i == plan.label || ignored || !wanted)
            continue;
        plan.features.push_back(i);
        const bool isNamed = std::find(named.begin(), named.end(), i) != named.end();
        if (isNamed || isText[i]) {
            plan.category[i] = int(plan.categorical.size());
            plan.categorical.push_back(i);
            plan.detected.push_back(!isNamed);
        }
    }
    if (plan.features.empty())
        throw ConfigError(path + ": no feature columns are left (" + std::to_string(columns) + " columns, " +
                          std::to_string(plan.ignored.size()) + " ignored, the label " +
                          (plan.label == kNoLabel ? "none" : plan.keys[plan.label]) + ")");
    plan.encoded = !plan.categorical.empty() || plan.features.size() + (plan.label == kNoLabel ? 0 : 1) != columns;
    return plan;
}

/// A categorical column's values as read: each distinct value once, in the order first seen, and
/// each row's (every row's, selected or not: the categories are the whole file's training rows').
struct CategoryValues {
    std::unordered_map<std::string, int32_t> idOf;
    std::vector<std::string> values;
    std::vector<int32_t> rowValue;

    void add(std::string_view field) {
        std::string value(trim(field));
        auto [it, added] = idOf.try_emplace(std::move(value), int32_t(values.size()));
        if (added)
            values.push_back(it->first);
        rowValue.push_back(it->second);
    }
};

/// What the rows' features are made of, before the categories are fitted.
struct RawRows {
    std::vector<float> numbers; ///< the number columns of the taken rows, row by row
    std::vector<CategoryValues> categories;
};

/// The encoding of the plan's columns: the model's (options.encoding), or one fitted on the fit
/// rows; and per categorical column, each value's position among its categories (-1: unseen).
ColumnEncoding fitEncoding(const std::string& path, const SourceOptions& options, const ColumnPlan& plan,
                           const RawRows& raw, int64_t rows, std::vector<std::vector<int64_t>>& positionOf) {
    if (options.encoding && !options.encoding->empty()) {
        positionOf.clear();
        for (size_t k = 0; k < plan.categorical.size(); ++k) {
            const auto& known = options.encoding->columns[size_t(
                std::find(plan.features.begin(), plan.features.end(), plan.categorical[k]) - plan.features.begin())];
            std::vector<int64_t> to;
            for (const auto& v : raw.categories[k].values) {
                const auto it = std::lower_bound(known.categories.begin(), known.categories.end(), v);
                to.push_back(it != known.categories.end() && *it == v ? int64_t(it - known.categories.begin()) : -1);
            }
            positionOf.push_back(std::move(to));
        }
        return *options.encoding;
    }
    ColumnEncoding encoding;
    std::vector<int64_t> fit;
    if (options.fitRows)
        fit = options.fitRows(rows);
    positionOf.assign(plan.categorical.size(), {});
    for (const size_t i : plan.features) {
        ColumnEncoding::Column column;
        column.name = plan.keys[i];
        const int k = plan.category[i];
        if (k >= 0) {
            column.categorical = true;
            const auto& values = raw.categories[size_t(k)];
            std::vector<bool> seen(values.values.size(), !options.fitRows);
            for (const int64_t r : fit)
                if (r >= 0 && r < int64_t(values.rowValue.size()))
                    seen[size_t(values.rowValue[size_t(r)])] = true;
            for (size_t v = 0; v < values.values.size(); ++v)
                if (seen[v])
                    column.categories.push_back(values.values[v]);
            std::sort(column.categories.begin(), column.categories.end());
            const auto distinct = int64_t(column.categories.size());
            const bool tooMany = plan.detected[size_t(k)] ? distinct > 1000 || (distinct > 100 && distinct * 5 > rows)
                                                          : distinct > 10000;
            if (tooMany)
                throw ConfigError(path + ": column '" + column.name + "' (" + std::to_string(i) + ") holds " +
                                  std::to_string(distinct) + " distinct values in " + std::to_string(rows) +
                                  " rows: an id or free text, not categories; --ignore " + column.name +
                                  " leaves it out" +
                                  (plan.detected[size_t(k)] ? " (--categorical encodes it all the same)" : ""));
            for (const auto& v : values.values) {
                const auto it = std::lower_bound(column.categories.begin(), column.categories.end(), v);
                positionOf[size_t(k)].push_back(
                    it != column.categories.end() && *it == v ? int64_t(it - column.categories.begin()) : -1);
            }
        }
        encoding.columns.push_back(std::move(column));
    }
    return encoding;
}

/// The taken rows' features under the encoding: numbers as read, a categorical column one 0/1
/// feature per category (all 0 for a value it has none for).
at::Tensor encodeRows(const ColumnPlan& plan, const ColumnEncoding& encoding, const RawRows& raw,
                      const std::vector<std::vector<int64_t>>& positionOf, const std::vector<int64_t>* selected,
                      int64_t taken) {
    const int64_t width = encoding.width();
    const size_t numbers = plan.features.size() - plan.categorical.size();
    auto x = torch::zeros({taken, width}, torch::kFloat32);
    float* out = x.data_ptr<float>();
    for (int64_t r = 0; r < taken; ++r) {
        const int64_t ordinal = selected ? (*selected)[size_t(r)] : r;
        float* row = out + r * width;
        size_t n = 0;
        int64_t at = 0;
        for (size_t j = 0; j < plan.features.size(); ++j) {
            const int k = plan.category[plan.features[j]];
            if (k < 0) {
                row[at++] = raw.numbers[size_t(r) * numbers + n++];
                continue;
            }
            const auto& categories = encoding.columns[j].categories;
            const int64_t p = positionOf[size_t(k)][size_t(raw.categories[size_t(k)].rowValue[size_t(ordinal)])];
            if (p >= 0)
                row[at + p] = 1.0f;
            at += int64_t(categories.size());
        }
    }
    return x;
}

/// What the output says of an encoding: the columns left out and the categories (with the unseen
/// values' counts when the encoding is the model's).
void noteEncoding(const std::string& path, const ColumnPlan& plan, const ColumnEncoding& encoding, const RawRows& raw,
                  const std::vector<std::vector<int64_t>>& positionOf, bool fitted, std::vector<std::string>& notes) {
    if (!plan.ignored.empty()) {
        std::vector<std::string> names;
        for (const size_t i : plan.ignored)
            names.push_back(plan.keys[i]);
        notes.push_back(path + ": " + (names.size() == 1 ? "column " : "columns ") + joinNames(names) +
                        " left out (--ignore)");
    }
    for (size_t k = 0; k < plan.categorical.size(); ++k) {
        const size_t j = size_t(std::find(plan.features.begin(), plan.features.end(), plan.categorical[k]) -
                                plan.features.begin());
        const auto& c = encoding.columns[j];
        // Over every row of the file, selected or not: a plan's read says what the rows hold.
        int64_t unseen = 0;
        std::vector<std::string> values;
        for (const auto v : raw.categories[k].rowValue)
            if (positionOf[k][size_t(v)] < 0) {
                ++unseen;
                const auto& value = raw.categories[k].values[size_t(v)];
                if (values.size() < 9 && std::find(values.begin(), values.end(), value) == values.end())
                    values.push_back(value);
            }
        if (fitted)
            notes.push_back(path + ": column '" + c.name + "' read as " +
                            countText(int64_t(c.categories.size()), "category", "categories") + " (" +
                            joinNames(c.categories) + "), one feature each" +
                            (plan.detected[k] ? " (text: --ignore leaves it out)" : " (--categorical)"));
        if (unseen > 0)
            notes.push_back(path + ": " + countText(unseen, "row") + " with a value of column '" + c.name + "' " +
                            (fitted ? "that the training rows do not have" : "the model was not trained with") + " (" +
                            joinNames(values) + "): its " + std::to_string(c.categories.size()) +
                            " features are 0 for them");
    }
}

/// Rows read for prediction from a file without a label column: `taken` of the file's `rows`
/// (fewer when some were selected).
LoadedSource unlabeledCsv(const std::string& path, const at::Tensor& x, int64_t rows, int64_t taken,
                          const SourceOptions& options) {
    LoadedSource out;
    out.train = Dataset(reshapeFeatures(x, options.shape, path), torch::full({taken}, -1, torch::kInt64), {});
    out.rowsRead = taken;
    out.bytesRead = taken * x.size(1) * int64_t(sizeof(float));
    if (options.rows) {
        out.sourceTrainRows = rows;
        out.sourceTestRows = 0;
        out.allLabels.assign(size_t(rows), -1);
    }
    return out;
}

/// The rows of a file as read: their numbers, their categories' values and their labels' values.
struct ReadRows {
    RawRows raw;
    std::vector<int64_t> labelIds;
    std::vector<std::string> labelValues;
    int64_t rows = 0, badRows = 0;
    size_t nextSelected = 0;
};

ReadRows readRows(const std::string& path, const std::string& text, const SourceOptions& options,
                  const CsvLayout& layout, const ColumnPlan& plan, size_t columns) {
    ReadRows read;
    read.raw.categories.resize(plan.categorical.size());
    auto columnName = [&](size_t i) {
        return layout.names.empty() ? "column " + std::to_string(i)
                                    : "column '" + plan.keys[i] + "' (" + std::to_string(i) + ")";
    };
    std::unordered_map<std::string, int64_t> labelIdOf;
    // With a selection every row's label is read (the classes are the whole file's) but only the
    // selected rows' features are parsed.
    const std::vector<int64_t>* selected = options.rows ? &options.rows->train : nullptr;
    std::vector<std::string_view> fields;
    CsvReader reader(path, text, options.delimiter);
    for (size_t i = 0; i < layout.skip; ++i)
        reader.next(fields);
    const bool skipBad = options.onBadRows == "skip";
    if (skipBad && selected && !selected->empty())
        throw ConfigError(path + ": --on-bad-rows skip reads the file whole, not some of its rows (a process's "
                                 "share, a chunk): leave it out, or fix the rows");
    auto& features = read.raw.numbers;
    while ((options.limit <= 0 || read.rows < options.limit) && reader.next(fields)) {
        const auto where = [&] { return path + ":" + std::to_string(reader.line()) + ": "; };
        if (fields.size() != columns)
            throw DataError(where() + "expected " + std::to_string(columns) + " fields, found " +
                            std::to_string(fields.size()));
        const bool wanted = !selected ||
                            (read.nextSelected < selected->size() && (*selected)[read.nextSelected] == read.rows);
        if (wanted && selected)
            ++read.nextSelected;
        const size_t rowStart = features.size();
        bool bad = false;
        for (size_t j = 0; j < plan.features.size() && wanted && !bad; ++j) {
            const size_t i = plan.features[j];
            if (plan.category[i] >= 0)
                continue;
            float value = 0;
            if (!parseNumber(fields[i], value))
                throw DataError(where() + columnName(i) + ": '" + std::string(fields[i]) + "' is not a number" +
                                (plan.encoded && options.encoding
                                     ? std::string()
                                     : " (--categorical " + plan.keys[i] + " reads the column as categories)"));
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
            ++read.badRows;
            continue;
        }
        for (size_t k = 0; k < plan.categorical.size(); ++k)
            read.raw.categories[k].add(fields[plan.categorical[k]]);
        ++read.rows;
        if (plan.label == kNoLabel)
            continue;
        const auto label = std::string(trim(fields[plan.label]));
        if (label.empty())
            throw DataError(where() + columnName(plan.label) + ": empty label");
        auto [it, added] = labelIdOf.try_emplace(label, static_cast<int64_t>(read.labelValues.size()));
        if (added)
            read.labelValues.push_back(label);
        read.labelIds.push_back(it->second);
    }
    if (read.rows == 0)
        throw DataError(path + ": no data rows" + (layout.names.empty() ? "" : " below the header"));
    if (selected && read.nextSelected != selected->size())
        throw InternalError(path + ": row " + std::to_string((*selected)[read.nextSelected]) + " selected of " +
                            std::to_string(read.rows));
    return read;
}

} // namespace

int64_t ColumnEncoding::width() const {
    int64_t w = 0;
    for (const auto& c : columns)
        w += c.categorical ? int64_t(c.categories.size()) : 1;
    return w;
}

std::vector<std::string> ColumnEncoding::featureNames() const {
    std::vector<std::string> out;
    for (const auto& c : columns) {
        if (!c.categorical)
            out.push_back(c.name);
        for (const auto& v : c.categories)
            out.push_back(c.name + "=" + v);
    }
    return out;
}

std::string ColumnEncoding::describe() const {
    std::vector<std::string> numbers;
    std::string out;
    for (const auto& c : columns) {
        if (!c.categorical)
            numbers.push_back(c.name);
        else
            out += (out.empty() ? "" : "; ") + c.name + ": " +
                   countText(int64_t(c.categories.size()), "category", "categories") + " (" + joinNames(c.categories) +
                   ")";
    }
    if (!numbers.empty())
        out += (out.empty() ? "" : "; ") + countText(int64_t(numbers.size()), "number") + " (" + joinNames(numbers) +
               ")";
    return out;
}

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
    const ColumnPlan plan = planColumns(path, text, options, layout, columns);
    auto read = readRows(path, text, options, layout, plan, columns);
    const std::vector<int64_t>* selected = options.rows ? &options.rows->train : nullptr;
    const int64_t rows = read.rows;
    const int64_t taken = selected ? static_cast<int64_t>(selected->size()) : rows;

    std::vector<std::string> notes = layout.notes;
    at::Tensor x;
    ColumnEncoding encoding;
    if (plan.encoded) {
        std::vector<std::vector<int64_t>> positionOf;
        encoding = fitEncoding(path, options, plan, read.raw, rows, positionOf);
        x = encodeRows(plan, encoding, read.raw, positionOf, selected, taken);
        noteEncoding(path, plan, encoding, read.raw, positionOf, !(options.encoding && !options.encoding->empty()),
                     notes);
    } else {
        x = torch::from_blob(read.raw.numbers.data(), {taken, int64_t(plan.features.size())}, torch::kFloat32).clone();
    }
    std::vector<std::string> featureNames;
    if (!encoding.empty())
        featureNames = encoding.featureNames();
    else if (!layout.names.empty())
        for (const size_t i : plan.features)
            featureNames.push_back(plan.keys[i]);

    if (plan.label == kNoLabel) {
        auto out = unlabeledCsv(path, x, rows, taken, options);
        out.badRows = read.badRows;
        out.featureNames = std::move(featureNames);
        out.encoding = std::move(encoding);
        out.notes = std::move(notes);
        return out;
    }
    const std::string labelName = layout.names.empty()
                                      ? "column " + std::to_string(plan.label)
                                      : "column '" + plan.keys[plan.label] + "' (" + std::to_string(plan.label) + ")";
    const EncodedLabels encoded = encodeLabels(path, read.labelValues, read.labelIds, labelName, layout.classNames,
                                               notes);
    LoadedSource out;
    const auto labels = encoded.indices.contiguous();
    out.train = Dataset(reshapeFeatures(x, options.shape, path),
                        selected
                            ? labels.index_select(0, torch::tensor(at::ArrayRef<int64_t>(*selected), torch::kInt64))
                            : labels.clone(),
                        encoded.classNames);
    out.rowsRead = taken;
    out.bytesRead = taken * x.size(1) * int64_t(sizeof(float));
    out.badRows = read.badRows;
    out.featureNames = std::move(featureNames);
    out.encoding = std::move(encoding);
    out.notes = std::move(notes);
    if (selected) {
        out.sourceTrainRows = rows;
        out.sourceTestRows = 0;
        out.allLabels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + rows);
    }
    return out;
}

} // namespace mppdl::data
