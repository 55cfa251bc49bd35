// Image folders: ROOT/<class>/<image>, or ROOT/train/<class>/<image> with an optional ROOT/test/.

#include "data/formats.h"
#include "data/gz_file.h"
#include "mppdl/core/error.h"
#include "mppdl/core/text_table.h"
#include "mppdl/data/memory.h"

#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <torch/torch.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <filesystem>
#include <memory>

namespace fs = std::filesystem;

namespace mppdl::data {

namespace {

bool isImageFile(const fs::path& path) {
    const auto ext = toLower(path.extension().string());
    return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

std::string failureReason() {
    const char* reason = stbi_failure_reason();
    return reason ? reason : "unknown format";
}

bool isHidden(const fs::path& path) { return path.filename().string().rfind('.', 0) == 0; }

/// Sorted names of the visible subdirectories of `dir`.
std::vector<std::string> subdirectories(const fs::path& dir) {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.is_directory(ec) && !isHidden(entry.path()))
            names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

/// Sorted image files directly in `dir`.
std::vector<std::string> imagesIn(const fs::path& dir) {
    std::vector<std::string> files;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.is_regular_file(ec) && !isHidden(entry.path()) && isImageFile(entry.path()))
            files.push_back(entry.path().string());
    std::sort(files.begin(), files.end());
    return files;
}

/// ROOT/train/ holding class folders makes a split layout; a class that happens to be called
/// "train" holds images, not folders.
bool isSplitLayout(const fs::path& root) {
    std::error_code ec;
    return fs::is_directory(root / "train", ec) && !subdirectories(root / "train").empty();
}

struct Listing {
    std::vector<std::string> files;
    std::vector<int64_t> labels;
};

Listing listClasses(const fs::path& root, const std::vector<std::string>& classes) {
    Listing listing;
    for (const auto& name : subdirectories(root)) {
        const auto it = std::find(classes.begin(), classes.end(), name);
        if (it == classes.end())
            throw DataError((root / name).string() + ": class '" + name + "' is not among the training classes");
        for (auto& file : imagesIn(root / name)) {
            listing.files.push_back(std::move(file));
            listing.labels.push_back(it - classes.begin());
        }
    }
    return listing;
}

/// At most `limit` files, taken from each class in turn so that a quick try still sees every class.
Listing roundRobin(const Listing& all, int64_t limit, size_t classCount) {
    if (limit <= 0 || limit >= static_cast<int64_t>(all.files.size()))
        return all;
    std::vector<std::vector<size_t>> byClass(classCount);
    for (size_t i = 0; i < all.files.size(); ++i)
        byClass[static_cast<size_t>(all.labels[i])].push_back(i);
    std::vector<size_t> chosen;
    for (size_t round = 0; static_cast<int64_t>(chosen.size()) < limit; ++round)
        for (const auto& members : byClass)
            if (round < members.size() && static_cast<int64_t>(chosen.size()) < limit)
                chosen.push_back(members[round]);
    std::sort(chosen.begin(), chosen.end());
    Listing out;
    for (const auto i : chosen) {
        out.files.push_back(all.files[i]);
        out.labels.push_back(all.labels[i]);
    }
    return out;
}

struct ImageShape {
    int channels = 3;
    int height = 0;
    int width = 0;
};

/// The largest side an image may have, from its header or --shape: a header is the file's own
/// claim, and a small file may claim 60000x60000 pixels (10 GB decoded).
constexpr int kMaxSide = 1 << 15;

/// Refuses an image whose header claims a side over kMaxSide, before anything is allocated.
void checkClaimedSize(const std::string& file, int width, int height) {
    if (width <= 0 || height <= 0 || width > kMaxSide || height > kMaxSide)
        throw DataError(file + ": the image claims " + std::to_string(width) + "x" + std::to_string(height) +
                        " pixels, over the " + std::to_string(kMaxSide) +
                        " a side an image folder takes (a damaged or hostile file?)");
}

ImageShape shapeOf(const std::string& file, const SourceOptions& options) {
    if (!options.shape.empty()) {
        const auto& s = options.shape;
        if (s.size() != 3 || (s[0] != 1 && s[0] != 3) || s[1] <= 0 || s[2] <= 0 || s[1] > kMaxSide || s[2] > kMaxSide)
            throw ConfigError("image folders need a shape CxHxW with C 1 or 3, got " + formatShape(s));
        return {static_cast<int>(s[0]), static_cast<int>(s[1]), static_cast<int>(s[2])};
    }
    const std::string bytes = readFile(file);
    int w = 0, h = 0, comp = 0;
    if (bytes.size() > INT_MAX || !stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                                         static_cast<int>(bytes.size()), &w, &h, &comp))
        throw DataError(file + ": cannot decode image: " + failureReason());
    checkClaimedSize(file, w, h);
    // Grey images (with or without alpha) stay one channel; anything with colour becomes RGB.
    return {comp <= 2 ? 1 : 3, h, w};
}

/// Decodes every file to [N, C, H, W] uint8, resizing those of another size.
at::Tensor decode(const Listing& listing, const ImageShape& shape) {
    const int64_t n = static_cast<int64_t>(listing.files.size());
    const size_t imageBytes = static_cast<size_t>(shape.height) * shape.width * shape.channels; // < 2^32
    size_t total = 0;
    if (__builtin_mul_overflow(imageBytes, static_cast<size_t>(n), &total) ||
        static_cast<int64_t>(total) > memoryAvailable().bytes)
        throw DataError(std::to_string(n) + " images of " + std::to_string(shape.channels) + "x" +
                        std::to_string(shape.height) + "x" + std::to_string(shape.width) + " take " +
                        humanBytes(double(n) * double(imageBytes)) + " decoded, more than this process may use (" +
                        humanBytes(double(memoryAvailable().bytes)) + "): give a smaller size with --shape C,H,W");
    auto hwc = torch::empty({n, shape.height, shape.width, shape.channels}, torch::kUInt8);
    auto* out = hwc.data_ptr<uint8_t>();
    for (int64_t i = 0; i < n; ++i) {
        const auto& file = listing.files[static_cast<size_t>(i)];
        const std::string bytes = readFile(file);
        int w = 0, h = 0, comp = 0;
        // The header first: a file claiming a huge size is refused before its pixels are allocated.
        if (bytes.size() <= INT_MAX && stbi_info_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()),
                                                             static_cast<int>(bytes.size()), &w, &h, &comp))
            checkClaimedSize(file, w, h);
        std::unique_ptr<stbi_uc, void (*)(void*)> pixels(
            bytes.size() > INT_MAX
                ? nullptr
                : stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()),
                                        &w, &h, &comp, shape.channels),
            &stbi_image_free);
        if (!pixels)
            throw DataError(file + ": cannot decode image: " + failureReason());
        auto* target = out + static_cast<size_t>(i) * imageBytes;
        if (w == shape.width && h == shape.height)
            std::memcpy(target, pixels.get(), imageBytes);
        else if (!stbir_resize_uint8(pixels.get(), w, h, 0, target, shape.width, shape.height, 0, shape.channels))
            throw DataError(file + ": cannot resize image from " + std::to_string(w) + "x" + std::to_string(h));
    }
    return hwc.permute({0, 3, 1, 2}).contiguous();
}

} // namespace

bool detectImageFolder(const std::string& location) {
    std::error_code ec;
    if (!fs::is_directory(location, ec))
        return false;
    const fs::path root = isSplitLayout(location) ? fs::path(location) / "train" : fs::path(location);
    for (const auto& name : subdirectories(root))
        for (const auto& entry : fs::directory_iterator(root / name, ec))
            if (entry.is_regular_file(ec) && isImageFile(entry.path()))
                return true;
    return false;
}

LoadedSource loadImageFolder(const std::string& location, const SourceOptions& options) {
    std::error_code ec;
    if (!fs::is_directory(location, ec))
        throw DataError(location + ": not a directory; image folders hold one subfolder per class");
    const bool split = isSplitLayout(location);
    const fs::path trainRoot = split ? fs::path(location) / "train" : fs::path(location);
    const auto classes = subdirectories(trainRoot);
    if (classes.empty())
        throw DataError(trainRoot.string() + ": no class subfolders in it");

    const Listing train = roundRobin(listClasses(trainRoot, classes), options.limit, classes.size());
    if (train.files.empty())
        throw DataError(trainRoot.string() + ": no PNG, JPEG or BMP images in its class subfolders");
    const ImageShape shape = shapeOf(train.files.front(), options);

    // With a selection only the selected files are decoded; the listing gives every label.
    const RowSelection* selection = options.rows.get();
    auto selectedOf = [](const Listing& all, const std::vector<int64_t>* rows) {
        if (!rows)
            return all;
        Listing some;
        for (const int64_t r : *rows) {
            if (r < 0 || r >= static_cast<int64_t>(all.files.size()))
                throw InternalError("image row " + std::to_string(r) + " selected of " +
                                    std::to_string(all.files.size()));
            some.files.push_back(all.files[static_cast<size_t>(r)]);
            some.labels.push_back(all.labels[static_cast<size_t>(r)]);
        }
        return some;
    };
    auto labelsOf = [](const Listing& l) { return torch::tensor(at::ArrayRef<int64_t>(l.labels), torch::kInt64); };
    const size_t imageBytes = static_cast<size_t>(shape.channels) * shape.height * shape.width;
    LoadedSource out;
    const Listing trainRows = selectedOf(train, selection ? &selection->train : nullptr);
    out.train = Dataset(decode(trainRows, shape), labelsOf(trainRows), classes);
    int64_t testRows = 0;
    if (split && fs::is_directory(fs::path(location) / "test", ec)) {
        const Listing test = listClasses(fs::path(location) / "test", classes);
        testRows = static_cast<int64_t>(test.files.size());
        const Listing rows = selectedOf(test, selection ? &selection->test : nullptr);
        if (!test.files.empty())
            out.test = Dataset(decode(rows, shape), labelsOf(rows), classes);
    }
    out.rowsRead = out.train.size() + out.test.size();
    out.bytesRead = out.rowsRead * static_cast<int64_t>(imageBytes);
    if (selection) {
        out.sourceTrainRows = static_cast<int64_t>(train.files.size());
        out.sourceTestRows = testRows;
        out.allLabels = train.labels;
    }
    return out;
}

} // namespace mppdl::data
