#!/usr/bin/env bash
# Set-up, build, then every test through ctest. Exits non-zero on any failure.
# Extra arguments go to ctest, e.g. ./packaging/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

./packaging/install-deps.sh
./packaging/build.sh

# Tests run two at a time on two cores; each limits libtorch to one thread so they do not thrash.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ctest --test-dir build --output-on-failure -j "${MPPDL_TEST_JOBS:-2}" "$@"
