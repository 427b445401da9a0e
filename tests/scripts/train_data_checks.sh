#!/usr/bin/env bash
# Data that trains nothing, or evaluates on itself, is not run silently:
# - instruction data whose every response is past --seq-len (no token in the loss) ran all its
#   steps at loss 0 and exited 0; now exit 1 after --collapse-steps, naming the cause, no adapter;
# - --eval-data that is the training data (the same file, or a flat directory whose names
#   mention no split: every split is all its files) scores the training set: a warning says so.
# $1 = qtrain binary, $2 = source dir.
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
export OMP_NUM_THREADS=1
F=$src/tests/fixtures

"$qtrain" train --model "$F/tiny-gpt2" --tokenizer "$src/../shared/data/gpt2-tokenizer" \
  --data "$F/data/alpaca-tiny.jsonl" --seq-len 8 --no-pack --batch-size 2 --steps 20 --device cpu \
  --out "$tmp/tokenless" > "$tmp/log" 2>&1; rc=$?
if [[ $rc == 1 ]] && grep -q "qtrain: error: step 3: no token in the loss.*--seq-len" "$tmp/log" \
   && [[ ! -e $tmp/tokenless/adapter ]]; then
  echo "ok   every response past --seq-len: exit 1 at step 3"
else
  echo "FAIL every response past --seq-len: exit $rc"; tail -3 "$tmp/log"; fail=1
fi

"$qtrain" train --model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --batch-size 1 \
  --seq-len 16 --device cpu --steps 1 --eval-data "$F/tiny-llama-eval.jsonl" --out "$tmp/evalsame" > "$tmp/log" 2>&1; rc=$?
if [[ $rc == 0 ]] && grep -q "warning.*--eval-data .*tiny-llama-eval.jsonl.*same files as --data" "$tmp/log"; then
  echo "ok   --eval-data = --data: warned"
else
  echo "FAIL --eval-data = --data: exit $rc, no warning"; tail -3 "$tmp/log"; fail=1
fi
exit $fail
