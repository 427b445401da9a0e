#!/usr/bin/env bash
# --loftq-iters end to end: a QLoRA run on the tiny LLaMA logs LoftQ's error per
# module and records the flag for --resume; methods without a quantized base or
# adapters that cannot start from B A are refused (exit 2, naming the flag).
# Usage: loftq_cli.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; fx=$2/tests/fixtures
if "$qtrain" train --help 2>&1 | grep -q "not built yet"; then echo "skipped: qtrain train not built yet"; exit 77; fi
err=$(mktemp); out=$(mktemp -d); trap 'rm -rf "$err" "$out"' EXIT
fail=0
source "$(dirname "$0")/lib/expect_error.sh"

run=(--model "$fx/tiny-llama" --data "$fx/tiny-llama-eval.jsonl" --seq-len 16 --batch-size 2 --steps 1 --device cpu)
if ! "$qtrain" train "${run[@]}" --method qlora --loftq-iters 2 --lora-r 8 --lora-alpha 8 --out "$out/ok" >"$err" 2>&1; then
  echo "FAIL qlora --loftq-iters 2 did not train:"; tail -n5 "$err"; fail=1
else
  n=$(grep -c "loftq: model.layers.*r 8 x2" "$err")
  if [[ $n -ne 14 ]]; then echo "FAIL want 14 'loftq:' module lines (2 layers x 7 projections), got $n"; fail=1
  else echo "ok   qlora --loftq-iters 2 trains, 14 modules initialised"; fi
  grep -q '"loftq_iters": *2' "$out/ok/run.json" "$out/ok/checkpoint/"*.json 2>/dev/null \
    && echo "ok   loftq_iters recorded for --resume" || { echo "FAIL loftq_iters not in run.json/checkpoint"; fail=1; }
fi
# eval and export rebuild the LoftQ base when told: the adapter on it and the
# merged f32 export give the same loss; on a plain QLoRA base it is another one.
loss() { "$qtrain" eval --data "$fx/tiny-llama-eval.jsonl" --seq-len 16 --batch-size 2 --device cpu "$@" 2>/dev/null |
  tail -n1 | grep -o '"loss":[^,]*' | cut -d: -f2; }
if [[ -d $out/ok/adapter ]]; then
  with=$(loss --model "$fx/tiny-llama" --method qlora --adapter "$out/ok/adapter" --loftq-iters 2)
  plain=$(loss --model "$fx/tiny-llama" --method qlora --adapter "$out/ok/adapter")
  "$qtrain" export --model "$fx/tiny-llama" --adapter "$out/ok/adapter" --method qlora --loftq-iters 2 --merge \
    --format hf --dtype f32 --out "$out/merged" >/dev/null 2>"$err" || { echo "FAIL export:"; tail -n3 "$err"; fail=1; }
  merged=$(loss --model "$out/merged")
  if awk -v a="$with" -v b="$merged" -v p="$plain" 'BEGIN { d = a - b; e = a - p; exit !(a != "" && d * d < 1e-10 && e * e > 1e-8) }'; then
    echo "ok   eval --loftq-iters 2 = merged export ($with), plain QLoRA base $plain"
  else echo "FAIL eval --loftq-iters 2 '$with', merged export '$merged', plain base '$plain'"; fail=1; fi
fi
# eval of OUT/adapter reads OUT/run.json: a base built otherwise than in training (the default
# --method lora, or qlora without --loftq-iters 2) gives other numbers, so it warns naming the flags.
if [[ -d $out/ok/adapter ]]; then
  ev=(eval --model "$fx/tiny-llama" --data "$fx/tiny-llama-eval.jsonl" --seq-len 16 --batch-size 2 --device cpu --adapter "$out/ok/adapter")
  "$qtrain" "${ev[@]}" >"$err" 2>&1  # the log (spdlog) goes to stdout
  grep -q "trained on a base built with --method qlora --loftq-iters 2" "$err" && echo "ok   eval on another base warns" \
    || { echo "FAIL eval with the default --method should warn naming --method qlora --loftq-iters 2:"; tail -n3 "$err"; fail=1; }
  "$qtrain" "${ev[@]}" --method qlora --loftq-iters 2 >"$err" 2>&1
  ! grep -q "trained on a base built with" "$err" && echo "ok   eval on the trained base does not warn" \
    || { echo "FAIL eval on the trained base warned:"; tail -n3 "$err"; fail=1; }
  # The other flags it compares, on a copy of the run whose run.json says hqq-lora at 2 bits.
  mkdir -p "$out/hq" && cp -r "$out/ok/adapter" "$out/hq/" \
    && sed -e 's/"method": *"qlora"/"method": "hqq-lora"/g' -e 's/"hqq_bits": *4/"hqq_bits": 2/' -e 's/"loftq_iters": *2/"loftq_iters": -1/' "$out/ok/run.json" >"$out/hq/run.json"
  ev[${#ev[@]}-1]="$out/hq/adapter"
  "$qtrain" "${ev[@]}" --method hqq-lora >"$err" 2>&1
  grep -q "trained on a base built with --hqq-bits 2;" "$err" && echo "ok   eval at another --hqq-bits warns" \
    || { echo "FAIL eval with --hqq-bits 4 of a 2-bit run should warn naming --hqq-bits 2:"; tail -n3 "$err"; fail=1; }
fi
expect_error "--loftq-iters on a float base" "--loftq-iters lora" train "${run[@]}" --method lora --loftq-iters 1 --out "$out/r1"
expect_error "--loftq-iters with DoRA" "--loftq-iters lora" train "${run[@]}" --method qlora --adapter-type dora \
  --loftq-iters 1 --out "$out/r2"
# Q-BLoRA's factors act on the pooled input: refused like DoRA, not an internal copy error.
expect_error "--loftq-iters with Q-BLoRA" "--loftq-iters lora" train "${run[@]}" --method qblora --loftq-iters 1 \
  --out "$out/r4"
expect_error "--loftq-iters -2 (-1 is the method's default)" "--loftq-iters" train "${run[@]}" --method qlora --loftq-iters -2 --out "$out/r3"
exit $fail
