#!/usr/bin/env bash
# bench/gpu/check.sh on this machine, without a GPU, to try the script and the kit before a device
# call (whose 15 minutes a session cannot spend on a typo). Like the GPU machine, the build finds
# mppdl's dependencies only in the kit: in a private mount namespace, /usr/local is an empty
# tmpfs that the kit is installed into, and Debian's copies of the kit's headers and CMake package
# files are hidden. libtorch is Debian's (CPU), the benchmarks run on the CPU with few rows, and
# the gpu tests skip. Needs root (unshare); exit 77 otherwise.
#   bench/gpu/dry-run.sh                  the whole check.sh with .gpukit (./packaging/gpu-kit.sh
#                                         first); about 20 minutes on 2 cores, most of it the build
#   bench/gpu/dry-run.sh --configure-only  makes a kit from $MPPDL_BUILD_DIR (default build/) and
#                                         configures gpu-headless with it, in that build directory:
#                                         the ctest gpu.KitConfigures, half a minute
#   bench/gpu/dry-run.sh -- CMD ...        CMD in the namespace with .gpukit installed (to rebuild
#                                         build-gpu/ after a change: -- ninja -C build-gpu)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "dry-run: needs root for a private mount namespace" >&2; exit 77; }
command=(bash bench/gpu/check.sh)
export MPPDL_GPU_KIT=${MPPDL_GPU_KIT:-.gpukit}
OUT=$PWD/out/gpu-dry-run
case "${1:-}" in
    --configure-only)
        build=$(realpath "${MPPDL_BUILD_DIR:-build}")
        export MPPDL_GPU_KIT=$build/gpu-kit-test MPPDL_CHECK_BUILD_DIR=$build/gpu-configure-test
        export MPPDL_CHECK_STOP_AFTER=configure
        OUT=$build/gpu-configure-test-out
        ./packaging/gpu-kit.sh "$build" "$MPPDL_GPU_KIT"
        ;;
    --) shift; command=("$@") ;;
    "") ;;
    *) echo "usage: $0 [--configure-only | -- CMD ...]" >&2; exit 2 ;;
esac
[ -d "$MPPDL_GPU_KIT/root" ] || { echo "dry-run: no $MPPDL_GPU_KIT/: run ./packaging/gpu-kit.sh first" >&2; exit 1; }
mkdir -p "$OUT/bin"
ln -sf /usr/bin/python3 "$OUT/bin/python3"   # Debian's Python has torch 1.13
export OUT PATH=$OUT/bin:$PATH
# ldconfig would rewrite this machine's /etc/ld.so.cache for a /usr/local it does not see: the dry
# run finds the kit's libraries through the binaries' RPATH instead.
export MPPDL_CHECK_LDCONFIG=true
export MPPDL_CHECK_DEVICE=cpu MPPDL_CHECK_BUDGET=${MPPDL_CHECK_BUDGET:-5400} MPPDL_CHECK_STAGE_SCALE=12
export MPPDL_TORCH_PREFIX=/usr/lib/x86_64-linux-gnu/cmake
export MPPDL_CHECK_BENCH_FLAGS="--limit 3000 --epochs 2 --segments 2 --arch lenet5"
exec unshare --mount --propagation private bash -c '
    set -e
    mount -t tmpfs tmpfs /usr/local
    cp -a "$MPPDL_GPU_KIT/root/usr/local/." /usr/local/
    empty=$(mktemp -d)
    for d in /usr/include/nlohmann /usr/include/CLI /usr/include/gtest /usr/include/gmock /usr/include/stb \
             /usr/include/gloo /usr/share/cmake/nlohmann_json /usr/share/cmake/CLI11 \
             /usr/lib/x86_64-linux-gnu/cmake/GTest /usr/include/onnx /usr/lib/x86_64-linux-gnu/cmake/ONNX; do
        mount --bind "$empty" "$d"
    done
    for f in /usr/include/sqlite3.h /usr/include/zlib.h /usr/include/zconf.h; do mount --bind /dev/null "$f"; done
    exec "$@"
' dry-run "${command[@]}"
