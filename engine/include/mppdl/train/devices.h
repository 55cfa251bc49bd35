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

/// The device of each of `segments` segments, checked (DeviceError as checkDevice). `device` is
/// one device or a list ("cuda:0,1", "cuda:0,cuda:1") dealt round-robin; `gpusPerHost` > 0 deals
/// cuda:0..G-1 instead and 0 keeps every segment on the CPU, as MADlib's GPUs-per-host setting.
std::vector<std::string> segmentDevices(const std::string& device, int gpusPerHost, int segments);

/// Threads libtorch uses for a run that does not ask for a number: OMP_NUM_THREADS when set,
/// else every CPU this process may run on (libtorch's own default can be 1 in containers).
int defaultThreadCount();
/// Sets libtorch's intra-op threads: `threads` when > 0, else defaultThreadCount(). Also keeps
/// OpenBLAS on the calling thread (unless OPENBLAS_NUM_THREADS is set): libtorch's own pool
/// already runs the ops in parallel, and a second pool only oversubscribes the cores.
void applyThreadCount(int threads);

/// The shared library that provides sgemm to libtorch (OpenBLAS, the reference BLAS, ...).
std::string blasName();

/// libtorch's build (version, BLAS, CUDA) in one line, for --version and run records.
std::string libraryVersions();

} // namespace mppdl::train
