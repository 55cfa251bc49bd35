// mppdl arch, data show, devices: look at things without training.

#include "cli_common.h"
#include "cli_project.h"

#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/dataset.h"
#include "mppdl/data/memory.h"
#include "mppdl/data/distribution.h"
#include "mppdl/data/preview.h"
#include "mppdl/model/analysis.h"
#include "mppdl/model/layers.h"
#include "mppdl/train/devices.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <numeric>

namespace mppdl::cli {

namespace {

using Align = TextTable::Align;

std::string shapeText(const std::vector<int64_t>& shape) { return data::formatShape(shape); }

int archShow(const std::string& projectFlag, const std::string& what) {
    // An invalid file is shown with its problems: only a project's versions are validated here.
    const bool file = what.find('@') == std::string::npos && projectFlag.empty();
    model::Architecture arch;
    std::string where;
    session::ProjectArchitecture found;
    try {
        found = architectureFor(projectFlag, what);
        arch = found.architecture;
    } catch (const ConfigError&) {
        if (!file)
            throw;
        arch = model::loadArchitecture(resolveArchitecture(what));
    }
    where = found.version.version > 0
                ? found.version.name + "@" + std::to_string(found.version.version) + " of the project"
                : resolveArchitecture(what);
    const auto analysis = model::analyze(arch);
    std::cout << arch.name << " (" << where << ")\n";
    if (!arch.description.empty())
        std::cout << arch.description << "\n";
    std::cout << '\n';
    if (!analysis.ok()) {
        std::cerr << "mppdl: error: " << where << ": " << analysis.problems.size() << " problem"
                  << (analysis.problems.size() == 1 ? "" : "s") << ":\n";
        for (const auto& p : analysis.problems)
            std::cerr << "  " << (p.where.empty() ? "" : p.where + ": ") << p.message << '\n';
        return exitCode(ErrorKind::Config);
    }
    if (analysis.inputLayout == "hwc" && analysis.inputShape.size() == 3) {
        const auto& in = analysis.inputShape;
        std::cout << "input rows kept height x width x channels (layout hwc, Keras' channels_last): "
                  << shapeText({in[1], in[2], in[0]}) << ", transposed to " << shapeText(in)
                  << " when read; shapes below are channels first\n\n";
    }
    bool dag = false;
    for (const auto& l : arch.layers)
        dag = dag || l.inputs.size() > 1 || (l.type == "Add" || l.type == "Concat");
    std::vector<std::string> header = {"#", "layer", "type"};
    std::vector<Align> align = {Align::Right, Align::Left, Align::Left};
    if (dag) {
        header.push_back("inputs");
        align.push_back(Align::Left);
    }
    for (const char* h : {"output shape", "params", "FLOPs"}) {
        header.push_back(h);
        align.push_back(h == std::string("output shape") ? Align::Left : Align::Right);
    }
    TextTable table(header, align);
    int index = 0;
    for (const auto& l : analysis.layers) {
        std::vector<std::string> row = {std::to_string(++index), l.name, l.type};
        if (dag) {
            std::string inputs;
            for (const auto& layer : arch.layers)
                if (layer.name == l.name)
                    for (const auto& in : layer.inputs)
                        inputs += (inputs.empty() ? "" : ",") + in;
            row.push_back(inputs);
        }
        row.push_back(shapeText(l.outputShape));
        row.push_back(groupThousands(l.params));
        row.push_back(groupThousands(l.flops));
        table.addRow(row);
    }
    table.addRule();
    std::vector<std::string> total = {"", "total", ""};
    if (dag)
        total.push_back("");
    total.push_back("in " + shapeText(analysis.inputShape) + " -> out " + shapeText(analysis.outputShape));
    total.push_back(groupThousands(analysis.totalParams));
    total.push_back(groupThousands(analysis.totalFlops));
    table.addRow(total);
    std::cout << table.render();
    std::cout << "\n"
              << humanCount(double(analysis.totalParams)) << " parameters ("
              << humanCount(double(analysis.totalParams) * 4) << "B as float32), "
              << humanCount(double(analysis.totalFlops)) << "FLOPs per sample forward\n";
    return 0;
}

int archLayers() {
    TextTable table({"type", "category", "inputs", "parameters (default)", "description"});
    for (const auto& t : model::layerTypes()) {
        std::string params;
        for (const auto& p : t.params)
            params += (params.empty() ? "" : ", ") + std::string(p.name) +
                      (!p.defaultValue                         ? std::string(" (required)")
                       : std::string(p.defaultValue) == "null" ? std::string(" (derived)")
                                                               : "=" + std::string(p.defaultValue));
        const std::string inputs = t.maxInputs < 0 ? std::to_string(t.minInputs) + "+"
                                   : t.minInputs == t.maxInputs
                                       ? std::to_string(t.minInputs)
                                       : std::to_string(t.minInputs) + "-" + std::to_string(t.maxInputs);
        table.addRow({t.name, t.category, inputs, params, t.description});
    }
    std::cout << table.render();
    return 0;
}

/// A grayscale ramp, darkest first: one character per pixel, two wide to keep the aspect.
/// `pixels` is a RowPreview's, H x W x C.
std::string asciiImage(const std::vector<uint8_t>& pixels, const std::vector<int64_t>& shape) {
    static const char ramp[] = " .:-=+*#%@";
    const int64_t channels = shape[0], height = shape[1], width = shape[2];
    std::vector<float> gray(size_t(height * width), 0.0f); // channels to one
    for (size_t p = 0; p < gray.size(); ++p) {
        for (int64_t c = 0; c < channels; ++c)
            gray[p] += float(pixels[p * size_t(channels) + size_t(c)]);
        gray[p] /= float(channels);
    }
    const auto [lo, hi] = std::minmax_element(gray.begin(), gray.end());
    const float low = *lo, range = std::max(*hi - *lo, 1e-6f);
    std::string out;
    for (int64_t r = 0; r < height; ++r) {
        out += "  |";
        for (int64_t c = 0; c < width; ++c) {
            const char ch = ramp[std::min(9, int((gray[size_t(r * width + c)] - low) / range * 9.999f))];
            out += ch;
            out += ch;
        }
        out += "|\n";
    }
    return out;
}

/// "random, hash, round-robin, by-label", from the engine's table.
std::string distributionPolicyNames() {
    std::string names;
    for (const auto& p : data::distributionPolicies())
        names += (names.empty() ? "" : ", ") + std::string(p.name);
    return names;
}

/// Per segment: rows, share of all rows, and the rows of each class; then the skew.
void printDistribution(const data::Dataset& train, const data::DistributionSummary& summary, const std::string& policy,
                       uint64_t seed) {
    const size_t segments = summary.segments.size();
    // One column per class while that stays readable; beyond that only how many classes a segment has.
    constexpr int64_t kMaxClassColumns = 20;
    const int64_t classes = train.numClasses();
    const bool perClass = classes <= kMaxClassColumns;
    std::vector<std::string> header = {"segment", "rows", "share", "classes"};
    if (perClass)
        for (int64_t c = 0; c < classes; ++c)
            header.push_back(std::to_string(c));
    std::vector<Align> align(header.size(), Align::Right);
    TextTable table(header, align);
    auto percent = [&](int64_t count) {
        char share[16];
        std::snprintf(share, sizeof share, "%.1f%%",
                      100.0 * double(count) / double(std::max<int64_t>(1, train.size())));
        return std::string(share);
    };
    std::vector<int64_t> totals(static_cast<size_t>(classes), 0);
    for (size_t s = 0; s < summary.segments.size(); ++s) {
        const auto& seg = summary.segments[s];
        const auto present = std::count_if(seg.classCounts.begin(), seg.classCounts.end(),
                                           [](int64_t v) { return v > 0; });
        std::vector<std::string> row = {std::to_string(s), groupThousands(seg.rows), percent(seg.rows),
                                        std::to_string(present)};
        for (size_t c = 0; c < seg.classCounts.size(); ++c) {
            totals[c] += seg.classCounts[c];
            if (perClass)
                row.push_back(groupThousands(seg.classCounts[c]));
        }
        table.addRow(row);
    }
    table.addRule();
    const auto presentTotal = std::count_if(totals.begin(), totals.end(), [](int64_t v) { return v > 0; });
    std::vector<std::string> total = {"total", groupThousands(train.size()), percent(train.size()),
                                      std::to_string(presentTotal)};
    if (perClass)
        for (const auto t : totals)
            total.push_back(groupThousands(t));
    table.addRow(total);

    std::cout << "\n" << segments << (segments == 1 ? " segment" : " segments") << ", distributed by " << policy;
    if (const auto* p = data::findDistributionPolicy(policy); p && p->usesSeed)
        std::cout << " (seed " << seed << ")";
    std::cout << (perClass ? "; rows of each class (#) per segment" : "") << ":\n" << table.render();
    char skew[64];
    std::snprintf(skew, sizeof skew, "skew (max/mean rows): %.2f\n", summary.skew);
    std::cout << skew;
}

struct DataShowFlags {
    SourceFlags source;
    int rows = -1; ///< -1: 2 images, or 5 rows of other data
    int segments = 1;
    std::string distributeBy = "random";
    uint64_t seed = 0;
    bool segmentsGiven = false;
    std::string memoryBudget;

    /// Whether a run (of one process) would keep the prepared rows in memory or out of core.
    std::string keptText(const data::Schema& schema) const {
        const int64_t bytes = data::preparedBytes(schema.trainRows + schema.testRows, schema.sampleShape);
        const auto budget = data::memoryBudget(memoryBudget);
        return humanBytes(double(bytes)) +
               " prepared (float32): " + (bytes <= budget.bytes ? "trains in memory" : "trains out of core") +
               ", budget " + humanBytes(double(budget.bytes)) + " (" + budget.why + ")";
    }

    int run() {
        if (source.location.empty())
            throw ConfigError("data show needs a source: mppdl data show SOURCE (or --data SOURCE)");
        auto options = source.options();
        const auto* policy = data::findDistributionPolicy(distributeBy);
        if (segmentsGiven && policy && policy->fromSource)
            options.segments = segments; // read as the database's shards
        const auto loaded = data::loadSource(source.location, options);
        const auto schema = loaded.schema();
        // Distributed first, so that a distribution that cannot be made fails before any output.
        data::DistributionSummary distribution;
        if (segmentsGiven)
            distribution = data::previewDistribution(loaded.train, segments, distributeBy, seed);
        for (const auto& note : loaded.notes)
            std::cout << "note     " << note << '\n';
        std::cout << "source   " << loaded.kind << "  " << loaded.location << '\n'
                  << "samples  " << shapeText(schema.sampleShape) << " " << schema.dtype
                  << (loaded.layout == "hwc"   ? " (kept height x width x channels: layout hwc, transposed at load)"
                      : loaded.layout == "chw" ? " (channels x height x width: layout chw)"
                                               : "")
                  << '\n'
                  << "rows     " << groupThousands(schema.trainRows) << " train"
                  << (schema.testRows > 0 ? ", " + groupThousands(schema.testRows) + " test"
                                          : std::string(" (no test split)"))
                  << '\n'
                  << "classes  " << schema.classNames.size() << '\n'
                  << "memory   " << keptText(schema) << "\n\n";

        const auto trainStats = data::computeStatistics(loaded.train);
        data::Statistics testStats;
        if (!loaded.test.empty())
            testStats = data::computeStatistics(loaded.test);
        TextTable classes({"#", "class", "train", "share", "test"},
                          {Align::Right, Align::Left, Align::Right, Align::Right, Align::Right});
        for (size_t c = 0; c < schema.classNames.size(); ++c) {
            const int64_t count = c < trainStats.classCounts.size() ? trainStats.classCounts[c] : 0;
            char share[16];
            std::snprintf(share, sizeof share, "%.1f%%",
                          100.0 * double(count) / double(std::max<int64_t>(1, schema.trainRows)));
            classes.addRow({std::to_string(c), schema.classNames[c], groupThousands(count), share,
                            c < testStats.classCounts.size() ? groupThousands(testStats.classCounts[c]) : "-"});
        }
        std::cout << classes.render() << '\n';

        char stats[200];
        std::snprintf(stats, sizeof stats, "values   min %.4g, max %.4g", trainStats.min, trainStats.max);
        std::cout << stats;
        for (size_t c = 0; c < trainStats.channelMean.size() && c < 4; ++c) {
            std::snprintf(stats, sizeof stats, "%s %s %zu mean %.4g std %.4g", c == 0 ? ";" : ",",
                          schema.sampleShape.size() == 1 ? "feature" : "channel", c, trainStats.channelMean[c],
                          trainStats.channelStd[c]);
            std::cout << stats;
        }
        std::cout << "\n\n";

        const int64_t wanted = rows >= 0 ? rows : data::isImageShape(schema.sampleShape) ? 2 : 5;
        const int64_t show = std::min<int64_t>(wanted, loaded.train.size());
        if (data::isImageShape(schema.sampleShape)) {
            std::vector<int64_t> first(static_cast<size_t>(show));
            std::iota(first.begin(), first.end(), 0);
            for (const auto& row : data::previewRowsAt(loaded.train, first, 0))
                std::cout << "row " << row.row << ": class " << row.label << " ("
                          << schema.classNames[size_t(row.label)] << ")\n"
                          << asciiImage(row.pixels, schema.sampleShape);
        } else {
            int64_t features = 1;
            for (const auto d : schema.sampleShape)
                features *= d;
            const int64_t cols = std::min<int64_t>(features, 8);
            std::vector<std::string> header = {"row"};
            // The features' own names where the source has them (a header, "region=south").
            const auto& names = loaded.featureNames;
            for (int64_t c = 0; c < cols; ++c)
                header.push_back(int64_t(names.size()) == features ? names[size_t(c)] : "x" + std::to_string(c));
            if (cols < features)
                header.push_back("...");
            header.push_back("label");
            TextTable preview(header, std::vector<Align>(header.size(), Align::Right));
            std::vector<int64_t> first(static_cast<size_t>(show));
            std::iota(first.begin(), first.end(), 0);
            for (const auto& r : data::previewRowsAt(loaded.train, first, int(cols))) {
                std::vector<std::string> row = {std::to_string(r.row)};
                for (const double value : r.values) {
                    char v[32];
                    std::snprintf(v, sizeof v, "%.4g", float(value));
                    row.push_back(v);
                }
                if (cols < features)
                    row.push_back("...");
                row.push_back(schema.classNames[size_t(r.label)]);
                preview.addRow(row);
            }
            std::cout << preview.render();
        }
        if (segmentsGiven)
            printDistribution(loaded.train, distribution, distributeBy, seed);
        return 0;
    }
};

int devices() {
    TextTable table({"device", "description", "threads", "memory", "free"},
                    {Align::Left, Align::Left, Align::Right, Align::Right, Align::Right});
    for (const auto& d : train::listDevices()) {
        auto gib = [](int64_t bytes) {
            if (bytes <= 0)
                return std::string("-");
            char b[32];
            std::snprintf(b, sizeof b, "%.1f GiB", double(bytes) / (1024.0 * 1024.0 * 1024.0));
            return std::string(b);
        };
        table.addRow({d.name, d.description, d.threads > 0 ? std::to_string(d.threads) : "-", gib(d.totalMemory),
                      gib(d.freeMemory)});
    }
    std::cout << table.render() << train::libraryVersions() << '\n';
    return 0;
}

} // namespace

void registerInspectCommands(CLI::App& app, Command& selected) {
    auto* arch = app.add_subcommand("arch", "look at network architectures; list, add and version them in a project");
    arch->require_subcommand(1);
    auto archName = std::make_shared<std::string>();
    auto archProject = std::make_shared<std::string>();
    auto* show = arch->add_subcommand("show", "layers with output shapes, parameters and FLOPs; problems if invalid");
    show->add_option("architecture", *archName,
                     "NAME@VERSION or a name of the project's, a JSON file, or the name of a bundled architecture")
        ->required();
    show->add_option("--project", *archProject, "project file (default: the one *.mppdl here, if any)");
    show->callback([&selected, archName, archProject] {
        selected = [archName, archProject] { return archShow(*archProject, *archName); };
    });
    auto* layers = arch->add_subcommand("layers", "the layer types an architecture can use, with their parameters");
    layers->callback([&selected] { selected = [] { return archLayers(); }; });
    auto* bundled = arch->add_subcommand("bundled", "the architectures that ship with mppdl");
    bundled->callback([&selected] {
        selected = [] {
            for (const auto& n : bundledArchitectures())
                std::cout << n << "  (" << resolveArchitecture(n) << ")\n";
            return 0;
        };
    });

    auto* dataCmd = app.add_subcommand("data", "look at data sources");
    dataCmd->require_subcommand(1);
    auto dataFlags = std::make_shared<DataShowFlags>();
    auto* dataShow = dataCmd->add_subcommand("show", "schema, class counts, statistics and a preview of a source");
    // SOURCE, or --data SOURCE as train takes it.
    dataShow->add_option("source", dataFlags->source.location, "the data source (see train --help for kinds)");
    dataFlags->source.add(*dataShow, false);
    dataShow->add_option("--rows", dataFlags->rows, "rows to preview (default: 2 images, or 5 rows of other data)")
        ->check(CLI::Range(0, 1 << 20));
    dataShow->add_option("--memory-budget", dataFlags->memoryBudget,
                         "the budget to say whether a run keeps the prepared rows in memory (see train --help)");
    auto* segments = dataShow
                         ->add_option("--segments", dataFlags->segments,
                                      "spread the training rows over N segments and show rows and classes per segment")
                         ->check(CLI::Range(1, 1000000));
    dataShow
        ->add_option("--distribute-by", dataFlags->distributeBy,
                     "how rows go to segments: " + distributionPolicyNames())
        ->capture_default_str()
        ->check(
            [](const std::string& name) {
                return data::findDistributionPolicy(name)
                           ? std::string()
                           : "unknown distribution policy '" + name + "'; known policies: " + distributionPolicyNames();
            },
            "POLICY");
    std::string policies = "distribution policies (--distribute-by):";
    for (const auto& p : data::distributionPolicies())
        policies += "\n  " + std::string(p.name) +
                    std::string(std::max<size_t>(1, 13 - std::string(p.name).size()), ' ') + p.description;
    dataShow->footer(policies);
    dataShow->add_option("--seed", dataFlags->seed, "seed of the random distribution")->capture_default_str();
    dataShow->callback([&selected, dataFlags, segments] {
        dataFlags->segmentsGiven = segments->count() > 0;
        selected = [dataFlags] { return dataFlags->run(); };
    });

    auto* dev = app.add_subcommand("devices", "the CPU threads and every GPU libtorch sees, with memory");
    dev->callback([&selected] { selected = [] { return devices(); }; });
}

} // namespace mppdl::cli
