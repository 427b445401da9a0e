#!/usr/bin/env bash
# Where a training step's GPU time goes: nsys over a few SmolLM2-shape LoRA
# steps (16 x 1024), GPU kernel time summed by kernel name, then by class
# (gemm / attention / loss / norm / pointwise / adamw / nccl / quant).
#   bench/profile_step.sh QTRAIN MODEL_DIR RESULTS_DIR [extra train args]
set -uo pipefail
QTRAIN=$(realpath "$1"); MODEL=$(realpath "$2"); RESULTS=$3; shift 3; WORK=/tmp/qtrain_prof
NSYS=$(command -v nsys || ls /usr/local/cuda*/bin/nsys /opt/nvidia/nsight-systems/*/bin/nsys 2>/dev/null | head -1)
[ -z "$NSYS" ] && { echo "no nsys on this machine"; exit 0; }
mkdir -p "$RESULTS" "$WORK"
python3 - "$WORK/tokens.bin" <<'PY'
import sys, numpy as np
n = 16 * 16 * 1025
h = np.zeros(256, np.int32); h[:3] = [20240520, 1, n]
open(sys.argv[1], "wb").write(h.tobytes() + np.random.default_rng(0).integers(0, 49152, n, dtype=np.uint16).tobytes())
PY
rm -rf "$WORK/out" "$WORK/prof"*
"$NSYS" profile -o "$WORK/prof" -t cuda --force-overwrite true "$QTRAIN" train --model "$MODEL" --data "$WORK/tokens.bin" \
  --format bin --device cuda --lora-r 16 --target all-linear --batch-size 16 --seq-len 1024 --steps 8 --save-every 0 \
  --out "$WORK/out" "$@" > "$RESULTS/profile_train.log" 2>&1
"$NSYS" stats -r cuda_gpu_kern_sum -f csv -o "$WORK/kern" "$WORK/prof.nsys-rep" > /dev/null 2>&1
csv=$(ls "$WORK"/kern*.csv | head -1)
cp "$csv" "$RESULTS/profile_kernels.csv"
python3 - "$csv" <<'PY'
import csv, sys, collections
rows = list(csv.DictReader(open(sys.argv[1])))
tot = sum(float(r["Total Time (ns)"]) for r in rows)
cls = collections.Counter()
def klass(n):
    n = n.lower()
    for k, keys in [("attention", ["attention", "attn"]), ("loss/lm-head", ["loss", "softmax_ce", "cross"]),
                    ("nccl", ["nccl"]), ("quant", ["dequant", "nf4", "quant", "4bit"]), ("adamw", ["adamw"]),
                    ("norm", ["norm"]), ("gemm", ["gemm", "sm90", "cutlass", "xmma", "nvjet"]),]:
        if any(x in n for x in keys): return k
    return "pointwise/other"
for r in rows: cls[klass(r["Name"])] += float(r["Total Time (ns)"])
print(f"total GPU kernel time {tot/1e6:.1f} ms over the run")
for k, v in cls.most_common(): print(f"  {k:16s} {v/1e6:9.1f} ms  {100*v/tot:5.1f}%")
print("top kernels:")
for r in sorted(rows, key=lambda r: -float(r["Total Time (ns)"]))[:12]:
    print(f"  {float(r['Total Time (ns)'])/1e6:8.1f} ms {float(r['Time (%)']):5.1f}%  {r['Name'][:90]}")
PY
