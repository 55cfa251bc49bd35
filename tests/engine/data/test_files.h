#pragma once

// Fixtures for the data tests: tiny files in each format, written into a temporary directory.

#include "support/expect_error.h"
#include "mppdl/core/error.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

namespace mppdl::data::testing {

using ::expectError;

/// A fresh directory under the system's temporary directory, removed with the object.
class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    const std::filesystem::path& path() const { return m_path; }
    /// The path of `name` inside the directory (subdirectories are created).
    std::string file(const std::string& name) const;
    /// Writes `bytes` to `name` and returns its path.
    std::string write(const std::string& name, const std::string& bytes) const;

private:
    std::filesystem::path m_path;
};

std::string gzip(const std::string& bytes);

/// An IDX images file: `count` images of rows x cols, pixel i of image n = (n * 7 + i) % 256.
std::string idxImages(uint32_t count, uint32_t rows, uint32_t cols, uint32_t magic = 0x00000803);
std::string idxLabels(const std::vector<uint8_t>& labels, uint32_t magic = 0x00000801);

/// A .npy file holding `data` (already in the dtype's bytes) with the given header fields.
std::string npy(const std::string& descr, const std::vector<int64_t>& shape, const std::string& data, int version = 1,
                bool fortranOrder = false);
template <class T>
std::string bytesOf(const std::vector<T>& values) {
    return std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
}

/// Writes a PNG (channels 1 or 3) whose pixel (y, x, c) is (y * 16 + x * 4 + c * 50 + seed) % 256.
void writePng(const std::string& path, int width, int height, int channels, int seed = 0);
uint8_t pngPixel(int y, int x, int c, int seed);


} // namespace mppdl::data::testing
