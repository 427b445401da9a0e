#!/usr/bin/env bash
# The CPU test suite built with AddressSanitizer + UndefinedBehaviorSanitizer
# (CMake preset "asan", binary dir ./build-asan): every GoogleTest suite and CLI
# script, with any memory error, leak or undefined behaviour failing its test.
# Run after launch/test.sh in CI (.ci/run); about 30 minutes on 2 cores, most of it
# the build. Extra arguments go to ctest, e.g. -R Safetensors or -L unit.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
start=$SECONDS
cmake --preset asan
cmake --build --preset asan -j "$jobs"
built=$SECONDS
# The preset's environment: halt on the first finding, the committed leak
# suppressions (third-party code only, tests/sanitizers/lsan.supp), root-run mpirun.
# intercept_tls_get_addr=0: GCC 12's runtime (Debian bookworm) can take a malloc'd
# dynamic-TLS block of a dlopen'd library (Open MPI's components) for a pre-2.25
# glibc header and read garbage as its bounds; LeakSanitizer's tracer then dies
# at exit with "Tracer caught signal 11" on a rank that passed (seen in CI on
# script.dist_train_resume_world_size). Fixed upstream in GCC 14 / LLVM 17.
ctest --preset asan -j "$jobs" "$@"
echo "sanitizers: build $((built - start)) s, tests $((SECONDS - built)) s"
