#!/usr/bin/env bash
# qtrain export --merge --method qlora: merges the adapter into the
# dequantized NF4 base (differs from the lora merge of the dense base);
# an unknown --method exits 2.
set -euo pipefail
QTRAIN=$1
SRC=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
M=$SRC/tests/fixtures/tiny-llama
A=$SRC/tests/fixtures/tiny-llama-lora
"$QTRAIN" export --model "$M" --adapter "$A" --out "$tmp/q" --merge --format hf --dtype f32 --method qlora
"$QTRAIN" export --model "$M" --adapter "$A" --out "$tmp/d" --merge --format hf --dtype f32 --method lora
test -s "$tmp/q/model.safetensors"
if cmp -s "$tmp/q/model.safetensors" "$tmp/d/model.safetensors"; then
  echo "qlora merge equals the dense merge: the base was not quantized" >&2
  exit 1
fi
set +e
"$QTRAIN" export --model "$M" --adapter "$A" --out "$tmp/x" --merge --format hf --method nf3-lora 2>/dev/null
rc=$?
set -e
[ "$rc" -eq 2 ] || { echo "unknown --method exited $rc, expected 2" >&2; exit 1; }
