#include "mppdl/train/devices.h"

#include "mppdl/core/error.h"

#include <torch/torch.h>

#ifdef MPPDL_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

#include <cctype>
#include <cstdlib>
#include <dlfcn.h>
#include <filesystem>
#include <fstream>
#include <sched.h>
#include <thread>

namespace mppdl::train {

namespace {

std::string cpuModel() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("model name", 0) == 0) {
            const auto colon = line.find(':');
            if (colon != std::string::npos)
                return line.substr(colon + 2);
        }
    }
    return "CPU";
}

int cudaDeviceCount() { return torch::cuda::is_available() ? int(torch::cuda::device_count()) : 0; }

} // namespace

std::vector<DeviceInfo> listDevices() {
    std::vector<DeviceInfo> out;
    DeviceInfo cpu;
    cpu.name = "cpu";
    cpu.description = cpuModel() + " (" + std::to_string(std::thread::hardware_concurrency()) + " hardware threads)";
    cpu.threads = defaultThreadCount();
    out.push_back(cpu);
    for (int i = 0; i < cudaDeviceCount(); ++i) {
        DeviceInfo gpu;
        gpu.name = "cuda:" + std::to_string(i);
        gpu.description = "CUDA device";
#ifdef MPPDL_WITH_CUDA
        cudaDeviceProp props{};
        if (cudaGetDeviceProperties(&props, i) == cudaSuccess)
            gpu.description = props.name;
        size_t freeBytes = 0, totalBytes = 0;
        if (cudaSetDevice(i) == cudaSuccess && cudaMemGetInfo(&freeBytes, &totalBytes) == cudaSuccess) {
            gpu.freeMemory = int64_t(freeBytes);
            gpu.totalMemory = int64_t(totalBytes);
        }
#endif
        out.push_back(gpu);
    }
    return out;
}

std::string checkDevice(const std::string& device) {
    if (device == "cpu")
        return device;
    if (device.rfind("cuda", 0) != 0)
        throw DeviceError("unknown device '" + device + "' (use cpu, cuda or cuda:N)");
    const int count = cudaDeviceCount();
    if (count == 0)
        throw DeviceError("device '" + device + "': no CUDA device is available to libtorch (" +
                          (torch::cuda::is_available() ? "" : "this libtorch has no CUDA or no GPU is visible") +
                          "); use --device cpu");
    if (device == "cuda")
        return "cuda:0";
    int index = -1;
    try {
        size_t used = 0;
        index = std::stoi(device.substr(5), &used);
        if (device[4] != ':' || used != device.size() - 5)
            index = -1;
    } catch (const std::exception&) {
        index = -1;
    }
    if (index < 0)
        throw DeviceError("unknown device '" + device + "' (use cpu, cuda or cuda:N)");
    if (index >= count)
        throw DeviceError("device '" + device + "' does not exist: " + std::to_string(count) +
                          " CUDA device(s), cuda:0 to cuda:" + std::to_string(count - 1));
    return device;
}

std::string libraryVersions() {
    std::string out = "libtorch " + std::string(TORCH_VERSION);
#ifdef MPPDL_WITH_CUDA
    out += ", CUDA";
#else
    out += ", CPU";
#endif
    out += ", BLAS " + blasName();
    return out;
}

std::vector<std::string> segmentDevices(const std::string& device, int gpusPerHost, int segments) {
    std::vector<std::string> pool;
    if (gpusPerHost == 0) {
        pool = {"cpu"};
    } else if (gpusPerHost > 0) {
        for (int g = 0; g < gpusPerHost; ++g)
            pool.push_back("cuda:" + std::to_string(g));
    } else {
        // "cuda:0,1" lists indexes after the first; "cuda:0,cuda:1" names each device.
        size_t begin = 0;
        while (begin <= device.size()) {
            const size_t comma = device.find(',', begin);
            std::string item = device.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin);
            if (!item.empty() && std::isdigit(static_cast<unsigned char>(item[0])))
                item = "cuda:" + item;
            pool.push_back(item);
            if (comma == std::string::npos)
                break;
            begin = comma + 1;
        }
    }
    for (auto& name : pool)
        name = checkDevice(name);
    std::vector<std::string> out;
    for (int s = 0; s < std::max(1, segments); ++s)
        out.push_back(pool[size_t(s) % pool.size()]);
    return out;
}

int defaultThreadCount() {
    // OMP_NUM_THREADS is the user's explicit choice; libtorch already honours it.
    if (std::getenv("OMP_NUM_THREADS"))
        return at::get_num_threads();
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return std::max(1, CPU_COUNT(&set));
    return std::max(1u, std::thread::hardware_concurrency());
}

void applyThreadCount(int threads) {
    const int wanted = threads > 0 ? threads : defaultThreadCount();
    if (at::get_num_threads() != wanted)
        at::set_num_threads(wanted);
    // libtorch already parallelizes its ops over its OpenMP pool. Debian's OpenBLAS (pthread
    // flavour) starts a second pool of its own for every sgemm, and the two pools spin against
    // each other on the same cores: measured on 2 cores, a fmnist_cnn training step takes
    // ~66 ms with both pools and ~35 ms with OpenBLAS on the calling thread (bench/README.md).
    // OPENBLAS_NUM_THREADS, when set, is the user's explicit choice and is left alone.
    static const bool userChoseBlasThreads = std::getenv("OPENBLAS_NUM_THREADS") != nullptr;
    if (!userChoseBlasThreads) {
        using SetThreads = void (*)(int);
        if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
            set(1);
    }
}

std::string blasName() {
    Dl_info info{};
    if (auto symbol = dlsym(RTLD_DEFAULT, "sgemm_"); symbol && dladdr(symbol, &info) && info.dli_fname) {
        // libblas.so.3 is an alternatives symlink: name the library behind it.
        std::error_code ec;
        const auto real = std::filesystem::canonical(info.dli_fname, ec);
        return ec ? std::string(info.dli_fname) : real.string();
    }
    return "unknown BLAS";
}

} // namespace mppdl::train
