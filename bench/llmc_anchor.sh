#!/usr/bin/env bash
# Full fine-tune anchor: llm.c's train_gpt2cu (bf16, fp32 master weights, its
# default fused kernels) against qtrain --method full on the GPT-2-medium
# shape (llm.c: -e d24, random init), batch 8 x 1024, same synthetic tokens.
# llm.c is built HERE from the public repo (make train_gpt2cu NO_MULTI_GPU=1
# GPU_COMPUTE_CAPABILITY=90) and its binary carried; nothing of it is in qtrain.
# With CUDA 13 here (2026-12-06, llm.c f1e2ace): cudaMemAdvise takes a cudaMemLocation, so
# llmc/cuda_utils.cuh's `cudaCpuDeviceId` becomes `cudaMemLocation{cudaMemLocationTypeHost, 0}`; and this
# machine has no libnvidia-ml, so link against a stub of the NVML calls it names
# (gcc -shared -fPIC -Wl,-soname,libnvidia-ml.so.1) with NVCC_LDFLAGS="-L<stub dir> -lnvidia-ml -lcublas
# -lcublasLt" (the GPU machine's driver has the real one). Its defaults leave cuDNN off (USE_CUDNN=0):
# llm.c then runs its own attention kernels.
#   bench/llmc_anchor.sh QTRAIN LLMC_BIN GPT2M_HF_DIR RESULTS_DIR [STEPS]
set -uo pipefail
QTRAIN=$(realpath "$1"); LLMC=$(realpath "$2"); MODEL=$(realpath "$3"); RESULTS=$4; STEPS=${5:-30}
WORK=/tmp/qtrain_llmc; mkdir -p "$RESULTS" "$WORK"
python3 "$(dirname "$0")/make_tokens.py" "$WORK/train.bin" $((40 * 8 * 1025)) 50257
(cd "$WORK" && "$LLMC" -i "$WORK/train.bin" -j "$WORK/train.bin" -e d24 -b 8 -t 1024 -d 8192 -x "$STEPS" -v 100000 \
   -s 0 -h 0 -o "$WORK/llmc_log" > "$RESULTS/llmc.log" 2>&1); echo "llm.c rc $?"
rm -rf "$WORK/q"
"$QTRAIN" train --model "$MODEL" --data "$WORK/train.bin" --format bin --device cuda --method full --batch-size 8 \
  --seq-len 1024 --steps "$STEPS" --lr 1e-4 --save-every 0 --log-every 1 --out "$WORK/q" --overwrite > "$RESULTS/llmc_qtrain.log" 2>&1
echo "qtrain rc $?"
python3 - "$RESULTS" "$WORK/q/metrics.jsonl" <<'PY'
import json, re, statistics, sys, subprocess, datetime, os
res_dir, qm = sys.argv[1], sys.argv[2]
l = [float(m.group(1)) for m in re.finditer(r"\|\s*([0-9.]+) tok/s", open(os.path.join(res_dir, "llmc.log")).read())]
q = [json.loads(x)["tokens_per_s"] for x in open(qm) if x.strip()] if os.path.exists(qm) else []
warm = 8
lt = statistics.median(l[warm:]) if len(l) > warm else None
qt = statistics.median(q[warm:]) if len(q) > warm else None
dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"], capture_output=True, text=True).stdout.strip().replace(" ", "-")
r = dict(device=dev, date=datetime.date.today().isoformat(), config="gpt2-medium shape full fine-tune, bf16, 8x1024",
         llmc_tok_s=lt, qtrain_tok_s=qt, ratio=(qt / lt if lt and qt else None), llmc_steps=len(l), qtrain_steps=len(q))
p = os.path.join(res_dir, f"llmc_anchor_{dev}_{r['date']}.json"); json.dump(r, open(p, "w"), indent=1); print(json.dumps(r))
PY
