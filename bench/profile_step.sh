#!/usr/bin/env bash
# Where a training step's GPU time goes, by kernel class, for the benchmark
# configurations (qtrain train --profile-kernels: CUPTI, 10 steps, steps 3-10 counted).
#   bench/profile_step.sh QTRAIN MODELS_DIR RESULTS_DIR     (MODELS_DIR as train_vs_hf.py's --models)
# Writes RESULTS_DIR/kernel_profile_<config>.json and prints each class table.
set -uo pipefail
QTRAIN=$(realpath "$1"); MODELS=$(realpath "$2"); RESULTS=$3; WORK=/tmp/qtrain_prof
mkdir -p "$RESULTS" "$WORK"
python3 "$(dirname "$0")/make_tokens.py" "$WORK/tokens.bin" $((12 * 16 * 1025)) 49152
one() {  # one NAME MODEL ARGS...
  local name=$1 model=$2; shift 2
  local m="$MODELS/$model"
  if [ ! -d "$m" ]; then  # LLaMA shapes can be made on the fly
    case $model in smollm2-135m|llama-*) m=random:$model ;; *) echo "$name: no $m"; return ;; esac
  fi
  rm -rf "$WORK/$name"
  "$QTRAIN" train --model "$m" --data "$WORK/tokens.bin" --format bin --device cuda --steps 10 \
    --save-every 0 --log-every 5 --profile-kernels --out "$WORK/$name" --overwrite "$@" > "$RESULTS/profile_$name.log" 2>&1
  cp "$WORK/$name/kernel_profile.json" "$RESULTS/kernel_profile_$name.json" 2>/dev/null
  echo "== $name"; grep -A8 "GPU kernel time" "$RESULTS/profile_$name.log" | sed 's/^\[[^]]*\] [a-z]* //' | head -9
}
# PROFILE_ROWS picks the rows (default: the four benchmark rows; smol-qdora and smol-qia3 on request).
want() { [[ " ${PROFILE_ROWS:-smol-lora smol-qlora gpt2m-lora gpt2m-full} " == *" $1 "* ]]; }
lora=(--method lora --lora-r 16 --lora-alpha 32 --target all-linear)
want smol-lora && one smol-lora smollm2-135m "${lora[@]}" --batch-size 16 --seq-len 1024
want smol-qlora && one smol-qlora smollm2-135m --method qlora --lora-r 16 --lora-alpha 32 --target all-linear --batch-size 16 --seq-len 1024
want smol-qdora && one smol-qdora smollm2-135m --method qlora --adapter-type dora --lora-r 16 --lora-alpha 32 \
  --target all-linear --batch-size 16 --seq-len 1024
want smol-qia3 && one smol-qia3 smollm2-135m --method qlora --adapter-type ia3 --batch-size 16 --seq-len 1024
want gpt2m-lora && one gpt2m-lora gpt2-medium "${lora[@]}" --batch-size 8 --seq-len 1024
want gpt2m-full && one gpt2m-full gpt2-medium --method full --batch-size 8 --seq-len 1024
# The 7B QLoRA row (random weights, quantized on load), on request: PROFILE_7B=1.
[ -n "${PROFILE_7B:-}" ] && python3 "$(dirname "$0")/make_tokens.py" "$WORK/tokens.bin" $((12 * 8 * 2049)) 32000 && one llama7b-qlora llama-7b --method qlora --lora-r 16 --lora-alpha 32 --target all-linear \
  --batch-size 4 --seq-len 2048 --grad-checkpoint
true
