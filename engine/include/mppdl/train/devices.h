#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mppdl::train {

/// A device libtorch can run on.
struct DeviceInfo {
    std::string name;        ///< "cpu", "cuda:0"
    std::string description; ///< CPU model / GPU name
    int threads = 0;         ///< CPU: intra-op threads libtorch uses
    int64_t totalMemory = 0; ///< bytes; 0 when unknown
    int64_t freeMemory = 0;
};

std::vector<DeviceInfo> listDevices();

/// Checks a device string ("cpu", "cuda", "cuda:N") against what exists; throws DeviceError
/// naming the device and what is available otherwise. Returns the canonical name.
std::string checkDevice(const std::string& device);

/// Threads libtorch uses for a run that does not ask for a number: OMP_NUM_THREADS when set,
/// else every CPU this process may run on (libtorch's own default can be 1 in containers).
int defaultThreadCount();
/// Sets libtorch's intra-op threads: `threads` when > 0, else defaultThreadCount().
void applyThreadCount(int threads);

/// libtorch's build (version, BLAS, CUDA) in one line, for --version and run records.
std::string libraryVersions();

} // namespace mppdl::train
