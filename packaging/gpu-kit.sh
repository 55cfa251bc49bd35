#!/usr/bin/env bash
# Gathers what the GPU machine lacks into .gpukit/ (git-ignored), for bench/gpu/check.sh there.
#
# The GPU machine has CUDA, PyTorch (whose libtorch the gpu-headless preset builds against), a
# compiler, CMake and ninja, but none of mppdl's other build dependencies and no network. Those
# are header-only or small C libraries, so they travel from this Debian machine's own packages:
#   .gpukit/root/usr/local/...   the files of the packages below, /usr moved to /usr/local (the
#                                 compiler's, the linker's and CMake's default search path there);
#                                 their CMake package files compute their prefix, so they follow
#   .gpukit/fashion-mnist/        Debian's dataset-fashion-mnist, for the tests and benchmarks
#   .gpukit/models/               models trained, exported to ONNX and predicted (CSV) here, for
#                                 bench/gpu_onnx.py
# Usage: ./packaging/gpu-kit.sh [BUILD_DIR [KIT_DIR]]
#   BUILD_DIR: default build/, whose mppdl must have the ONNX export; KIT_DIR: default .gpukit
#   (what the device call carries; another one for the configure test, tests/CMakeLists.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
kit=${2:-.gpukit}
mppdl=$build/app/mppdl
[ -x "$mppdl" ] || { echo "gpu-kit: no $mppdl: run ./packaging/build.sh first" >&2; exit 1; }

# The build dependencies the GPU machine's image lacks (CMakeLists.txt's find_package list without
# Torch, Qt, PostgreSQL and ONNX, which gpu-headless leaves out). libgloo-dev: the Gloo headers
# that c10d's ProcessGroupGloo.hpp includes, used only where the libtorch brings none of its own.
packages=(nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libsqlite3-dev libsqlite3-0
          zlib1g-dev zlib1g libstb-dev libstb0 libgloo-dev)

rm -rf "$kit"
mkdir -p "$kit/root/usr/local" "$kit/fashion-mnist" "$kit/models"
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || { echo "gpu-kit: package $p is not installed (packaging/install-deps.sh)" >&2; exit 1; }
    dpkg -L "$p" | while read -r f; do
        case "$f" in
            /usr/share/doc/* | /usr/share/man/* | /usr/share/lintian/* | /usr/src/*) continue ;;
            */libgloo* | */cmake/Gloo/*) continue ;;   # the libtorch has Gloo compiled in: headers only
            */libsqlite3.a | */libz.a | */libstb.a) continue ;; # mppdl links the shared ones
        esac
        [ -d "$f" ] && continue
        if [ -f "$f" ] || [ -L "$f" ]; then
            f=${f#/usr}; f=/usr${f} # zlib1g's /lib/... is /usr/lib/... (merged /usr)
            dest="$kit/root/usr/local/${f#/usr/}"
            mkdir -p "$(dirname "$dest")"
            cp -P "$f" "$dest"
        fi
    done
done
# Symbolic links that point outside the package (absolute targets) are copied as files.
find "$kit/root" -type l | while read -r link; do
    target=$(readlink "$link")
    case "$target" in
        /*) rm "$link"; cp "$target" "$link" ;;
    esac
done
dangling=$(find "$kit/root" -xtype l)
[ -z "$dangling" ] || { echo "gpu-kit: links to nothing in the kit: $dangling" >&2; exit 1; }

cp /usr/share/datasets/fashion-mnist/*.gz "$kit/fashion-mnist/"

# Models for the onnxruntime check: trained briefly here (their accuracy is not the point), each
# as an mppdl model file and its ONNX export. The check predicts the test set with both.
for arch in fmnist_cnn lenet5 mlp; do
    "$mppdl" train --data /usr/share/datasets/fashion-mnist --arch "$arch" --epochs 1 --limit 10000 \
        --batch-size 128 --lr 0.05 --momentum 0.9 --seed 1 --no-project -q --save "$kit/models/$arch.model" >/dev/null
    "$mppdl" export --model "$kit/models/$arch.model" -o "$kit/models/$arch.onnx" >/dev/null
    "$mppdl" predict --model "$kit/models/$arch.model" --data /usr/share/datasets/fashion-mnist \
        --out "$kit/models/$arch.cpu.csv" >/dev/null
done

{
    echo "mppdl GPU kit, made $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release; echo "$PRETTY_NAME")"
    echo "commit $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!.gpukit' || echo ' (with local changes)')"
    for p in "${packages[@]}"; do dpkg-query -W -f '${Package} ${Version}\n' "$p"; done
    echo "dataset-fashion-mnist $(dpkg-query -W -f '${Version}' dataset-fashion-mnist 2>/dev/null || echo '?')"
    "$mppdl" --version | head -1
} > "$kit/MANIFEST"
du -sh "$kit" | awk '{print "gpu-kit: " $1 " in '"$kit"'/ (the device tool carries at most 64 MiB with the tree)"}'
