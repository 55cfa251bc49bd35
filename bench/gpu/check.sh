#!/usr/bin/env bash
# Every GPU check of issue 9 in one run on the GPU machine, the most important first, each stage
# within what is left of a time budget, so that one device call of 10 minutes brings back results
# even when a later stage does not finish:
#   1. the machine (nvidia-smi, torch, compiler), the kit (packaging/gpu-kit.sh) installed;
#   2. the gpu-headless build (GUI and PostgreSQL off) against the installed PyTorch's libtorch:
#      the binary and the gpu tests first;
#   3. the gpu tests (ctest -L gpu): device placement, segments sharing one GPU, Gloo over CUDA
#      tensors between processes;
#   4. bench/gpu_train.py: fmnist_cnn images/s of mppdl against PyTorch-Python on the same GPU,
#      data resident or streamed, CUDA graphs, 4 segments on one GPU;
#   5. bench/gpu_onnx.py: the kit's ONNX exports with onnxruntime against mppdl on the GPU;
#   6. with the time left: the rest of the build and the unit tests (ctest -L unit) on this libtorch.
# Logs and JSON go to $OUT (the device tool brings them back, 8 files at most), else out/gpu-check/.
#
# Here, before the device call: ./packaging/gpu-kit.sh, then the call (from the repository root):
#   run  command: bash bench/gpu/check.sh   carry: [".gpukit"]   timeout_s: 600
# A dry run of this script on a machine without a GPU: bench/gpu/dry-run.sh (docs/BENCHMARKS.md).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=${OUT:-out/gpu-check}
mkdir -p "$out"
exec > >(tee "$out/check.log") 2>&1
trap 'sleep 1' EXIT   # let tee write the log's end before the device tool collects $OUT
start=$SECONDS
budget=${MPPDL_CHECK_BUDGET:-560}   # seconds; the device tool's limit is 600
device=${MPPDL_CHECK_DEVICE:-cuda:0}
jobs=$(nproc)
build=${MPPDL_CHECK_BUILD_DIR:-build-gpu}
kit=${MPPDL_GPU_KIT:-.gpukit}
scale=${MPPDL_CHECK_STAGE_SCALE:-1} # the stages' limits times this (the dry run's 2 cores)
left() { echo $((budget - (SECONDS - start))); }
stage() { echo; echo "== [$((SECONDS - start)) s] $*"; }
# within SECONDS CMD...: runs CMD for at most SECONDS, at most what the budget has left.
within() {
    local want=$(($1 * scale)); shift
    local have; have=$(left)
    [ "$want" -gt "$have" ] && want=$have
    if [ "$want" -le 5 ]; then echo "skipped (no time left): $*"; return 124; fi
    timeout --kill-after=5 "$want" "$@"
}

stage "machine"
date -u
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>/dev/null || echo "no nvidia-smi"
python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
"cudnn", torch.backends.cudnn.version(), "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)'
echo "$jobs CPUs; $(g++ --version | head -1); $(cmake --version | head -1); ninja $(ninja --version)"
command -v nvcc >/dev/null && nvcc --version | tail -2

stage "kit"
[ -d "$kit/root" ] || { echo "no $kit/: run ./packaging/gpu-kit.sh here and carry .gpukit"; exit 1; }
cat "$kit/MANIFEST"
cp -a "$kit/root/." / && ${MPPDL_CHECK_LDCONFIG:-ldconfig}
mkdir -p /usr/share/datasets/fashion-mnist
[ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || cp "$kit"/fashion-mnist/*.gz /usr/share/datasets/fashion-mnist/

stage "configure (gpu-headless)"
export MPPDL_TORCH_PREFIX=${MPPDL_TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}   # the H100/H200; no probing of the GPU at configure
[ -d /usr/local/cuda/bin ] && export PATH=/usr/local/cuda/bin:$PATH
export CMAKE_POLICY_VERSION_MINIMUM=3.5   # CMake 4 and the older package files of the kit
within 120 cmake --preset gpu-headless -B "$build" -DMPPDL_BENCH=OFF >"$out/configure.log" 2>&1
rc=$?
grep -E "mppdl:|Torch|CUDA|Error|error|Warning" "$out/configure.log" | head -40
if [ $rc -ne 0 ]; then
    tail -40 "$out/configure.log"
    cp "$build"/CMakeFiles/CMakeError.log "$build"/CMakeFiles/CMakeConfigureLog.yaml "$out/" 2>/dev/null
    echo "configure failed ($rc)"; exit 1
fi
grep -E "^(MPPDL_STB_LIBRARY|SQLite3_LIBRARY|ZLIB_LIBRARY_RELEASE|MPPDL_GLOO_INCLUDE_DIR|GTest_DIR|CLI11_DIR|nlohmann_json_DIR|Torch_DIR)[:=]" \
    "$build/CMakeCache.txt"
[ "${MPPDL_CHECK_STOP_AFTER:-}" = configure ] && { stage "done (configure only)"; exit 0; }

stage "build: mppdl and the gpu tests"
within 300 cmake --build $build -j "$jobs" --target mppdl mppdl_train_gpu_test mppdl_gpu_cli_test >"$out/build.log" 2>&1
rc=$?
grep -E "error|FAILED" "$out/build.log" | head -30
tail -2 "$out/build.log"
[ $rc -eq 0 ] || { echo "build failed ($rc)"; exit 1; }
$build/app/mppdl --version
$build/app/mppdl devices

stage "gpu tests"
within 150 ctest --test-dir $build -L gpu --output-on-failure >"$out/gpu-tests.log" 2>&1
echo "ctest -L gpu: exit $?"
grep -E "Test +#|tests passed|Skipped|Failed|\*\*\*" "$out/gpu-tests.log" | head -30

stage "benchmark: training on the GPU (bench/gpu_train.py)"
within 200 python3 -u bench/gpu_train.py --mppdl $build/app/mppdl --device "$device" ${MPPDL_CHECK_BENCH_FLAGS:-} \
    --markdown --json-out "$out/gpu_train.json"
echo "gpu_train: exit $?"

stage "benchmark: ONNX with onnxruntime (bench/gpu_onnx.py)"
within 60 python3 -u bench/gpu_onnx.py --mppdl $build/app/mppdl --models "$kit/models" --device "$device" \
    --json-out "$out/gpu_onnx.json"
echo "gpu_onnx: exit $?"

stage "with the time left: the whole build and the unit tests"
if within 150 cmake --build $build -j "$jobs" >>"$out/build.log" 2>&1; then
    within 120 ctest --test-dir $build -L unit -j "$jobs" --timeout 100 >"$out/unit-tests.log" 2>&1
    echo "ctest -L unit: exit $?"
    grep -E "tests passed|\(Failed\)|\(Timeout\)|Not Run" "$out/unit-tests.log" | head -30
else
    echo "the whole build did not finish: $(grep -c "FAILED" "$out/build.log") failed, $(tail -1 "$out/build.log")"
fi
stage "done"
