#!/usr/bin/env bash
# Round trip: an adapter trained and written by qtrain loads in HF peft
# (PeftModel.from_pretrained) and gives the loss that `qtrain eval` gives, within 1e-4
# relative, for GPT-2 (Conv1D, fan_in_fan_out) and LLaMA, for each adapter type
# (LoRA, DoRA, IA3 with peft's default modules), and for LLaMA LoRA and DoRA with per-module
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
# +pattern: per-module ranks and alphas whose first matching key is not the first in sorted order, and rsLoRA.
pattern=(--rslora --lora-rank-pattern 'layers.1.mlp.down_proj=2,down_proj=6,^model.layers.0.self_attn.q_proj=3'
         --lora-alpha-pattern '(k|v)_proj=3,layers.1.mlp.up_proj=20')
for run in tiny-gpt2:lora tiny-llama:lora tiny-gpt2:dora tiny-llama:dora tiny-gpt2:ia3 tiny-llama:ia3 \
           tiny-llama:lora+pattern tiny-llama:dora+pattern; do
  model=${run%%:*}; type=${run#*:}; type=${type%+*}
  data=$fx/$model-eval.jsonl
  args=(--method lora --adapter-type "$type" --lora-r 4 --lora-alpha 8)
  [[ $type != ia3 ]] && args+=(--target all-linear)
  [[ $run == *+pattern ]] && args+=("${pattern[@]}") && type=$type+pattern
  if ! "$qtrain" train --model "$fx/$model" --data "$data" "${args[@]}" \
      --seq-len 16 --batch-size 2 --steps 3 --lr 1e-2 --seed 0 --device cpu \
      --out "$tmp/$model-$type" >"$tmp/train.log" 2>&1; then
    echo "FAIL $model $type: qtrain train failed"; tail -n5 "$tmp/train.log"; fail=1; continue
  fi
  model_dir=$tmp/$model-$type
  line=$("$qtrain" eval --model "$fx/$model" --adapter "$model_dir/adapter" --data "$data" \
      --seq-len 16 --batch-size 2 --device cpu 2>"$tmp/eval.log" | grep '^{' | tail -n1)
  loss=$(sed -n 's/.*"loss"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*/\1/p' <<<"$line")
  if [[ -z $loss ]]; then echo "FAIL $model $type: qtrain eval printed no loss"; tail -n5 "$tmp/eval.log"; fail=1; continue; fi
  if "$py" "$fx/check_peft_roundtrip.py" "$model_dir/adapter" "$fx/$model" --data "$data" \
      --expect "$loss" --rtol 1e-4 >"$tmp/peft.json" 2>"$tmp/peft.log"; then
    echo "ok   $model $type: peft loss matches qtrain eval loss $loss"
  else
    echo "FAIL $model $type: peft disagrees with qtrain eval loss $loss:"; cat "$tmp/peft.json"; tail -n5 "$tmp/peft.log"; fail=1
  fi
done
exit $fail
