#!/usr/bin/env bash
# Allocator peak of LLaMA-7B-shape DoRA (r64) and IA3 on an NF4 base, 4x2048 with gradient checkpointing (qtrain alone;
# train_vs_hf.py llama7b-qdora-r64 / llama7b-qia3 measure them beside peft).   bench/peft_memory_7b.sh QTRAIN
set -u
QTRAIN=$1; W=/tmp/d7; mkdir -p $W
python3 bench/make_tokens.py $W/tokens.bin $((8 * 4 * 2049)) 32000
for t in dora ia3; do
  r=64; [ $t = ia3 ] && r=16
  "$QTRAIN" train --model random:llama-7b --method qlora --adapter-type $t --lora-r $r --lora-alpha 16 --batch-size 4 \
    --seq-len 2048 --grad-checkpoint --steps 4 --data $W/tokens.bin --format bin --device cuda --log-every 1 --out $W/o_$t --overwrite 2>&1 \
    | grep -E "GPU memory|step 4/4|error" | sed "s/^/$t: /"
done
