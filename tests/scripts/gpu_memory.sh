#!/usr/bin/env bash
# The GPU memory estimate and out-of-memory (issue 21), on a GPU machine; skipped (77) elsewhere.
# - A run that cannot fit is refused before the model loads: exit 2, in seconds, naming what to change.
# - --no-memory-check (with a --memory-budget past the GPU) lets it start; the out-of-memory in step 1 is then
#   one clean line, exit 1.
# - A run that fits logs its measured peak beside the estimate; the estimate must not be far below it.
# $1 = qtrain binary, $2 = source dir.
set -u
qtrain=$1; src=$2
source "$src/tests/scripts/lib/gpu_probe.sh"
source "$src/tests/scripts/lib/random_shard.sh"
source "$src/tests/scripts/lib/expect_error.sh"
require_gpu
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
err=$tmp/err; fail=0
# Enough tokens for full batches (random ids below 32000: 2 steps of 256 x 2048).
random_shard "$tmp/tokens.bin" $((2 * 256 * 2049)) 32000
D=(--data "$tmp/tokens.bin" --format bin --device cuda --log-every 1)
gpu_probe "${D[@]}"

# 7B in BF16 at 128 x 2048 tokens needs 146 GiB even recomputing every layer (the activation plan's
# least): refused before loading, with the way out. (At 64 x 2048 the plan recomputes layers and it fits.)
t0=$(date +%s)
expect_error "7B batch 128 x 2048" "needs GiB free --batch-size --grad-accum" \
  train --model random:llama-7b --method lora "${D[@]}" --steps 2 --seq-len 2048 --batch-size 128 --out "$tmp/a"
(( $(date +%s) - t0 < 60 )) || { echo "FAIL the refusal took $(( $(date +%s) - t0 )) s: it should come before loading"; fail=1; }
[[ -e $tmp/a/checkpoint ]] && { echo "FAIL a refused run wrote a checkpoint"; fail=1; }

# A full fine-tune of 70B (16 bytes of F32 state per weight) does not fit at all: the advice is a 4-bit base.
expect_error "70B full" "alone does not fit --method qlora" \
  train --model random:llama-70b --method full "${D[@]}" --steps 2 --seq-len 512 --batch-size 1 --out "$tmp/b"

# --no-memory-check with a --memory-budget beyond the GPU: the plan keeps every layer, the run starts and
# runs out of memory in step 1 (SmolLM2 at 256 x 2048 tokens keeps about 250 GB of activations): exit 1,
# one line that says what to change, no CUDA error dump.
"$qtrain" train --model random:smollm2-135m --method qlora "${D[@]}" --steps 2 --seq-len 2048 --batch-size 256 \
  --memory-budget 1000 --no-memory-check --out "$tmp/c" > "$tmp/log" 2>&1; rc=$?
line=$(grep "qtrain: error" "$tmp/log" | head -1)
if [[ $rc == 1 ]] && grep -q "out of GPU memory in step 1 .*--batch-size.*--grad-checkpoint" <<<"$line" &&
   ! grep -qi "terminate called\|core dumped\|Aborted" "$tmp/log"; then
  echo "ok   out of memory: exit 1: ${line:0:200}"
else
  echo "FAIL out of memory: exit $rc"; tail -5 "$tmp/log"; fail=1
fi

# Runs that fit: the estimate against the allocator's measured peak after step 1.
check_peak() {
  local what=$1; shift
  "$qtrain" train "${D[@]}" --steps 2 "$@" --out "$tmp/p" --overwrite > "$tmp/log" 2>&1 || { echo "FAIL $what: run failed"; tail -3 "$tmp/log"; fail=1; return; }
  local l peak est
  l=$(grep -o "peak [0-9.]* GiB (estimated [0-9.]*)" "$tmp/log" | head -1)
  peak=$(awk '{print $2}' <<<"$l"); est=$(tr -d ')' <<<"$l" | awk '{print $5}')
  if [[ -n $peak ]] && awk -v p="$peak" -v e="$est" 'BEGIN { exit !(e >= 0.9 * p && e <= 2.5 * p + 0.6) }'; then
    echo "ok   $what: peak $peak GiB, estimate $est GiB"
  else
    echo "FAIL $what: peak '$peak' GiB, estimate '$est' GiB (want 0.9x to 2.5x)"; fail=1
  fi
}
check_peak "SmolLM2 QLoRA 8 x 512" --model random:smollm2-135m --method qlora --batch-size 8 --seq-len 512
check_peak "SmolLM2 LoRA 16 x 1024 checkpointed" --model random:smollm2-135m --method lora --batch-size 16 --seq-len 1024 --grad-checkpoint
check_peak "SmolLM2 full 4 x 512" --model random:smollm2-135m --method full --batch-size 4 --seq-len 512
exit $fail
