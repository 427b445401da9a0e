#!/usr/bin/env bash
# Data-parallel scaling of qtrain train --device cuda on 1 and 2 GPUs:
# SmolLM2-135M-shape LoRA r16 (all-linear), seq 1024.
#   weak   : per-rank batch 16 on 1 and 2 GPUs; efficiency = tok/s(N) / (N * tok/s(1))
#   strong : global batch 32 = 1 GPU x 32 vs 2 GPUs x 16
#   equiv  : 20 steps, 2 GPUs x batch 4 vs 1 GPU x batch 8, same seed/data: adapters' max rel diff
# Writes $RESULTS/scaling_<device>_<date>.json (+ .png when matplotlib is there).
#
#   bench/scaling.sh QTRAIN MODEL_DIR RESULTS_DIR [WORK_DIR]
# MODEL_DIR: a smollm2-135m-shape HF dir (bench/make_random_model.py --shape smollm2-135m).
set -euo pipefail
QTRAIN=$(realpath "$1"); MODEL=$(realpath "$2"); RESULTS=$3; WORK=${4:-/tmp/qtrain_scaling}
STEPS=${SCALING_STEPS:-25}; WARMUP=${SCALING_WARMUP:-8}
PY=${PYTHON:-python3}
mkdir -p "$RESULTS" "$WORK"
export NCCL_NVLS_ENABLE=0
ngpu=$(nvidia-smi -L | wc -l)

# A synthetic llm.c uint16 shard big enough for every run.
"$PY" - "$WORK/tokens.bin" "$MODEL/config.json" <<'PYEOF'
import json, sys
import numpy as np
vocab = json.load(open(sys.argv[2]))["vocab_size"]
n = 40 * 32 * 1025
h = np.zeros(256, np.int32); h[:3] = [20240520, 1, n]
with open(sys.argv[1], "wb") as f:
    f.write(h.tobytes()); f.write(np.random.default_rng(0).integers(0, min(vocab, 65535), n, dtype=np.uint16).tobytes())
PYEOF

common=(train --model "$MODEL" --data "$WORK/tokens.bin" --format bin --device cuda --method lora --lora-r 16
        --lora-alpha 32 --lora-dropout 0 --target all-linear --lr 1e-4 --seed 1 --save-every 0 --log-every 1)
run() {  # run NAME NP ARGS...
  local name=$1 np=$2; shift 2
  local out="$WORK/$name"; rm -rf "$out"
  echo "== $name (np $np): $*"
  if [ "$np" = 1 ]; then
    "$QTRAIN" "${common[@]}" --out "$out" "$@" > "$RESULTS/scaling_$name.log" 2>&1
  else
    ${MPIRUN:-mpirun} --allow-run-as-root --bind-to none -np "$np" -x NCCL_NVLS_ENABLE=0 -x LD_LIBRARY_PATH \
      "$QTRAIN" "${common[@]}" --out "$out" "$@" > "$RESULTS/scaling_$name.log" 2>&1
  fi || { echo "   FAILED: see $RESULTS/scaling_$name.log"; tail -5 "$RESULTS/scaling_$name.log"; }
}

run weak1 1 --batch-size 16 --seq-len 1024 --steps "$STEPS"
run strong1 1 --batch-size 32 --seq-len 1024 --steps "$STEPS"
if [ "$ngpu" -ge 2 ]; then
  run weak2 2 --batch-size 16 --seq-len 1024 --steps "$STEPS"
  run equiv2 2 --batch-size 4 --seq-len 256 --steps 20 --schedule constant
fi
run equiv1 1 --batch-size 8 --seq-len 256 --steps 20 --schedule constant
# The control: the same micro-batch shapes as 2 ranks x 4, on one GPU. bf16
# activations make batch-8 and batch-4 products round differently, and Adam's
# early, sign-like updates amplify that; comm must add nothing beyond it.
run equiv1acc 1 --batch-size 4 --grad-accum 2 --seq-len 256 --steps 20 --schedule constant

"$PY" - "$WORK" "$RESULTS" "$WARMUP" <<'PYEOF'
import datetime, json, os, statistics, subprocess, sys
import numpy as np
work, results, warmup = sys.argv[1], sys.argv[2], int(sys.argv[3])

def metrics(name):
    p = os.path.join(work, name, "metrics.jsonl")
    if not os.path.exists(p): return None
    ls = [json.loads(l) for l in open(p) if l.strip()]
    ls = [l for l in ls if "tokens_per_s" in l and l.get("step", 0) > warmup]
    if not ls: return None
    med = lambda k: statistics.median(l.get(k, 0.0) for l in ls)
    comm = "comm_exposed_s" if "comm_exposed_s" in ls[0] else "comm_wait_s"
    return {"tok_s": med("tokens_per_s"), "step_s": med("step_s"), "comm_exposed_s": med(comm)}

def read_safetensors(path):
    raw = open(path, "rb").read()
    n = int.from_bytes(raw[:8], "little"); hdr = json.loads(raw[8:8 + n]); base = 8 + n; out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        a, b = v["data_offsets"]; buf = raw[base + a: base + b]
        if v["dtype"] == "F32": x = np.frombuffer(buf, np.float32)
        elif v["dtype"] == "BF16": x = (np.frombuffer(buf, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else: x = np.frombuffer(buf, np.float16).astype(np.float32)
        out[k] = x.astype(np.float64)
    return out

m = {n: metrics(n) for n in ["weak1", "weak2", "strong1"]}
res = {"model": "smollm2-135m shape, LoRA r16 all-linear, seq 1024", "runs": m}
if m["weak1"] and m["weak2"]:
    res["weak_efficiency_2gpu"] = m["weak2"]["tok_s"] / (2 * m["weak1"]["tok_s"])
if m["strong1"] and m["weak2"]:  # weak2 = 2 GPUs x 16 = global batch 32
    res["strong_speedup_2gpu"] = m["weak2"]["tok_s"] / m["strong1"]["tok_s"]
    res["strong_efficiency_2gpu"] = res["strong_speedup_2gpu"] / 2
def adapter(name):
    p = os.path.join(work, name, "adapter", "adapter_model.safetensors")
    return read_safetensors(p) if os.path.exists(p) else None
def compare(a, b):  # per-tensor max|a-b|/max|b| (worst) and global ||a-b||/||b||
    x, y = adapter(a), adapter(b)
    if x is None or y is None: return None
    worst = max(np.max(np.abs(x[k] - y[k])) / max(np.max(np.abs(y[k])), 1e-12) for k in x)
    num = sum(float(np.sum((x[k].astype(np.float64) - y[k]) ** 2)) for k in x)
    den = sum(float(np.sum(y[k].astype(np.float64) ** 2)) for k in x)
    return {"max_rel": float(worst), "norm_rel": (num / max(den, 1e-300)) ** 0.5, "tensors": len(x)}
res["equivalence"] = {"2gpu_x4 vs 1gpu_x8": compare("equiv2", "equiv1"),
                      "2gpu_x4 vs 1gpu_x4_accum2": compare("equiv2", "equiv1acc"),
                      "1gpu_x4_accum2 vs 1gpu_x8": compare("equiv1acc", "equiv1")}
if res["equivalence"]["2gpu_x4 vs 1gpu_x8"]:
    res["equivalence_adapter_max_rel_diff"] = res["equivalence"]["2gpu_x4 vs 1gpu_x8"]["max_rel"]
try:
    dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                         capture_output=True, text=True).stdout.strip().replace(" ", "-") or "unknown"
except FileNotFoundError:
    dev = "unknown"
date = datetime.date.today().isoformat()
res.update(device=dev, date=date)
path = os.path.join(results, f"scaling_{dev}_{date}.json")
json.dump(res, open(path, "w"), indent=1)
print(json.dumps(res, indent=1))
try:
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    if m["weak1"] and m["weak2"]:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(["1 GPU", "2 GPUs"], [m["weak1"]["tok_s"], m["weak2"]["tok_s"]])
        ax.set_ylabel("tok/s"); ax.set_title(f"weak scaling, eff {res['weak_efficiency_2gpu']:.0%}")
        fig.tight_layout(); fig.savefig(path[:-5] + ".png")
except ImportError:
    pass
print(f"wrote {path}")
PYEOF
