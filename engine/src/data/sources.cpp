#include "mppdl/data/source.h"

#include "data/formats.h"
#include "data/seeded.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>

namespace mppdl::data {

const std::vector<SourceKind>& sourceKinds() {
    // Auto-detection asks each kind in this order; the directory layouts of idx and npy are more
    // specific than "a folder of folders", so images comes last.
    static const std::vector<SourceKind> kinds = {
#ifdef MPPDL_WITH_POSTGRES
        {"pg",
         "a PostgreSQL or Greenplum table or query, pg:TABLE, pg:SCHEMA.TABLE or pg:(SELECT ...) (--conn, "
         "--features, --label, --id, --distributed-by)",
         &detectPostgres, &loadPostgres, /*readsFiles=*/false},
#endif
        {"idx", "IDX files of the MNIST family (.gz or raw): a directory with train-/t10k- files, or an images file",
         &detectIdx, &loadIdx},
        {"csv", "CSV (.csv or .csv.gz): numeric feature columns and one label column", &detectCsv, &loadCsv},
        {"npy", "NumPy .npy: features and labels files, or a directory with x_train.npy/y_train.npy", &detectNpy,
         &loadNpy},
        {"images", "image folders (PNG, JPEG, BMP): one subfolder per class, optionally under train/ and test/",
         &detectImageFolder, &loadImageFolder},
    };
    return kinds;
}

bool readsFiles(const std::string& kind) {
    for (const auto& k : sourceKinds())
        if (kind == k.name)
            return k.readsFiles;
    return true;
}

#ifndef MPPDL_WITH_POSTGRES
std::string connectionWithoutPassword(const std::string& connection) {
    // Without libpq nothing reads connections; refuse to echo one that might hold a password.
    return connection.empty() ? connection : "(a connection string)";
}
#endif

Schema LoadedSource::schema() const {
    Schema s;
    s.sampleShape = train.sampleShape();
    s.dtype = train.dtype();
    s.classNames = train.classNames();
    s.trainRows = train.size();
    s.testRows = test.size();
    return s;
}

namespace {

std::string kindNames() {
    std::string names;
    for (const auto& kind : sourceKinds())
        names += (names.empty() ? "" : ", ") + std::string(kind.name);
    return names;
}

std::string firstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

} // namespace

namespace {

/// Rows with a NaN or infinite feature (a table's real[], a .npy's floats): refused naming the
/// first of them (by its id where the source has ids) and its feature, or left out with
/// onBadRows "skip". Integer features (pixels) cannot hold either.
void checkFinite(LoadedSource& loaded, const SourceOptions& options, const std::string& location) {
    const bool skip = options.onBadRows == "skip";
    for (Dataset* split : {&loaded.train, &loaded.test}) {
        const auto& x = split->features();
        if (!x.defined() || split->empty() || !at::isFloatingType(x.scalar_type()))
            continue;
        const auto flat = x.reshape({split->size(), -1});
        const auto badRows = torch::logical_not(torch::isfinite(flat)).any(1);
        const int64_t bad = badRows.sum().item<int64_t>();
        if (bad == 0)
            continue;
        const bool train = split == &loaded.train;
        if (!skip) {
            const int64_t r = badRows.nonzero()[0][0].item<int64_t>();
            const int64_t k = torch::logical_not(torch::isfinite(flat[r])).nonzero()[0][0].item<int64_t>();
            const float value = flat[r][k].item<float>();
            const std::string row = train && size_t(r) < loaded.ids.size()
                                        ? "the row whose " + (options.id.empty() ? "id" : options.id) + " is " +
                                              loaded.ids[size_t(r)]
                                        : (train ? "training row " : "test row ") + std::to_string(r + 1);
            const std::string feature = size_t(k) < loaded.featureNames.size()
                                            ? "column '" + loaded.featureNames[size_t(k)] + "'"
                                            : "feature " + std::to_string(k) + " (0-based)";
            throw DataError(location + ": " + row + ": " + feature + " is " + (std::isnan(value) ? "NaN" : "infinite") +
                            (bad > 1 ? " (" + std::to_string(bad) + " such rows)" : std::string()) +
                            "; --on-bad-rows skip leaves such rows out");
        }
        if (options.rows)
            throw ConfigError(location + ": --on-bad-rows skip reads the source whole, not some of its rows (a "
                                         "process's share, a chunk): leave it out, or fix the rows");
        const auto keep = torch::logical_not(badRows).nonzero().reshape({-1});
        if (train && !loaded.ids.empty()) {
            std::vector<std::string> ids;
            const auto* k = keep.data_ptr<int64_t>();
            for (int64_t i = 0; i < keep.numel(); ++i)
                ids.push_back(std::move(loaded.ids[size_t(k[i])]));
            loaded.ids = std::move(ids);
        }
        *split = split->select(keep);
        loaded.badRows += bad;
    }
}

int64_t product(const std::vector<int64_t>& shape) {
    int64_t n = 1;
    for (const auto d : shape)
        n *= d;
    return n;
}

/// Every split's samples (those it has) reshaped to `shape`.
void reshapeSplits(LoadedSource& loaded, const std::vector<int64_t>& shape, const std::string& location) {
    for (Dataset* split : {&loaded.train, &loaded.test})
        if (split->features().defined() && split->sampleShape() != shape)
            *split = split->withFeatures(reshapeFeatures(split->features(), shape, location));
}

/// SourceOptions::layout (or the layout the source says it has, LoadedSource::layout): 3-D samples
/// kept height x width x channels are transposed, once, into the engine's channels x height x width. Flat rows (or [H,
/// W] ones of a one-channel network) read with hwc take the network's input shape as H x W x C first. IDX files and
/// image folders are decoded by mppdl itself, channels first: the layout is not theirs to say.
void applyLayout(LoadedSource& loaded, const SourceOptions& options, const std::string& location) {
    // Given, else the source's own (a MADlib table's images are channels last), else chw.
    const std::string layout = !options.layout.empty() ? options.layout : loaded.layout == "hwc" ? "hwc" : "chw";
    loaded.layout.clear();
    if (layout != "chw" && layout != "hwc")
        throw ConfigError("--layout must be chw or hwc, got '" + options.layout + "'");
    if (loaded.kind == "idx" || loaded.kind == "images") {
        loaded.layout = loaded.train.sampleShape().size() == 3 ? "chw" : "";
        return;
    }
    auto shape = loaded.train.sampleShape();
    if (product(shape) == 0) // a read of no rows that has not learnt the shape yet
        return;
    const auto& net = options.flatShape;
    if (layout == "chw") {
        if (shape.size() == 3) {
            loaded.layout = "chw";
            // Channels last is the common layout of image arrays: a likely one gets a hint.
            if (shape[2] <= 4 && shape[0] > shape[2] && shape[1] > shape[2])
                loaded.notes.push_back(location + ": samples of " + formatShape(shape) +
                                       " read channels first (layout chw); if their channels come last, --layout hwc");
        }
        return;
    }
    if (shape.size() < 3 && options.shape.empty() && net.size() == 3 && product(shape) == product(net) &&
        (shape.size() == 1 || net[0] == 1))
        shape = {net[1], net[2], net[0]};
    if (shape.size() != 3)
        throw ConfigError(location + ": --layout hwc is for images kept height x width x channels; these samples are " +
                          formatShape(loaded.train.sampleShape()));
    reshapeSplits(loaded, shape, location);
    for (Dataset* split : {&loaded.train, &loaded.test})
        if (split->features().defined() && split->sampleShape().size() == 3)
            *split = split->withFeatures(split->features().permute({0, 3, 1, 2}).contiguous());
    loaded.layout = "hwc";
    loaded.notes.push_back(location + ": samples of " + formatShape(shape) +
                           " (height x width x channels, layout hwc) " + "transposed to " +
                           formatShape({shape[2], shape[0], shape[1]}));
}

/// Flat rows whose width is the network's input size are given its shape (SourceOptions::flatShape),
/// as are [H, W] rows for a one-channel [1, H, W] network.
void shapeFlatRows(LoadedSource& loaded, const SourceOptions& options, const std::string& location) {
    if (!options.shape.empty() || options.flatShape.size() < 2)
        return;
    const auto shape = loaded.train.sampleShape();
    const int64_t wanted = product(options.flatShape);
    if (shape.empty() || shape.size() >= options.flatShape.size() || product(shape) != wanted ||
        (shape.size() > 1 && options.flatShape[0] != 1))
        return;
    reshapeSplits(loaded, options.flatShape, location);
    loaded.notes.push_back(
        location + ": rows of " + (shape.size() == 1 ? std::to_string(wanted) + " values" : formatShape(shape)) +
        " taken as " + formatShape(options.flatShape) + ", the network's input (--shape declares another)");
}

/// SourceOptions::testFraction: which of a source's n training rows are held out as its test
/// split, drawn with a seed of their own (the validation draw is taken later, of what is left).
ValidationSplit heldOutTest(int64_t n, const SourceOptions& options) {
    constexpr uint64_t kTestDraw = 0x7465737473706c74ULL; // "testsplt": not the validation draw's stream
    return splitValidation(n, options.testFraction, options.testSeed ^ kTestDraw);
}

std::vector<int64_t> mapped(const std::vector<int64_t>& through, const std::vector<int64_t>& ordinals) {
    std::vector<int64_t> out;
    out.reserve(ordinals.size());
    for (const auto o : ordinals)
        out.push_back(through.at(size_t(o)));
    return out;
}

/// The training rows of `loaded` at ascending `positions` (the caller keeps the ids that go with them).
void keepRows(const LoadedSource& loaded, Dataset& into, const std::vector<int64_t>& positions) {
    into = loaded.train.select(torch::tensor(at::ArrayRef<int64_t>(positions), torch::kInt64));
}

/// A read of a source with a test split drawn from its training rows (SourceOptions::testFraction):
/// `read` reads with the options it is given. Selections name the rows as the source with the
/// split has them (training ordinals of the rows kept, test ordinals of the rows held out) and are
/// read as the source's own ordinals; the categories of text columns are fitted without the test rows.
LoadedSource readWithHeldOutTest(const std::function<LoadedSource(const SourceOptions&)>& read,
                                 const SourceOptions& options, const std::string& location) {
    if (!(options.testFraction > 0 && options.testFraction < 1))
        throw ConfigError("--test-fraction must be in [0, 1), got " + std::to_string(options.testFraction));
    if (!options.shards.empty())
        throw ConfigError(location + ": --test-fraction draws its rows from the whole source, and this process reads "
                                     "only its own shards (the 'database' distribution over processes): hold the "
                                     "test rows out in SQL instead (pg:(SELECT ... WHERE ...))");
    SourceOptions inner = options;
    inner.testFraction = 0;
    inner.fitRows = [options](int64_t n) {
        const auto split = heldOutTest(n, options);
        if (!options.fitRows)
            return split.train;
        return mapped(split.train, options.fitRows(int64_t(split.train.size())));
    };
    auto refuseOwnTest = [&](int64_t testRows) {
        if (testRows > 0)
            throw ConfigError(location + " has a test split of its own (" + countText(testRows, "row") +
                              "): --test-fraction is for a source without one");
    };
    std::ostringstream fraction;
    fraction << options.testFraction;
    auto say = [&](LoadedSource& out, int64_t n, int64_t held) {
        out.notes.push_back(location + ": a seeded " + std::to_string(held) + " of the " + std::to_string(n) +
                            " training rows held out as the test split (--test-fraction " + fraction.str() + ")");
    };
    LoadedSource counted;
    if (options.rows) { // the row count first (a read of no rows), then the rows as the source numbers them
        inner.rows = std::make_shared<RowSelection>();
        counted = read(inner);
    }
    if (!options.rows || counted.sourceTrainRows < 0) { // a whole read (of a kind that cannot select rows)
        LoadedSource whole = options.rows ? std::move(counted) : read(inner);
        refuseOwnTest(whole.test.size());
        const int64_t n = whole.train.size();
        const auto split = heldOutTest(n, options);
        std::vector<std::string> ids;
        for (const auto r : split.train)
            if (size_t(r) < whole.ids.size())
                ids.push_back(whole.ids[size_t(r)]);
        keepRows(whole, whole.test, split.validation);
        keepRows(whole, whole.train, split.train);
        whole.ids = std::move(ids);
        say(whole, n, int64_t(split.validation.size()));
        if (options.rows) {
            whole.sourceTrainRows = whole.train.size();
            whole.sourceTestRows = whole.test.size();
            const auto labels = whole.train.labels().contiguous();
            whole.allLabels.assign(labels.data_ptr<int64_t>(), labels.data_ptr<int64_t>() + labels.numel());
            whole.test = whole.test.select(torch::tensor(at::ArrayRef<int64_t>(options.rows->test), torch::kInt64));
            whole.train = whole.train.select(torch::tensor(at::ArrayRef<int64_t>(options.rows->train), torch::kInt64));
        }
        return whole;
    }
    refuseOwnTest(counted.sourceTestRows);
    const int64_t n = counted.sourceTrainRows;
    const auto split = heldOutTest(n, options);
    const auto wantedTrain = mapped(split.train, options.rows->train);
    const auto wantedTest = mapped(split.validation, options.rows->test);
    auto allLabels = mapped(counted.allLabels, split.train);
    std::vector<int64_t> merged;
    std::merge(wantedTrain.begin(), wantedTrain.end(), wantedTest.begin(), wantedTest.end(),
               std::back_inserter(merged));
    LoadedSource out;
    if (merged.empty()) {
        out = std::move(counted); // no rows wanted: the count is the read
    } else {
        inner.rows = std::make_shared<RowSelection>(RowSelection{merged, {}});
        out = read(inner);
    }
    // The rows came in the source's order: each is a kept row or a held-out one, and both kinds
    // keep their order.
    std::vector<int64_t> trainAt, testAt;
    std::vector<std::string> ids;
    for (size_t p = 0, t = 0; p < merged.size(); ++p) {
        if (t < wantedTest.size() && merged[p] == wantedTest[t]) {
            testAt.push_back(int64_t(p));
            ++t;
        } else {
            trainAt.push_back(int64_t(p));
            if (p < out.ids.size())
                ids.push_back(out.ids[p]);
        }
    }
    keepRows(out, out.test, testAt);
    keepRows(out, out.train, trainAt);
    out.ids = std::move(ids);
    out.allLabels = std::move(allLabels);
    out.sourceTrainRows = int64_t(split.train.size());
    out.sourceTestRows = int64_t(split.validation.size());
    say(out, n, out.sourceTestRows);
    return out;
}

} // namespace

LoadedSource loadSource(const std::string& location, const SourceOptions& options) {
    if (options.onBadRows != "fail" && options.onBadRows != "skip")
        throw ConfigError("--on-bad-rows must be fail or skip, got '" + options.onBadRows + "'");
    const SourceKind* chosen = nullptr;
    if (options.kind != "auto") {
        for (const auto& kind : sourceKinds())
            if (options.kind == kind.name)
                chosen = &kind;
        if (!chosen)
            throw ConfigError("unknown data source kind '" + options.kind + "'; known kinds: auto, " + kindNames());
    }
    if (options.limit < 0)
        throw ConfigError("limit must be 0 (all rows) or positive, got " + std::to_string(options.limit));
    shapeElements(options.shape, location);
    if (!chosen) // tables first: their names are not paths
        for (const auto& kind : sourceKinds())
            if (!kind.readsFiles && kind.detect(location))
                chosen = &kind;
    std::error_code ec;
    if ((!chosen || chosen->readsFiles) && (location.empty() || !std::filesystem::exists(location, ec)))
        throw DataError(location + ": no such file or directory");
    if (!chosen) {
        for (const auto& kind : sourceKinds())
            if (kind.detect(location)) {
                chosen = &kind;
                break;
            }
        if (!chosen)
            throw ConfigError(location + ": cannot tell what kind of data this is; name the kind (" + kindNames() +
                              ")");
    }

    // The module edge: whatever libtorch or the standard library throws becomes a DataError naming
    // the source, so callers see one hierarchy.
    try {
        auto read = [&](const SourceOptions& o) {
            LoadedSource loaded = chosen->load(location, o);
            loaded.kind = chosen->name;
            loaded.location = location;
            checkFinite(loaded, o, location);
            return loaded;
        };
        LoadedSource loaded = options.testFraction != 0 ? readWithHeldOutTest(read, options, location) : read(options);
        applyLayout(loaded, options, location);
        shapeFlatRows(loaded, options, location);
        return loaded;
    } catch (const Error&) {
        throw;
    } catch (const c10::Error& e) {
        throw DataError(location + ": " + firstLine(e.what_without_backtrace()));
    } catch (const std::bad_alloc&) {
        throw DataError(location + ": not enough memory to load it");
    } catch (const std::exception& e) {
        throw DataError(location + ": " + firstLine(e.what()));
    }
}

EncodedLabels encodeIntegerLabels(const at::Tensor& values) {
    EncodedLabels out;
    const auto v = values.to(torch::kInt64).reshape({-1}).contiguous();
    if (v.numel() == 0) {
        out.indices = v;
        return out;
    }
    const int64_t low = v.min().item<int64_t>();
    const int64_t high = v.max().item<int64_t>();
    if (low >= 0 && high < kMaxDenseLabel) {
        out.indices = v;
        for (int64_t c = 0; c <= high; ++c)
            out.classNames.push_back(std::to_string(c));
        return out;
    }
    const auto [unique, inverse] = torch::_unique(v, /*sorted=*/true, /*return_inverse=*/true);
    const auto distinct = unique.contiguous();
    out.indices = inverse.to(torch::kInt64).reshape({-1});
    const auto* d = distinct.data_ptr<int64_t>();
    for (int64_t i = 0; i < distinct.numel(); ++i)
        out.classNames.push_back(std::to_string(d[i]));
    return out;
}

int64_t shapeElements(const std::vector<int64_t>& shape, const std::string& location) {
    int64_t elements = 1;
    for (const auto s : shape) {
        if (s <= 0)
            throw ConfigError(location + ": shape " + formatShape(shape) + " has a dimension that is not positive");
        if (__builtin_mul_overflow(elements, s, &elements) || elements > kMaxSampleElements)
            throw ConfigError(location + ": shape " + formatShape(shape) + " has more than " +
                              std::to_string(kMaxSampleElements) + " values a sample");
    }
    return elements;
}

at::Tensor reshapeFeatures(const at::Tensor& features, const std::vector<int64_t>& shape, const std::string& location) {
    if (shape.empty())
        return features;
    const int64_t wanted = shapeElements(shape, location);
    const int64_t n = features.size(0);
    // No rows (a plan's read): the width is what the tensor's other dimensions say.
    int64_t have = 1;
    for (int64_t d = 1; d < features.dim(); ++d)
        have *= features.size(d);
    if (wanted != have)
        throw ConfigError(location + ": shape " + formatShape(shape) + " has " + std::to_string(wanted) +
                          " elements but each sample has " + std::to_string(have));
    std::vector<int64_t> full{n};
    full.insert(full.end(), shape.begin(), shape.end());
    return features.reshape(full);
}

std::string toLower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

bool endsWith(const std::string& text, const std::string& suffix) {
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string baseNameWithoutGz(const std::string& path) {
    auto name = toLower(std::filesystem::path(path).filename().string());
    if (endsWith(name, ".gz"))
        name.resize(name.size() - 3);
    return name;
}

uint64_t checkedMultiply(uint64_t a, uint64_t b, const std::string& what) {
    uint64_t result = 0;
    if (__builtin_mul_overflow(a, b, &result))
        throw DataError(what + ": size too large");
    return result;
}

LoadedSource planSource(const std::string& location, const SourceOptions& options) {
    auto none = options;
    none.rows = std::make_shared<RowSelection>();
    LoadedSource plan = loadSource(location, none);
    if (plan.sourceTrainRows <= 0)
        return plan;
    int64_t elements = 1;
    for (const auto d : plan.train.sampleShape())
        elements *= d;
    if (plan.train.sampleShape().empty() || elements == 0) {
        // A kind that learns the shape from a row: read one.
        auto probe = options;
        probe.rows = std::make_shared<RowSelection>(RowSelection{{0}, {}});
        plan.train = loadSource(location, probe).train.slice(0, 0);
    }
    return plan;
}

} // namespace mppdl::data
