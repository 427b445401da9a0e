#!/usr/bin/env bash
# Configures and builds qtrain into ./build (CUDA backend when nvcc is found).
#   bash launch/build.sh [--target NAME] [cmake options, e.g. -DQTRAIN_CUDA=OFF]
# --target builds that target only (launch/quickstart.sh: --target qtrain); the
# default is everything, the tests and benchmarks included.
set -euo pipefail
cd "$(dirname "$0")/.."
target=()
if [[ "${1:-}" == --target ]]; then
  [[ -n "${2:-}" ]] || { echo "build.sh: --target needs a target name (e.g. qtrain)" >&2; exit 2; }
  target=(--target "$2")
  shift 2
fi
# nvcc often lives outside PATH on CUDA installs.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$jobs" "${target[@]}"
