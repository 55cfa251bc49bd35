#include "data/test_files.h"

#include <stb/stb_image_write.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace fs = std::filesystem;

namespace mppdl::data::testing {

TempDir::TempDir() {
    std::string pattern = (fs::temp_directory_path() / "mppdl-data-test-XXXXXX").string();
    if (!mkdtemp(pattern.data()))
        throw std::runtime_error("cannot create a temporary directory");
    m_path = pattern;
}

TempDir::~TempDir() {
    std::error_code ec;
    fs::remove_all(m_path, ec);
}

std::string TempDir::file(const std::string& name) const {
    const auto p = m_path / name;
    fs::create_directories(p.parent_path());
    return p.string();
}

std::string TempDir::write(const std::string& name, const std::string& bytes) const {
    const auto p = file(name);
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out)
        throw std::runtime_error("cannot write " + p);
    return p;
}

std::string gzip(const std::string& bytes) {
    z_stream zs{};
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        throw std::runtime_error("deflateInit2");
    std::string out(deflateBound(&zs, bytes.size()) + 64, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    zs.avail_in = static_cast<uInt>(bytes.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        throw std::runtime_error("deflate");
    out.resize(zs.total_out);
    deflateEnd(&zs);
    return out;
}

namespace {

void putBigEndian(std::string& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

} // namespace

std::string idxImages(uint32_t count, uint32_t rows, uint32_t cols, uint32_t magic) {
    std::string out;
    putBigEndian(out, magic);
    putBigEndian(out, count);
    putBigEndian(out, rows);
    putBigEndian(out, cols);
    for (uint32_t n = 0; n < count; ++n)
        for (uint32_t i = 0; i < rows * cols; ++i)
            out.push_back(static_cast<char>((n * 7 + i) % 256));
    return out;
}

std::string idxLabels(const std::vector<uint8_t>& labels, uint32_t magic) {
    std::string out;
    putBigEndian(out, magic);
    putBigEndian(out, static_cast<uint32_t>(labels.size()));
    out.append(reinterpret_cast<const char*>(labels.data()), labels.size());
    return out;
}

std::string npy(const std::string& descr, const std::vector<int64_t>& shape, const std::string& data, int version,
                bool fortranOrder) {
    std::string dict = "{'descr': '" + descr + "', 'fortran_order': " + (fortranOrder ? "True" : "False") +
                       ", 'shape': (";
    for (size_t i = 0; i < shape.size(); ++i)
        dict += (i ? ", " : "") + std::to_string(shape[i]);
    dict += shape.size() == 1 ? ",), }" : "), }";
    const size_t prefix = version == 1 ? 10 : 12;
    // NumPy pads the header with spaces and a newline so that the data starts on a multiple of 64.
    size_t total = prefix + dict.size() + 1;
    total = (total + 63) / 64 * 64;
    dict.append(total - prefix - dict.size() - 1, ' ');
    dict.push_back('\n');

    std::string out = "\x93NUMPY";
    out.push_back(static_cast<char>(version));
    out.push_back(0);
    const size_t len = dict.size();
    out.push_back(static_cast<char>(len & 0xff));
    out.push_back(static_cast<char>((len >> 8) & 0xff));
    if (version != 1) {
        out.push_back(static_cast<char>((len >> 16) & 0xff));
        out.push_back(static_cast<char>((len >> 24) & 0xff));
    }
    return out + dict + data;
}

uint8_t pngPixel(int y, int x, int c, int seed) { return static_cast<uint8_t>((y * 16 + x * 4 + c * 50 + seed) % 256); }

void writePng(const std::string& path, int width, int height, int channels, int seed) {
    std::vector<uint8_t> pixels(static_cast<size_t>(width * height * channels));
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x)
            for (int c = 0; c < channels; ++c)
                pixels[static_cast<size_t>((y * width + x) * channels + c)] = pngPixel(y, x, c, seed);
    if (!stbi_write_png(path.c_str(), width, height, channels, pixels.data(), width * channels))
        throw std::runtime_error("cannot write " + path);
}

} // namespace mppdl::data::testing
