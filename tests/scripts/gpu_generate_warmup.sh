#!/usr/bin/env bash
# qtrain generate --warmup on the GPU, where the decode step is a captured CUDA
# graph that the warmup leaves in place: greedy and seeded-sampling runs give
# the same tokens with --warmup 2 as without, and the timed run prefills the
# whole prompt. (generate_cli.sh checks the same on the CPU.) On a GPU machine; skipped (77) elsewhere.
# Usage: gpu_generate_warmup.sh QTRAIN_BINARY SOURCE_DIR; WARMUP_MODEL / WARMUP_METHOD pick another model
# (default random:smollm2-135m, qlora).
set -uo pipefail
qtrain=$1; src=$2; model=${WARMUP_MODEL:-random:smollm2-135m}; method=${WARMUP_METHOD:-qlora}
source "$src/tests/scripts/lib/gpu_probe.sh"
require_gpu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
ids_of() { python3 -c 'import json,sys; print(",".join(map(str, json.loads(sys.stdin.readline())["ids"])))'; }
prompt=$(python3 -c 'print(",".join(str(7 + (i * 37) % 1000) for i in range(128)))')
for mode in "--temperature 0" "--temperature 0.8 --top-k 50 --seed 3"; do
  run() { "$qtrain" generate --model "$model" --method "$method" --device cuda --prompt-ids "$prompt" \
            --max-new-tokens 64 --ignore-eos --ids $mode "$@"; }
  a=$(run 2>"$tmp/cold.err" | ids_of)
  grep -q "without CUDA\|no usable GPU" "$tmp/cold.err" && { echo "skipped: $(tail -1 "$tmp/cold.err")"; exit 77; }
  w=$(run --warmup 2 2>"$tmp/warm.err" | ids_of)
  if [ -z "$a" ] || [ "$a" != "$w" ]; then
    cat "$tmp/cold.err" "$tmp/warm.err"; echo "FAIL $mode: --warmup 2 gave [$w], without it [$a]"; fail=1
  elif ! grep -q 'prompt 128 tokens (128 run)' "$tmp/warm.err"; then
    cat "$tmp/warm.err"; echo "FAIL $mode: the timed run after --warmup did not prefill the whole prompt"; fail=1
  else
    echo "ok   $mode: same 64 tokens with --warmup 2"
    grep -hE 'ms/token|prefill' "$tmp/cold.err" | sed 's/^/     cold: /' | head -2
    grep -hE 'ms/token|prefill' "$tmp/warm.err" | sed 's/^/     warm: /' | head -2
  fi
done
exit $fail
