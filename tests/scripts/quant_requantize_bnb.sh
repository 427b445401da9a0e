#!/usr/bin/env bash
# qtrain export --merge --requantize nf4: the written model must load in
# transformers + bitsandbytes as a 4-bit model whose weights are bitsandbytes'
# own NF4 quantization of the merged weights (checked by
# tests/scripts/check_requantize_bnb.py). Skips (77) without torch/bitsandbytes.
set -euo pipefail
QTRAIN=$1
SRC=$2
# A Python with torch, transformers and bitsandbytes: $QTRAIN_PYTHON, else ../venv/bin/python, else python3.
PY=""
for cand in "${QTRAIN_PYTHON:-}" "$SRC/../venv/bin/python" python3; do
  if [[ -n $cand ]] && "$cand" -c "import torch, transformers, bitsandbytes" 2>/dev/null; then PY=$cand; break; fi
done
[[ -n $PY ]] || { echo "skipped: no Python with torch, transformers and bitsandbytes"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
M=$SRC/tests/fixtures/tiny-llama
A=$SRC/tests/fixtures/tiny-llama-lora
"$QTRAIN" export --model "$M" --adapter "$A" --out "$tmp/nf4" --merge --format hf --requantize nf4
"$QTRAIN" export --model "$M" --adapter "$A" --out "$tmp/f32" --merge --format hf --dtype f32
"$PY" "$SRC/tests/scripts/check_requantize_bnb.py" "$tmp/nf4" "$tmp/f32"
# bad value: exit 2 with a message
set +e
"$QTRAIN" export --model "$M" --adapter "$A" --out "$tmp/x" --merge --format hf --requantize nf3 2>/dev/null
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "--requantize nf3 exited $rc, expected 2" >&2; exit 1; }
