// NumPy .npy (format versions 1-3): "\x93NUMPY", version, header length, a Python dict literal
// {'descr': '<f4', 'fortran_order': False, 'shape': (N, ...), } padded with spaces, then the data.

#include "data/formats.h"
#include "data/gz_file.h"
#include "mppdl/core/error.h"

#include <torch/torch.h>

#include <cctype>
#include <cstring>
#include <filesystem>
#include <string_view>

namespace fs = std::filesystem;

namespace mppdl::data {

namespace {

struct DType {
    const char* descr;
    torch::ScalarType type;
    size_t size;
};

// Little-endian only: every machine mppdl runs on is, and NumPy writes native order by default.
constexpr DType kDTypes[] = {
    {"<f4", torch::kFloat32, 4}, {"<f8", torch::kFloat64, 8}, {"|u1", torch::kUInt8, 1},
    {"<i8", torch::kInt64, 8},   {"<i4", torch::kInt32, 4},
};

std::string supportedDTypes() {
    std::string out;
    for (const auto& d : kDTypes)
        out += (out.empty() ? "" : ", ") + std::string(d.descr);
    return out;
}

struct NpyArray {
    const DType* dtype = nullptr;
    std::vector<int64_t> shape;
    std::string bytes;     ///< the whole file
    size_t dataOffset = 0; ///< where the elements begin in `bytes`
    int64_t rows() const { return shape.empty() ? 0 : shape[0]; }
};

std::string formatTuple(const std::vector<int64_t>& shape) {
    std::string out = "(";
    for (size_t i = 0; i < shape.size(); ++i)
        out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + (shape.size() == 1 ? ",)" : ")");
}

/// Reads the header dict: string keys, and string, True/False or int-tuple values.
class HeaderParser {
public:
    HeaderParser(const std::string& path, std::string_view text) : m_path(path), m_text(text) {}

    void parse(std::string& descr, bool& fortranOrder, std::vector<int64_t>& shape) {
        bool haveDescr = false, haveOrder = false, haveShape = false;
        expect('{');
        while (!accept('}')) {
            const std::string key = readString();
            expect(':');
            if (key == "descr") {
                descr = readString();
                haveDescr = true;
            } else if (key == "fortran_order") {
                fortranOrder = readBool();
                haveOrder = true;
            } else if (key == "shape") {
                shape = readTuple();
                haveShape = true;
            } else {
                fail("unknown key '" + key + "'");
            }
            if (!accept(',')) {
                expect('}');
                break;
            }
        }
        if (!haveDescr || !haveOrder || !haveShape)
            fail("it lacks one of 'descr', 'fortran_order', 'shape'");
    }

private:
    [[noreturn]] void fail(const std::string& why) const {
        throw DataError(m_path + ": malformed .npy header: " + why);
    }
    void skipSpace() {
        while (m_pos < m_text.size() && std::isspace(static_cast<unsigned char>(m_text[m_pos])))
            ++m_pos;
    }
    bool accept(char c) {
        skipSpace();
        if (m_pos < m_text.size() && m_text[m_pos] == c) {
            ++m_pos;
            return true;
        }
        return false;
    }
    void expect(char c) {
        if (!accept(c))
            fail(std::string("expected '") + c + "'");
    }
    std::string readString() {
        skipSpace();
        if (m_pos >= m_text.size() || (m_text[m_pos] != '\'' && m_text[m_pos] != '"'))
            fail("expected a quoted string");
        const char quote = m_text[m_pos++];
        const size_t end = m_text.find(quote, m_pos);
        if (end == std::string_view::npos)
            fail("unterminated string");
        std::string value(m_text.substr(m_pos, end - m_pos));
        m_pos = end + 1;
        return value;
    }
    bool readBool() {
        skipSpace();
        for (const auto& [word, value] : {std::pair{"True", true}, std::pair{"False", false}}) {
            const size_t n = std::strlen(word);
            if (m_text.substr(m_pos, n) == word) {
                m_pos += n;
                return value;
            }
        }
        fail("expected True or False");
    }
    std::vector<int64_t> readTuple() {
        std::vector<int64_t> values;
        expect('(');
        while (!accept(')')) {
            skipSpace();
            int64_t value = 0;
            size_t digits = 0;
            while (m_pos < m_text.size() && std::isdigit(static_cast<unsigned char>(m_text[m_pos]))) {
                if (value > (int64_t(1) << 50))
                    fail("dimension too large");
                value = value * 10 + (m_text[m_pos++] - '0');
                ++digits;
            }
            if (digits == 0)
                fail("expected a dimension");
            accept('L'); // Python 2 wrote long integers with a suffix
            values.push_back(value);
            if (!accept(',')) {
                expect(')');
                break;
            }
        }
        return values;
    }

    const std::string& m_path;
    std::string_view m_text;
    size_t m_pos = 0;
};

/// Where the header of a .npy file whose first bytes are `b` ends (10 or 12 bytes are enough to tell).
size_t headerEnd(const std::string& path, const std::string& b, size_t* headerStart) {
    if (b.size() < 10 || std::memcmp(b.data(), "\x93NUMPY", 6) != 0)
        throw DataError(path + ": not a .npy file: it does not start with the magic \\x93NUMPY");
    const int major = static_cast<unsigned char>(b[6]);
    const int minor = static_cast<unsigned char>(b[7]);
    const auto* u = reinterpret_cast<const unsigned char*>(b.data());
    size_t headerLength = 0;
    if (major == 1) {
        headerLength = u[8] | (u[9] << 8);
        *headerStart = 10;
    } else if (major == 2 || major == 3) {
        if (b.size() < 12)
            throw DataError(path + ": truncated .npy header");
        headerLength = size_t(u[8]) | (size_t(u[9]) << 8) | (size_t(u[10]) << 16) | (size_t(u[11]) << 24);
        *headerStart = 12;
    } else {
        throw DataError(path + ": unsupported .npy format version " + std::to_string(major) + "." +
                        std::to_string(minor));
    }
    return *headerStart + headerLength;
}

/// Fills `array`'s dtype, shape and data offset from the file's first bytes `b` (at least its
/// header); returns the bytes of data the header promises.
uint64_t parseHeader(const std::string& path, const std::string& b, NpyArray& array) {
    size_t headerStart = 0;
    const size_t end = headerEnd(path, b, &headerStart);
    if (b.size() < end)
        throw DataError(path + ": truncated .npy header: it says " + std::to_string(end - headerStart) +
                        " bytes, the file holds " + std::to_string(b.size() - headerStart));

    std::string descr;
    bool fortranOrder = false;
    HeaderParser(path, std::string_view(b).substr(headerStart, end - headerStart))
        .parse(descr, fortranOrder, array.shape);
    for (const auto& d : kDTypes)
        if (descr == d.descr)
            array.dtype = &d;
    if (!array.dtype)
        throw DataError(path + ": unsupported dtype '" + descr + "' (supported: " + supportedDTypes() + ")");
    if (fortranOrder)
        throw DataError(path + ": Fortran-ordered arrays are not supported; save it with "
                               "numpy.save(path, numpy.ascontiguousarray(a))");
    if (array.shape.empty())
        throw DataError(path + ": holds a scalar, not rows of samples");

    array.dataOffset = end;
    uint64_t elements = 1;
    for (const auto dim : array.shape)
        elements = checkedMultiply(elements, static_cast<uint64_t>(dim), path);
    return checkedMultiply(elements, array.dtype->size, path);
}

std::string shorterThanHeader(const std::string& path, const NpyArray& array, uint64_t needed, uint64_t held) {
    return path + ": file is shorter than its header says: shape " + formatTuple(array.shape) + " of " +
           array.dtype->descr + " needs " + std::to_string(needed) + " bytes, the file holds " + std::to_string(held);
}

/// A whole file, header and data (for labels: one value a row).
NpyArray readNpy(const std::string& path) {
    NpyArray array;
    array.bytes = readFile(path);
    const uint64_t needed = parseHeader(path, array.bytes, array);
    if (array.bytes.size() - array.dataOffset < needed)
        throw DataError(shorterThanHeader(path, array, needed, array.bytes.size() - array.dataOffset));
    return array;
}

/// A features file opened for reading rows: its header parsed, the stream at the first element.
struct NpyRows {
    explicit NpyRows(const std::string& path) : file(path) {
        std::string head(12, '\0');
        head.resize(file.readUpTo(head.data(), head.size(), "the .npy header"));
        size_t headerStart = 0;
        const size_t end = headerEnd(path, head, &headerStart);
        if (end > head.size()) {
            const size_t have = head.size();
            head.resize(end);
            head.resize(have + file.readUpTo(head.data() + have, end - have, "the .npy header"));
        }
        needed = parseHeader(path, head, array);
        rowBytes = array.rows() == 0 ? 0 : needed / uint64_t(array.rows());
    }

    /// The first `rows` rows, or of those the ones in `selected` (ascending), in the file's dtype.
    at::Tensor read(int64_t rows, const std::vector<int64_t>* selected) {
        auto shape = array.shape;
        shape[0] = selected ? int64_t(selected->size()) : rows;
        auto t = torch::empty(shape, array.dtype->type);
        auto* out = static_cast<char*>(t.data_ptr());
        auto shorter = [&] {
            return DataError(shorterThanHeader(file.path(), array, needed, file.position() - array.dataOffset));
        };
        if (!file.readRows(out, array.dataOffset, rowBytes, rows, selected))
            throw shorter();
        bytesRead += int64_t(shape[0]) * int64_t(rowBytes);
        return t;
    }

    InputFile file;
    NpyArray array; // header only: `bytes` stays empty
    uint64_t needed = 0, rowBytes = 0;
    int64_t bytesRead = 0;
};

/// The first `rows` rows as a tensor of the file's own dtype.
at::Tensor toTensor(const NpyArray& array, int64_t rows) {
    auto shape = array.shape;
    shape[0] = rows;
    auto t = torch::empty(shape, array.dtype->type);
    std::memcpy(t.data_ptr(), array.bytes.data() + array.dataOffset,
                static_cast<size_t>(t.numel()) * array.dtype->size);
    return t;
}

at::Tensor asFeatures(at::Tensor t) {
    if (t.dim() == 1)
        t = t.unsqueeze(1);
    return t.scalar_type() == torch::kUInt8 ? t : t.to(torch::kFloat32);
}

at::Tensor labelsOf(const std::string& path, const NpyArray& array, int64_t rows) {
    const auto& s = array.shape;
    if (s.size() > 2 || (s.size() == 2 && s[1] != 1))
        throw DataError(path + ": labels must be one value per row, shape (N,) or (N, 1), not " + formatTuple(s));
    auto t = toTensor(array, rows).reshape({-1});
    if (t.is_floating_point()) {
        const auto whole = (t == t.floor()).logical_and(t.isfinite());
        if (!whole.all().item<bool>()) {
            const auto bad = t.masked_select(whole.logical_not())[0].item<double>();
            throw DataError(path + ": labels must be whole numbers (class indices); found " + std::to_string(bad));
        }
    }
    return t.to(torch::kInt64);
}

/// The first existing file of `<stem>.npy`, `<stem>.npy.gz` for each stem.
std::string findFile(const fs::path& dir, const std::vector<std::string>& stems, std::vector<std::string>* tried) {
    std::error_code ec;
    for (const auto& stem : stems)
        for (const char* ext : {".npy", ".npy.gz"}) {
            const auto candidate = (dir / (stem + ext)).string();
            if (fs::is_regular_file(candidate, ec))
                return candidate;
            if (tried)
                tried->push_back(candidate);
        }
    return {};
}

std::string stemOf(const std::string& path) {
    std::string name = fs::path(path).filename().string();
    for (const char* ext : {".gz", ".npy"})
        if (endsWith(toLower(name), ext))
            name.resize(name.size() - std::strlen(ext));
    return name;
}

std::string labelsBeside(const std::string& featuresPath) {
    const std::string stem = stemOf(featuresPath);
    std::vector<std::string> stems;
    if (!stem.empty() && (stem[0] == 'X' || stem[0] == 'x') && (stem.size() == 1 || stem[1] == '_')) {
        stems.push_back("y" + stem.substr(1));
        stems.push_back("Y" + stem.substr(1));
    }
    if (const auto at = stem.find("features"); at != std::string::npos)
        stems.push_back(std::string(stem).replace(at, 8, "labels"));
    stems.push_back(stem + "_labels");
    std::vector<std::string> tried;
    const auto found = findFile(fs::path(featuresPath).parent_path(), stems, &tried);
    if (found.empty()) {
        std::string names;
        for (size_t i = 0; i < tried.size(); i += 2)
            names += (names.empty() ? "" : ", ") + fs::path(tried[i]).filename().string();
        throw DataError(featuresPath + ": no labels file beside it (looked for " + names +
                        "); name it with the label option");
    }
    return found;
}

struct Pair {
    at::Tensor features; ///< every row, or the selected ones
    at::Tensor labels;   ///< raw integer values, int64, of every row (after the limit)
    int64_t bytesRead = 0;
};

/// `limit` > 0 keeps the first rows; `selected` (ascending ordinals) reads only those features.
Pair readPair(const std::string& featuresPath, const std::string& labelsPath, int64_t limit,
              const std::vector<int64_t>* selected) {
    NpyRows x(featuresPath);
    const NpyArray y = readNpy(labelsPath);
    if (x.array.rows() != y.rows())
        throw DataError(featuresPath + " holds " + std::to_string(x.array.rows()) + " rows but " + labelsPath +
                        " holds " + std::to_string(y.rows()) + " labels");
    if (x.array.rows() == 0)
        throw DataError(featuresPath + ": holds no rows");
    const int64_t rows = limit > 0 ? std::min(limit, x.array.rows()) : x.array.rows();
    Pair pair;
    pair.labels = labelsOf(labelsPath, y, rows);
    pair.features = asFeatures(x.read(rows, selected));
    pair.bytesRead = x.bytesRead;
    return pair;
}

} // namespace

bool detectNpy(const std::string& location) {
    std::error_code ec;
    if (fs::is_directory(location, ec))
        return !findFile(location, {"x_train", "X_train"}, nullptr).empty();
    return endsWith(baseNameWithoutGz(location), ".npy");
}

LoadedSource loadNpy(const std::string& location, const SourceOptions& options) {
    const RowSelection* selection = options.rows.get();
    Pair train;
    Pair test;
    std::error_code ec;
    if (fs::is_directory(location, ec)) {
        const auto xTrain = findFile(location, {"x_train", "X_train"}, nullptr);
        if (xTrain.empty())
            throw DataError(location + ": no x_train.npy in it");
        const auto yTrain = findFile(location, {"y_train", "Y_train"}, nullptr);
        if (yTrain.empty())
            throw DataError(location + ": has x_train.npy but no y_train.npy");
        train = readPair(xTrain, yTrain, options.limit, selection ? &selection->train : nullptr);
        const auto xTest = findFile(location, {"x_test", "X_test"}, nullptr);
        if (!xTest.empty()) {
            const auto yTest = findFile(location, {"y_test", "Y_test"}, nullptr);
            if (yTest.empty())
                throw DataError(location + ": has x_test.npy but no y_test.npy");
            test = readPair(xTest, yTest, 0, selection ? &selection->test : nullptr);
            if (test.features.sizes().slice(1) != train.features.sizes().slice(1))
                throw DataError(xTest + ": samples of shape " + formatShape(test.features.sizes().slice(1).vec()) +
                                " differ from the training samples' " +
                                formatShape(train.features.sizes().slice(1).vec()));
        }
    } else {
        train = readPair(location, options.label.empty() ? labelsBeside(location) : options.label, options.limit,
                         selection ? &selection->train : nullptr);
    }

    // Train and test are encoded together so that a class has the same index in both.
    const int64_t trainRows = train.labels.size(0);
    const auto all = test.labels.defined() ? torch::cat({train.labels, test.labels}) : train.labels;
    const auto encoded = encodeIntegerLabels(all);

    const auto trainLabels = encoded.indices.slice(0, 0, trainRows).contiguous();
    const auto testLabels = encoded.indices.slice(0, trainRows).contiguous();
    auto ofRows = [](const at::Tensor& labels, const std::vector<int64_t>* rows) {
        return rows ? labels.index_select(0, torch::tensor(at::ArrayRef<int64_t>(*rows), torch::kInt64))
                    : labels.clone();
    };
    LoadedSource out;
    out.train = Dataset(reshapeFeatures(train.features, options.shape, location),
                        ofRows(trainLabels, selection ? &selection->train : nullptr), encoded.classNames);
    if (test.features.defined())
        out.test = Dataset(reshapeFeatures(test.features, options.shape, location),
                           ofRows(testLabels, selection ? &selection->test : nullptr), encoded.classNames);
    out.rowsRead = out.train.size() + out.test.size();
    out.bytesRead = train.bytesRead + test.bytesRead;
    if (selection) {
        out.sourceTrainRows = trainRows;
        out.sourceTestRows = testLabels.size(0);
        out.allLabels.assign(trainLabels.data_ptr<int64_t>(), trainLabels.data_ptr<int64_t>() + trainRows);
    }
    return out;
}

} // namespace mppdl::data
