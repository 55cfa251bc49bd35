// IDX files (the MNIST family): a big-endian header, then packed unsigned bytes.
//   images: magic 0x00000803, count, rows, cols, then count*rows*cols pixels
//   labels: magic 0x00000801, count, then count labels

#include "data/formats.h"
#include "data/gz_file.h"
#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace fs = std::filesystem;

namespace mppdl::data {

namespace {

constexpr uint32_t kImagesMagic = 0x00000803;
constexpr uint32_t kLabelsMagic = 0x00000801;
constexpr size_t kImagesHeader = 16;
constexpr size_t kLabelsHeader = 8;

const std::vector<std::string>& fashionClassNames() {
    static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                   "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    return names;
}

std::string hex32(uint32_t value) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%08X", value);
    return text;
}

uint32_t bigEndian32(const std::string& bytes, size_t offset) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
    return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

void checkMagic(const std::string& path, const std::string& bytes, uint32_t expected, size_t headerSize,
                const char* what) {
    if (bytes.size() < 4)
        throw DataError(path + ": truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the " +
                        std::to_string(headerSize) + "-byte IDX " + what + " header");
    const uint32_t magic = bigEndian32(bytes, 0);
    if (magic != expected)
        throw DataError(path + ": not an IDX " + what + " file: expected magic " + hex32(expected) + ", found " +
                        hex32(magic));
    if (bytes.size() < headerSize)
        throw DataError(path + ": truncated: " + std::to_string(bytes.size()) + " bytes, shorter than the " +
                        std::to_string(headerSize) + "-byte IDX " + what + " header");
}

struct Split {
    at::Tensor images; ///< uint8 [rows, 1, H, W]: every row, or the selected ones
    at::Tensor labels; ///< uint8 [N]: every row's (after the limit); zeros when unlabeled
    bool labeled = true;
    int64_t bytesRead = 0;
};

/// Reads a pair of files; `limit` > 0 keeps the first `limit` rows; `rows` (ascending ordinals),
/// when given, takes only those images: the file is read as a stream, so a raw file is seeked
/// over the others and a gzip file decompressed past them, never holding them.
Split readSplit(const std::string& imagesPath, const std::string& labelsPath, int64_t limit,
                const std::vector<int64_t>* rows) {
    InputFile images(imagesPath);
    std::string header(kImagesHeader, '\0');
    header.resize(images.readUpTo(header.data(), kImagesHeader, "the IDX images header"));
    checkMagic(imagesPath, header, kImagesMagic, kImagesHeader, "images");
    const uint64_t count = bigEndian32(header, 4);
    const uint64_t height = bigEndian32(header, 8);
    const uint64_t width = bigEndian32(header, 12);
    if (count == 0 || height == 0 || width == 0)
        throw DataError(imagesPath + ": header says " + std::to_string(count) + " images of " + std::to_string(height) +
                        "x" + std::to_string(width) + ": no pixels to read");
    const uint64_t pixelsPerImage = checkedMultiply(height, width, imagesPath);
    const uint64_t pixelBytes = checkedMultiply(count, pixelsPerImage, imagesPath);

    // No labels file: rows to predict (labels -1 once read).
    const std::string labels = labelsPath.empty() ? std::string() : readFile(labelsPath);
    if (!labelsPath.empty())
        checkMagic(labelsPath, labels, kLabelsMagic, kLabelsHeader, "labels");
    const uint64_t labelCount = labelsPath.empty() ? count : bigEndian32(labels, 4);
    if (labelCount != count)
        throw DataError(imagesPath + " holds " + std::to_string(count) + " images but " + labelsPath + " holds " +
                        std::to_string(labelCount) + " labels");
    if (!labelsPath.empty() && labels.size() - kLabelsHeader < labelCount)
        throw DataError(labelsPath + ": file is shorter than its header says: " + std::to_string(labelCount) +
                        " labels, the file holds " + std::to_string(labels.size() - kLabelsHeader) + " bytes of them");

    const int64_t n = limit > 0 ? std::min<int64_t>(limit, static_cast<int64_t>(count)) : static_cast<int64_t>(count);
    const int64_t taken = rows ? static_cast<int64_t>(rows->size()) : n;
    Split split;
    split.images = torch::empty({taken, 1, static_cast<int64_t>(height), static_cast<int64_t>(width)}, torch::kUInt8);
    auto* out = split.images.data_ptr<uint8_t>();
    auto shorter = [&] {
        return DataError(imagesPath + ": file is shorter than its header says: " + std::to_string(count) +
                         " images of " + std::to_string(height) + "x" + std::to_string(width) + " need " +
                         std::to_string(pixelBytes) + " bytes of pixels, the file holds " +
                         std::to_string(images.position() - kImagesHeader));
    };
    if (!images.readRows(out, kImagesHeader, pixelsPerImage, n, rows))
        throw shorter();
    split.bytesRead = taken * static_cast<int64_t>(pixelsPerImage);
    split.labels = torch::zeros({n}, torch::kUInt8);
    split.labeled = !labelsPath.empty();
    if (split.labeled)
        std::memcpy(split.labels.data_ptr<uint8_t>(), labels.data() + kLabelsHeader, static_cast<size_t>(n));
    return split;
}

/// The labels of `rows` (ascending ordinals) of `all`, as int64; all of them without `rows`.
at::Tensor labelsOfRows(const at::Tensor& all, const std::vector<int64_t>* rows) {
    const auto labels = all.to(torch::kInt64);
    if (!rows)
        return labels;
    return labels.index_select(0, torch::tensor(at::ArrayRef<int64_t>(*rows), torch::kInt64));
}

/// Replaces the first occurrence of `from` in the file name of `path`.
std::string replaceInName(const std::string& path, const std::string& from, const std::string& to) {
    fs::path p(path);
    std::string name = p.filename().string();
    const auto at = name.find(from);
    if (at == std::string::npos)
        return {};
    name.replace(at, from.size(), to);
    return (p.parent_path() / name).string();
}

/// The first of `path`, `path` + ".gz" and `path` without ".gz" that exists.
std::string existingVariant(const std::string& path) {
    if (path.empty())
        return {};
    std::vector<std::string> candidates{path};
    if (endsWith(path, ".gz"))
        candidates.push_back(path.substr(0, path.size() - 3));
    else
        candidates.push_back(path + ".gz");
    std::error_code ec;
    for (const auto& c : candidates)
        if (fs::is_regular_file(c, ec))
            return c;
    return {};
}

/// The partner of an images (idx3) or labels (idx1) file, found by name.
std::string partnerFile(const std::string& path, bool wantLabels) {
    const auto [a1, a2] = wantLabels ? std::pair{"images", "idx3"} : std::pair{"labels", "idx1"};
    const auto [b1, b2] = wantLabels ? std::pair{"labels", "idx1"} : std::pair{"images", "idx3"};
    std::string name = replaceInName(path, a1, b1);
    if (!name.empty()) {
        const auto second = replaceInName(name, a2, b2);
        if (!second.empty())
            name = second;
    } else {
        name = replaceInName(path, a2, b2);
    }
    return name;
}

bool isImagesName(const std::string& base) { return base.find("idx3") != std::string::npos; }

/// The images files of a directory for one split ("train" or "test"), without .gz duplicates.
std::vector<std::string> imagesFilesIn(const std::string& dir, bool train) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        if (!entry.is_regular_file(ec))
            continue;
        const auto base = baseNameWithoutGz(entry.path().string());
        if (!isImagesName(base))
            continue;
        const bool isTrain = base.find("train") != std::string::npos;
        const bool isTest = base.find("t10k") != std::string::npos || base.find("test") != std::string::npos;
        if ((train && isTrain) || (!train && isTest && !isTrain))
            found.push_back(entry.path().string());
    }
    // Raw files sort before their .gz twins and are faster to read: keep the first of each pair.
    std::sort(found.begin(), found.end());
    std::vector<std::string> unique;
    for (const auto& f : found)
        if (unique.empty() || baseNameWithoutGz(unique.back()) != baseNameWithoutGz(f))
            unique.push_back(f);
    return unique;
}

std::string joinNames(const std::vector<std::string>& paths) {
    std::string out;
    for (const auto& p : paths)
        out += (out.empty() ? "" : ", ") + fs::path(p).filename().string();
    return out;
}

/// The labels file beside an images file; "" when there is none and `optional` (rows to predict).
std::string labelsFor(const std::string& imagesPath, bool optional) {
    const auto guess = partnerFile(imagesPath, true);
    const auto found = existingVariant(guess);
    if (found.empty() && !optional)
        throw DataError(imagesPath + ": no labels file beside it (looked for " +
                        (guess.empty() ? std::string("a name with 'labels' for 'images'") : guess) +
                        "); name it with the label option");
    return found;
}

} // namespace

bool detectIdx(const std::string& location) {
    std::error_code ec;
    if (fs::is_directory(location, ec))
        return !imagesFilesIn(location, true).empty();
    const auto base = baseNameWithoutGz(location);
    if (base.find("idx3") != std::string::npos || base.find("idx1") != std::string::npos || endsWith(base, ".idx"))
        return true;
    // A raw file with another name: its magic says.
    if (FILE* f = std::fopen(location.c_str(), "rb")) {
        unsigned char magic[4] = {};
        const bool full = std::fread(magic, 1, 4, f) == 4;
        std::fclose(f);
        return full && magic[0] == 0 && magic[1] == 0 && magic[2] == 0x08 && (magic[3] == 0x03 || magic[3] == 0x01);
    }
    return false;
}

LoadedSource loadIdx(const std::string& location, const SourceOptions& options) {
    std::string trainImages, trainLabels, testImages, testLabels;
    std::error_code ec;
    if (fs::is_directory(location, ec)) {
        const auto train = imagesFilesIn(location, true);
        if (train.empty())
            throw DataError(location + ": no IDX training images file (like train-images-idx3-ubyte.gz) in it");
        if (train.size() > 1)
            throw DataError(location + ": several IDX training images files (" + joinNames(train) +
                            "); load one of them");
        trainImages = train.front();
        trainLabels = labelsFor(trainImages, options.labelsOptional);
        const auto test = imagesFilesIn(location, false);
        if (test.size() > 1)
            throw DataError(location + ": several IDX test images files (" + joinNames(test) + ")");
        if (!test.empty()) {
            testImages = test.front();
            testLabels = labelsFor(testImages, options.labelsOptional);
        }
    } else {
        trainImages = location;
        const auto base = baseNameWithoutGz(location);
        // Pointed at the labels file: its images are found by name the other way round.
        if (base.find("idx1") != std::string::npos && base.find("idx3") == std::string::npos) {
            const auto images = existingVariant(partnerFile(location, false));
            if (images.empty())
                throw DataError(location + ": this is a labels file and no images file was found beside it");
            trainLabels = location;
            trainImages = images;
        }
        if (!options.label.empty())
            trainLabels = options.label;
        else if (trainLabels.empty())
            trainLabels = labelsFor(trainImages, options.labelsOptional);
    }

    const RowSelection* selection = options.rows.get();
    Split train = readSplit(trainImages, trainLabels, options.limit, selection ? &selection->train : nullptr);
    Split test;
    if (!testImages.empty()) {
        test = readSplit(testImages, testLabels, 0, selection ? &selection->test : nullptr);
        if (test.images.sizes().slice(1) != train.images.sizes().slice(1))
            throw DataError(testImages + ": images of " + formatShape(test.images.sizes().slice(2).vec()) +
                            " differ from the training images' " + formatShape(train.images.sizes().slice(2).vec()));
    }

    int64_t maxLabel = train.labels.max().item<uint8_t>();
    if (test.labels.defined())
        maxLabel = std::max<int64_t>(maxLabel, test.labels.max().item<uint8_t>());
    const int64_t classes = std::max<int64_t>(10, maxLabel + 1);
    std::vector<std::string> names;
    const auto where = toLower(location + " " + trainImages);
    if (classes == 10 && where.find("fashion") != std::string::npos)
        names = fashionClassNames();
    else
        for (int64_t c = 0; c < classes; ++c)
            names.push_back(std::to_string(c));

    LoadedSource out;
    out.train = Dataset(train.images, labelsOfRows(train.labels, selection ? &selection->train : nullptr), names);
    if (!train.labeled)
        out.train = out.train.withoutLabels();
    if (test.images.defined()) {
        out.test = Dataset(test.images, labelsOfRows(test.labels, selection ? &selection->test : nullptr), names);
        if (!test.labeled)
            out.test = out.test.withoutLabels();
    }
    out.rowsRead = out.train.size() + out.test.size();
    out.bytesRead = train.bytesRead + test.bytesRead;
    if (selection) {
        out.sourceTrainRows = train.labels.size(0);
        out.sourceTestRows = test.labels.defined() ? test.labels.size(0) : 0;
        const auto all = train.labels.to(torch::kInt64).contiguous();
        out.allLabels.assign(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
    }
    return out;
}

} // namespace mppdl::data
