#!/usr/bin/env bash
# Builds qtrain and runs the whole test suite (CTest: GoogleTest suites and the
# CLI / mpirun scripts). GPU tests report "skipped: no GPU" on machines without one.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/build.sh "$@"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ctest --test-dir build --output-on-failure -j 2 --timeout 900
