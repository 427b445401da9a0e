#!/usr/bin/env bash
# The instruction-tuning recipe (configs/qlora-instruct.json: QLoRA's and the thesis's
# settings) runs on the CPU with a tiny model and a tiny Alpaca file, and trains on the
# responses only: the predicted tokens of one step over the whole file are exactly the
# response tokens + EOS of every record, each response cut to --target-max-len.
# $1 = qtrain binary, $2 = source dir. Needs python3 (JSON handling only).
set -u
qtrain=$1; src=$2
command -v python3 >/dev/null || { echo "skipped: no python3"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
F=$src/tests/fixtures; data=$F/data/alpaca-tiny.jsonl; tok=$src/../shared/data/gpt2-tokenizer
[[ -d $tok ]] || { echo "skipped: no $tok"; exit 77; }
fail=0
T=32  # --target-max-len below; 20 records = batch 10 x accum 2: one step sees each record once
if ! "$qtrain" train --config "$src/configs/qlora-instruct.json" --model "$F/tiny-gpt2" --tokenizer "$tok" \
    --data "$data" --seq-len 128 --source-max-len 64 --target-max-len $T --batch-size 10 --grad-accum 2 \
    --steps 1 --lora-r 4 --device cpu --out "$tmp/run" > "$tmp/log" 2>&1; then
  cat "$tmp/log"; echo "FAIL: qtrain train --config configs/qlora-instruct.json"; exit 1
fi
# The recipe's settings reached the run (run.json's config): constant 2e-4, wd 0.001, clip 0.3, grouped.
python3 - "$tmp/run/run.json" <<'PY' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))["config"]
want = {"method": "qlora", "lr": 2e-4, "schedule": "constant", "warmup": 0, "weight_decay": 0.001, "clip": 0.3,
        "pack": False, "group_by_length": True, "format": "instruct", "lora_alpha": 16.0, "grad_checkpoint": True,
        "source_max_len": 64, "target_max_len": 32, "lora_r": 4}
bad = {k: (c.get(k), v) for k, v in want.items() if c.get(k) != v and not (isinstance(v, float) and abs(c.get(k, 0) - v) < 1e-9)}
print("FAIL: run.json config (got, want):", bad) if bad else print("ok   recipe settings in run.json")
sys.exit(1 if bad else 0)
PY
# Predicted tokens = every response (tokenized alone, as the record's segment is) + EOS, cut to T.
python3 -c "import json,sys; [print(json.dumps({'text': json.loads(l)['output']})) for l in open(sys.argv[1])]" "$data" \
  | "$qtrain" tokenize --tokenizer "$tok" > "$tmp/out_ids.jsonl" || { echo "FAIL: qtrain tokenize"; exit 1; }
read -r want uncut < <(python3 -c "
import json, sys
n = [len(json.loads(l)['ids']) + 1 for l in open(sys.argv[1])]
print(sum(min(x, $T) for x in n), sum(n))" "$tmp/out_ids.jsonl")
got=$(python3 -c "import json,sys; print(int(json.loads(open(sys.argv[1]).readline())['tokens']))" "$tmp/run/metrics.jsonl")
if [[ $got == "$want" && $want != "$uncut" ]]; then
  echo "ok   step 1 predicts $got tokens: the responses + EOS cut to $T ($uncut uncut), no prompt token"
else
  echo "FAIL: step 1 predicted $got tokens, want $want (responses + EOS cut to $T; $uncut uncut)"; fail=1
fi
# --group-by-length needs unpacked rows; the lengths must fit --seq-len.
"$qtrain" train --model "$F/tiny-gpt2" --data "$data" --group-by-length --steps 1 --out "$tmp/x" > "$tmp/err" 2>&1
[[ $? == 2 ]] && grep -q -- "--group-by-length needs --no-pack" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: --group-by-length with packing"; fail=1; }
"$qtrain" train --model "$F/tiny-gpt2" --data "$data" --no-pack --source-max-len 100 --target-max-len 100 --seq-len 128 \
  --steps 1 --out "$tmp/x" > "$tmp/err" 2>&1
[[ $? == 2 ]] && grep -q "exceeds --seq-len 128" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: source + target > seq-len"; fail=1; }
# The other presets are valid JSON with the recipe's settings (their adapters/methods may not exist in this build).
for p in qlora dora ia3 hqq2; do
  python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))
assert (c['lr'], c['schedule'], c['weight_decay'], c['clip'], c['pack'], c['group_by_length']) == (2e-4, 'constant', 0.001, 0.3, False, True), c
" "$src/configs/$p-instruct.json" || { echo "FAIL: configs/$p-instruct.json"; fail=1; }
done
exit $fail
