#!/usr/bin/env bash
# --resume continues bit-exactly: 3 steps + resume to 6 gives the same losses
# and the same adapter bytes as 6 uninterrupted steps (dropout and a cosine
# schedule on, so RNG and schedule state must both carry over).
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
F=$src/tests/fixtures
A=(--model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --seq-len 16 --batch-size 1
   --lr 1e-2 --lora-dropout 0.1 --schedule cosine --warmup 2 --log-every 100)
"$qtrain" train "${A[@]}" --steps 6 --out "$tmp/full" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
"$qtrain" train "${A[@]}" --steps 6 --stop-at 3 --out "$tmp/part" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
"$qtrain" train "${A[@]}" --steps 6 --save-every 3 --out "$tmp/part" --resume "$tmp/part" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
losses() { python3 -c "import json,sys; print([ (j['step'], j['loss']) for j in map(json.loads, open(sys.argv[1])) if j.get('kind') != 'eval'])" "$1"; }
a=$(losses "$tmp/full/metrics.jsonl"); b=$(losses "$tmp/part/metrics.jsonl")
[[ "$a" == "$b" ]] || { echo "FAIL: losses differ"; echo "$a"; echo "$b"; exit 1; }
cmp "$tmp/full/adapter/adapter_model.safetensors" "$tmp/part/adapter/adapter_model.safetensors" \
  || { echo "FAIL: adapters differ after resume"; exit 1; }
echo "resume_exact: ok ($a)"
