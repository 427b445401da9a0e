#!/usr/bin/env bash
# Peak GPU memory of LLaMA-7B-shape QLoRA r16 (all-linear) at batch 1 x 2048 with
# gradient checkpointing, qtrain alone on its GPU (no other process holding memory):
#   allocator peak (tensors), allocator reserved, and nvidia-smi's memory.used peak
#   (adds the CUDA context and cuBLASLt workspace).
#   bench/qlora_memory.sh QTRAIN RESULTS_DIR [SHAPE] [BATCH]
# QLORA_MEM_FLAGS adds train flags (--offload-checkpoints), and names the log after them.
set -uo pipefail
QTRAIN=$(realpath "$1"); RESULTS=$2; SHAPE=${3:-llama-7b}; B=${4:-1}; WORK=/tmp/qtrain_mem
mkdir -p "$RESULTS" "$WORK"
python3 "$(dirname "$0")/make_tokens.py" "$WORK/tokens.bin" $((16 * 4 * 2049)) 32000
gpu=${CUDA_VISIBLE_DEVICES:-0}; gpu=${gpu%%,*}
peak=0
( while true; do nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i "$gpu"; sleep 0.05; done ) > "$WORK/smi.txt" 2>/dev/null &
poll=$!
rm -rf "$WORK/out"
"$QTRAIN" train --model "random:$SHAPE" --data "$WORK/tokens.bin" --format bin --device cuda --method qlora --lora-r 16 \
  --lora-alpha 32 --target all-linear --batch-size "$B" --seq-len 2048 --grad-checkpoint --steps 6 --save-every 0 \
  --log-every 1 --out "$WORK/out" --overwrite ${QLORA_MEM_FLAGS:-} \
  > "$RESULTS/qlora_memory_${SHAPE}_b$B$(echo ${QLORA_MEM_FLAGS:-} | tr -d ' ').log" 2>&1
kill $poll
python3 - "$WORK/out/metrics.jsonl" "$WORK/smi.txt" "$SHAPE" "$B" "${QLORA_MEM_FLAGS:-}" <<'PY'
import json, sys
ls = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
smi = max((float(x) for x in open(sys.argv[2]) if x.strip()), default=0) / 1024
print(json.dumps(dict(shape=sys.argv[3], batch=int(sys.argv[4]), flags=sys.argv[5], alloc_peak_gib=max(l.get("gpu_peak_gib", 0) for l in ls),
      reserved_gib=max(l.get("gpu_reserved_gib", 0) for l in ls), nvidia_smi_peak_gib=smi,
      device_used_gib=max(l.get("gpu_device_used_gib", 0) for l in ls),  # the driver's used figure at each log step
      tok_s=sorted(l["tokens_per_s"] for l in ls)[len(ls) // 2])))
PY
