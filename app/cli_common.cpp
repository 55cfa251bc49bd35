#include "cli_common.h"

#include "mppdl/core/build_info.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#ifdef MPPDL_WITH_POSTGRES
#include "mppdl/data/catalog.h"
#endif

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <unistd.h>

namespace fs = std::filesystem;

namespace mppdl::cli {

std::atomic<bool>& cancelFlag() {
    static std::atomic<bool> flag{false};
    return flag;
}

namespace {

void onInterrupt(int) {
    if (cancelFlag().exchange(true)) {
        // Second Ctrl-C: the user wants out now.
        std::signal(SIGINT, SIG_DFL);
        std::raise(SIGINT);
    }
    const char msg[] = "\nmppdl: stopping after this minibatch (Ctrl-C again to kill)\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
}

std::vector<int64_t> parseShape(const std::string& text) {
    std::vector<int64_t> shape;
    std::string part;
    for (size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || text[i] == ',' || text[i] == 'x') {
            try {
                size_t used = 0;
                const long long v = std::stoll(part, &used);
                if (used != part.size() || v <= 0)
                    throw std::invalid_argument(part);
                shape.push_back(v);
            } catch (const std::exception&) {
                throw ConfigError("--shape '" + text + "': expected positive integers like 1,28,28");
            }
            part.clear();
        } else {
            part += text[i];
        }
    }
    return shape;
}

/// "a,b,,c" as {"a", "b", "c"}.
std::vector<std::string> commaList(const std::string& text) {
    std::vector<std::string> out;
    for (size_t begin = 0; begin < text.size();) {
        const size_t comma = std::min(text.find(',', begin), text.size());
        if (comma > begin)
            out.push_back(text.substr(begin, comma - begin));
        begin = comma + 1;
    }
    return out;
}

} // namespace

void installSignalHandlers() {
    std::signal(SIGINT, onInterrupt);
#ifdef MPPDL_WITH_POSTGRES
    data::setReadCancelFlag(&cancelFlag()); // a Ctrl-C cancels a COPY on the server too
#endif
}

void SourceFlags::add(CLI::App& c, bool required) {
    auto* data = c.add_option("--data", location,
                              "data source: an IDX directory or file, a CSV/CSV.gz file, a .npy file, "
                              "an image folder (one subfolder per class), or a PostgreSQL table or query: pg:TABLE, "
                              "pg:(SELECT ...)");
    if (required)
        data->required();
    std::string kinds = "auto";
    for (const auto& k : data::sourceKinds())
        kinds += std::string("|") + k.name;
    c.add_option("--kind", kind, "source kind: " + kinds)->capture_default_str();
    c.add_option("--label", label,
                 "CSV: label column: digits are a 0-based index, other text a header name (name:4 and index:4 "
                 "force either; default: the last column); NPY: labels file; pg: label column (default: label). "
                 "predict needs none: rows without it are scored, rows with it also evaluated");
    c.add_option("--shape", shape, "per-sample shape, e.g. 1,28,28 (CSV/NPY reshape, image size C,H,W)");
    c.add_option("--delimiter", delimiter, "CSV: field separator, one character or 'tab'")->capture_default_str();
    c.add_flag("--header", header, "CSV: the first row is a header (default: detect)");
    c.add_flag("--no-header", noHeader, "CSV: the first row is data");
    c.add_option("--skip-rows", skipRows, "CSV: records to pass over before the header or the data")
        ->capture_default_str()
        ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
    c.add_option("--limit", limit, "use only the first N training rows (0 = all)")->capture_default_str();
    c.add_option("--conn", connection, std::string("pg: ") + kConnectionHelp);
    c.add_option("--features", features,
                 "feature columns, comma-separated (CSV: names or 0-based indices, the --label rule; default every "
                 "column but the label; pg: one real[]/bytea column or numeric columns, default the array or bytea "
                 "column, else every numeric column)");
    c.add_option("--ignore", ignore, "columns that are not features (an id, a note), comma-separated");
    c.add_option("--categorical", categorical,
                 "CSV: columns read as categories, one 0/1 feature per value seen in the training rows (a column "
                 "of text is one without being named), comma-separated");
    c.add_option("--id", id, "pg: id column; rows are read in its order");
    c.add_option("--distributed-by", distributedBy,
                 "pg: distribution key for --distribute-by database: segment = hash(key) mod N (default: --id; "
                 "a Greenplum table without one is read by gp_segment_id)");
    c.add_option("--bytea", bytea, "pg: what a bytea feature column holds: uint8|float32")->capture_default_str();
    c.add_option("--layout", layout,
                 "where an image sample's channels are in the rows: chw (channels first) or hwc (height x width x "
                 "channels, as Keras and MADlib keep them; transposed once, at load; --shape then gives the rows' "
                 "shape as kept, H,W,C). Default chw, or hwc for an architecture imported from Keras when --shape "
                 "is not given")
        ->check(CLI::IsMember({"chw", "hwc"}));
    c.add_option("--format", tableFormat,
                 "pg: rows (one sample a row) or madlib-packed (the output of MADlib's training_preprocessor_dl: "
                 "packed buffers, one-hot labels and a TABLE_summary table); default: detected")
        ->check(CLI::IsMember({"rows", "madlib-packed"}));
    c.add_option("--on-bad-rows", onBadRows,
                 "rows with a NaN or infinite feature: fail (the error names the row's id and the column) or skip "
                 "(left out and counted)")
        ->capture_default_str();
}

data::SourceOptions SourceFlags::options() const {
    data::SourceOptions o;
    o.kind = kind;
    o.label = label;
    if (header && noHeader)
        throw ConfigError("--header and --no-header contradict each other");
    if (delimiter == "tab" || delimiter == "\\t")
        o.delimiter = '\t';
    else if (delimiter.size() == 1)
        o.delimiter = delimiter[0];
    else
        throw ConfigError("--delimiter '" + delimiter + "': expected one character or 'tab'");
    if (header)
        o.header = true;
    if (noHeader)
        o.header = false;
    if (!shape.empty())
        o.shape = parseShape(shape);
    if (limit < 0)
        throw ConfigError("--limit must be >= 0");
    o.limit = limit;
    o.connection = connection;
    o.features = commaList(features);
    o.ignore = commaList(ignore);
    o.categorical = commaList(categorical);
    o.id = id;
    o.bytea = bytea;
    o.onBadRows = onBadRows;
    o.skipRows = skipRows;
    o.distributedBy = distributedBy;
    o.layout = layout;
    o.tableFormat = tableFormat;
    return o;
}

void printEvaluation(const Evaluation& e) {
    char line[160];
    std::snprintf(line, sizeof line, "%s: accuracy %.2f%%  loss %.4f  (%s samples)\n", e.split.c_str(),
                  100.0 * e.accuracy, e.loss, groupThousands(e.samples).c_str());
    std::cout << line << '\n';

    const auto k = size_t(e.numClasses());
    std::vector<std::string> header = {"#", "class", "accuracy", "samples"};
    std::vector<TextTable::Align> align = {TextTable::Align::Right, TextTable::Align::Left, TextTable::Align::Right,
                                           TextTable::Align::Right};
    for (size_t p = 0; p < k; ++p) {
        header.push_back(std::to_string(p));
        align.push_back(TextTable::Align::Right);
    }
    TextTable table(header, align);
    for (size_t t = 0; t < k; ++t) {
        char acc[32];
        std::snprintf(acc, sizeof acc, "%.1f%%", 100.0 * e.perClassAccuracy[t]);
        std::vector<std::string> row = {std::to_string(t), e.classNames[t], acc, groupThousands(e.perClassCount[t])};
        for (size_t p = 0; p < k; ++p)
            row.push_back(std::to_string(e.confusion[t * k + p]));
        table.addRow(row);
    }
    std::cout << "per-class accuracy and confusion matrix (rows: true class, columns: predicted)\n" << table.render();
}

std::string evaluationJson(const Evaluation& e) {
    nlohmann::json j;
    j["split"] = e.split;
    j["samples"] = e.samples;
    j["accuracy"] = e.accuracy;
    j["loss"] = e.loss;
    j["classes"] = e.classNames;
    j["per_class_accuracy"] = e.perClassAccuracy;
    const auto k = size_t(e.numClasses());
    auto cm = nlohmann::json::array();
    for (size_t t = 0; t < k; ++t)
        cm.push_back(std::vector<int64_t>(e.confusion.begin() + long(t * k), e.confusion.begin() + long((t + 1) * k)));
    j["confusion_matrix"] = cm;
    return j.dump();
}

} // namespace mppdl::cli
