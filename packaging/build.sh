#!/usr/bin/env bash
# Configures (once) and builds mppdl into build/; incremental on later calls.
# Extra arguments go to CMake's configure step, e.g. -DMPPDL_GUI=ON.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir=${MPPDL_BUILD_DIR:-build}
if [ ! -f "$build_dir/build.ninja" ] || [ $# -gt 0 ]; then
  cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
# Two jobs: libtorch translation units need ~1.5 GB each; more jobs than cores only thrash.
cmake --build "$build_dir" -j "${MPPDL_JOBS:-$(nproc)}"
