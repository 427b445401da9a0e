#!/bin/bash
# Q-BLoRA and QA-BLoRA against QLoRA on SmolLM2-135M at the same rank, steps, data and batches:
# train loss, eval loss on the test split, step time, peak RSS; then QA-BLoRA's merged pure 4-bit
# model evaluated on the same batches (it must equal the adapter's loss).
#   bash bench/qblora_vs_qlora.sh [OUT] [STEPS] [extra train flags, e.g. --device cuda]
# Writes OUT/<method>.log and prints the numbers (bench/results/qblora_vs_qlora_*.txt keeps a run).
set -u
OUT=${1:-out/qblora_bench}
STEPS=${2:-25}
shift $(( $# < 2 ? $# : 2 ))
Q=./build/qtrain
D=../shared/data/codesearchnet-format/python/final/jsonl
EV="--data $D --split test --seq-len 128 --batch-size 4 --max-batches 8"
mkdir -p "$OUT"
for m in qlora qblora qablora; do
  rm -rf "${OUT:?}/$m"
  /usr/bin/time -f "$m peak_rss_kb %M wall_s %e" $Q train --model smollm2-135m --data $D --method $m --lora-r 8 \
    --seq-len 128 --batch-size 4 --steps "$STEPS" --lr 1e-3 --seed 1 --out "$OUT/$m" "$@" > "$OUT/$m.log" 2>&1
  grep -E "trainable params|step $STEPS/" "$OUT/$m.log" | sed -E 's/.*\| (method|step)/\1/'
  tail -1 "$OUT/$m.log"
  echo "$m adapter eval: $($Q eval --model smollm2-135m --adapter "$OUT/$m/adapter" --method $m $EV 2>/dev/null | tail -1)"
done
rm -rf "$OUT/qablora-4bit"
$Q export --model smollm2-135m --adapter "$OUT/qablora/adapter" --method qablora --merge --overwrite --out "$OUT/qablora-4bit" > /dev/null 2>&1
echo "qablora merged 4-bit eval: $($Q eval --model "$OUT/qablora-4bit" --method qablora $EV 2>/dev/null | tail -1)"
echo "qablora merged 4-bit file: $(stat -c %s "$OUT/qablora-4bit/model.safetensors") bytes"
