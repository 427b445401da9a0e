#!/usr/bin/env bash
# Q-BLoRA and QA-BLoRA from the command line: --method qblora trains, its QBLORA
# adapter evaluates back to the loss it printed and merges; an indivisible
# --blora-lambda is a clear error (exit 2); --method qablora trains, export
# --merge writes a pure 4-bit model (U8 codes, no float Linear weight) whose eval
# loss equals the adapter's.
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
F=$src/tests/fixtures
D="--data $F/tiny-llama-eval.jsonl --format input_ids --seq-len 16"
source "$(dirname "$0")/lib/cli_checks.sh"

"$qtrain" train --model "$F/tiny-llama" $D --method qblora --blora-lambda 2 --lora-r 4 --steps 5 --batch-size 2 \
  --lr 1e-2 --out "$tmp/qb" > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: train --method qblora"; exit 1; }
grep -q '"peft_type": "QBLORA"' "$tmp/qb/adapter/adapter_config.json" && grep -q '"blora_lambda": 2' "$tmp/qb/adapter/adapter_config.json" \
  || { cat "$tmp/qb/adapter/adapter_config.json"; echo "FAIL: QBLORA adapter_config"; exit 1; }
"$qtrain" eval --model "$F/tiny-llama" --adapter "$tmp/qb/adapter" --method qblora $D > "$tmp/e1" 2>&1 \
  || { cat "$tmp/e1"; echo "FAIL: eval the qblora adapter"; exit 1; }
"$qtrain" export --model "$F/tiny-llama" --adapter "$tmp/qb/adapter" --method qblora --merge --dtype f32 --out "$tmp/qbm" \
  > "$tmp/x" 2>&1 || { cat "$tmp/x"; echo "FAIL: export --merge of qblora"; exit 1; }
"$qtrain" eval --model "$tmp/qbm" $D > "$tmp/e2" 2>&1 || { cat "$tmp/e2"; echo "FAIL: eval merged qblora"; exit 1; }
close "$(loss "$tmp/e2")" "$(loss "$tmp/e1")" 1e-4 || { echo "FAIL: qblora merged $(loss "$tmp/e2") vs adapter $(loss "$tmp/e1")"; exit 1; }

"$qtrain" train --model "$F/tiny-llama" $D --method qblora --blora-lambda 3 --steps 1 --out "$tmp/bad" > "$tmp/err" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "blora-lambda 3: module 'model.layers.0" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: lambda 3 (rc $rc)"; exit 1; }

"$qtrain" train --model "$F/tiny-llama" $D --method qablora --steps 5 --batch-size 2 --lr 1e-2 --out "$tmp/qa" > "$tmp/log" 2>&1 \
  || { cat "$tmp/log"; echo "FAIL: train --method qablora"; exit 1; }
"$qtrain" eval --model "$F/tiny-llama" --adapter "$tmp/qa/adapter" --method qablora $D > "$tmp/e3" 2>&1 \
  || { cat "$tmp/e3"; echo "FAIL: eval the qablora adapter"; exit 1; }
"$qtrain" export --model "$F/tiny-llama" --adapter "$tmp/qa/adapter" --method qablora --merge --out "$tmp/qam" > "$tmp/x" 2>&1 \
  || { cat "$tmp/x"; echo "FAIL: export --merge of qablora"; exit 1; }
"$qtrain" eval --model "$tmp/qam" --method qablora $D > "$tmp/e4" 2>&1 || { cat "$tmp/e4"; echo "FAIL: eval merged 4-bit"; exit 1; }
close "$(loss "$tmp/e4")" "$(loss "$tmp/e3")" 1e-5 || { echo "FAIL: qablora merged 4-bit $(loss "$tmp/e4") vs adapter $(loss "$tmp/e3")"; exit 1; }
packed_linears "$tmp/qam/model.safetensors" asym4_zero || { echo "FAIL: the merged model is not pure 4-bit"; exit 1; }
echo "PASS: qblora / qablora CLI"
