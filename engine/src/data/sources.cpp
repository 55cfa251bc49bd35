#include "mppdl/data/source.h"

#include "data/formats.h"
#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <numeric>

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
        LoadedSource loaded = chosen->load(location, options);
        loaded.kind = chosen->name;
        loaded.location = location;
        checkFinite(loaded, options, location);
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
