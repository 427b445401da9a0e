#!/usr/bin/env bash
# Where the 2-GPU step time goes (SmolLM2-shape LoRA r16, per-rank batch 16 x 1024):
# NCCL's transport (NCCL_DEBUG=INFO), the GPU topology, and weak-scaling runs that
# change one thing each: one big bucket, no hwloc binding, no gradient reduction
# overlap (bucket 1000 MB = reduce only at the end).
#   bench/scaling_diag.sh QTRAIN MODEL_DIR RESULTS_DIR      (after device_run.sh's environment)
set -uo pipefail
QTRAIN=$(realpath "$1"); MODEL=$(realpath "$2"); RESULTS=$3; WORK=/tmp/qtrain_diag
mkdir -p "$RESULTS" "$WORK"
nvidia-smi topo -m > "$RESULTS/diag_topo.txt" 2>&1
python3 - "$WORK/tokens.bin" <<'PY'
import sys, numpy as np
n = 40 * 32 * 1025
h = np.zeros(256, np.int32); h[:3] = [20240520, 1, n]
open(sys.argv[1], "wb").write(h.tobytes() + np.random.default_rng(0).integers(0, 49152, n, dtype=np.uint16).tobytes())
PY
common=(train --model "$MODEL" --data "$WORK/tokens.bin" --format bin --device cuda --lora-r 16 --lora-alpha 32
        --target all-linear --lr 1e-4 --seed 1 --batch-size 16 --seq-len 1024 --steps 16 --log-every 1)
med() { python3 -c "import json,statistics,sys; l=[json.loads(x) for x in open(sys.argv[1])][6:]; print('%.4f s/step  %.0f tok/s  exposed %.4f' % (statistics.median(x['step_s'] for x in l), statistics.median(x['tokens_per_s'] for x in l), l[-1].get('comm_exposed_s',0)))" "$1"; }
one() { local name=$1; shift; rm -rf "$WORK/$name"
  "$QTRAIN" "${common[@]}" --out "$WORK/$name" --overwrite "$@" > "$RESULTS/diag_$name.log" 2>&1; echo "$name: $(med "$WORK/$name/metrics.jsonl")"; }
two() { local name=$1; shift; rm -rf "$WORK/$name"
  $MPIRUN --allow-run-as-root --bind-to none -np 2 -x NCCL_NVLS_ENABLE=0 -x NCCL_DEBUG -x NCCL_DEBUG_SUBSYS -x LD_LIBRARY_PATH \
    "$QTRAIN" "${common[@]}" --out "$WORK/$name" --overwrite "$@" > "$RESULTS/diag_$name.log" 2>&1; echo "$name: $(med "$WORK/$name/metrics.jsonl")"; }
one gpu1
NCCL_DEBUG=INFO NCCL_DEBUG_SUBSYS=INIT,GRAPH two np2_debug
grep -E "via|Channel 00|P2P|SHM|NET/" "$RESULTS/diag_np2_debug.log" | head -12
two np2_bigbucket --bucket-mb 1000
two np2_nobind --no-bind
CUDA_VISIBLE_DEVICES=1 one gpu1_other
