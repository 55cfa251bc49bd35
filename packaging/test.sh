#!/usr/bin/env bash
# Set-up, build, a throwaway PostgreSQL server, then every test through ctest. Exits non-zero on any failure.
# Extra arguments go to ctest, e.g. ./packaging/test.sh -L unit
set -euo pipefail
cd "$(dirname "$0")/.."

./packaging/install-deps.sh
./packaging/build.sh

# A throwaway PostgreSQL 15 on 127.0.0.1 for the postgres tests (MPPDL_TEST_PG, MPPDL_TEST_PG_PASSWORD,
# MPPDL_TEST_PG_SUPERUSER), stopped and deleted when this script exits. Fails here if it cannot start;
# MPPDL_TEST_PG already set means: use that server instead.
. ./packaging/pg-test-server.sh

# Tests run two at a time on two cores; each limits libtorch to one thread so they do not thrash.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
ctest --test-dir build --output-on-failure -j "${MPPDL_TEST_JOBS:-2}" "$@"
