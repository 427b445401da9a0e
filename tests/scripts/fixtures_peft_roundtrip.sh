#!/usr/bin/env bash
# Round trip (issue 3): an adapter trained and written by qtrain loads in HF peft
# (PeftModel.from_pretrained) and gives the loss that `qtrain eval` gives, within 1e-4
# relative, for GPT-2 (Conv1D, fan_in_fan_out) and LLaMA, and for LLaMA with per-module
# ranks and alphas (rank_pattern / alpha_pattern, overlapping keys) and rsLoRA. Needs a Python with torch,
# transformers and peft: $QTRAIN_PYTHON, else ../venv/bin/python, else python3.
# Usage: fixtures_peft_roundtrip.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; src=$2; fx=$src/tests/fixtures
for cmd in train eval; do
  if "$qtrain" $cmd --help 2>&1 | grep -q "not built yet"; then echo "skipped: qtrain $cmd not built yet"; exit 77; fi
done
py=${QTRAIN_PYTHON:-}
for cand in "$py" "$src/../venv/bin/python" python3; do
  if [[ -n $cand ]] && "$cand" -c "import torch, transformers, peft" 2>/dev/null; then py=$cand; break; fi
  py=""
done
if [[ -z $py ]]; then echo "skipped: no Python with torch, transformers and peft"; exit 77; fi

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
pattern=(--rslora --lora-rank-pattern 'layers.1.mlp.down_proj=2,down_proj=6,^model.layers.0.self_attn.q_proj=3'
         --lora-alpha-pattern '(k|v)_proj=3,layers.1.mlp.up_proj=20')
for case in tiny-gpt2 tiny-llama tiny-llama+pattern; do
  model=${case%+*}; extra=()
  [[ $case == *+pattern ]] && extra=("${pattern[@]}")
  data=$fx/$model-eval.jsonl
  if ! "$qtrain" train --model "$fx/$model" --data "$data" --method lora --lora-r 4 --lora-alpha 8 "${extra[@]}" \
      --target all-linear --seq-len 16 --batch-size 2 --steps 3 --lr 1e-2 --seed 0 --device cpu \
      --out "$tmp/$case" >"$tmp/train.log" 2>&1; then
    echo "FAIL $case: qtrain train failed"; tail -n5 "$tmp/train.log"; fail=1; continue
  fi
  line=$("$qtrain" eval --model "$fx/$model" --adapter "$tmp/$case/adapter" --data "$data" \
      --seq-len 16 --batch-size 2 --device cpu 2>"$tmp/eval.log" | grep '^{' | tail -n1)
  loss=$(sed -n 's/.*"loss"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*/\1/p' <<<"$line")
  if [[ -z $loss ]]; then echo "FAIL $case: qtrain eval printed no loss"; tail -n5 "$tmp/eval.log"; fail=1; continue; fi
  if "$py" "$fx/check_peft_roundtrip.py" "$tmp/$case/adapter" "$fx/$model" --data "$data" \
      --expect "$loss" --rtol 1e-4 >"$tmp/peft.json" 2>"$tmp/peft.log"; then
    echo "ok   $case: peft loss matches qtrain eval loss $loss"
  else
    echo "FAIL $case: peft disagrees with qtrain eval loss $loss:"; cat "$tmp/peft.json"; tail -n5 "$tmp/peft.log"; fail=1
  fi
done
exit $fail
