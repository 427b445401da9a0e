#!/usr/bin/env bash
# Configures and builds qtrain into ./build (CUDA backend when nvcc is found).
# Extra arguments go to cmake, e.g. -DQTRAIN_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
# nvcc often lives outside PATH on CUDA installs.
if ! command -v nvcc >/dev/null && [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH=/usr/local/cuda/bin:$PATH; fi
jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$jobs"
