#!/usr/bin/env bash
# LLaMA-2-70B-shape QLoRA on one GPU (issue: "it must train"): random weights
# made and NF4+DQ-quantized tensor by tensor (--model random:llama-70b), LoRA r16
# all-linear, batch 1 x 2048, gradient checkpointing. Reports tok/s, MFU and
# peak GPU memory from metrics.jsonl. GC=0 leaves --grad-checkpoint out, so that the activation plan keeps
# what the GPU's free memory holds (issue speed II's "with the memory the GPU has"); the JSON's name then
# ends in _plan.
#   [GC=0] bench/qlora_70b.sh QTRAIN RESULTS_DIR [STEPS]
set -uo pipefail
QTRAIN=$(realpath "$1"); RESULTS=$2; STEPS=${3:-6}; WORK=/tmp/qtrain_70b
CKPT=(--grad-checkpoint); TAG=
[ "${GC:-1}" = 0 ] && CKPT=() TAG=_plan
mkdir -p "$RESULTS" "$WORK"
python3 "$(dirname "$0")/make_tokens.py" "$WORK/tokens.bin" $((16 * 4 * 2049)) 32000
rm -rf "$WORK/out"
TIMEV=(); [ -x /usr/bin/time ] && TIMEV=(/usr/bin/time -v)  # peak host RSS, where GNU time exists
"${TIMEV[@]}" "$QTRAIN" train --model random:llama-70b --data "$WORK/tokens.bin" --format bin --device cuda \
  --method qlora --lora-r 16 --lora-alpha 32 --target all-linear --batch-size 1 --seq-len 2048 "${CKPT[@]}" \
  --steps "$STEPS" --lr 1e-4 --save-every 0 --log-every 1 --out "$WORK/out" --overwrite > "$RESULTS/qlora_70b$TAG.log" 2>&1
echo "rc $?"
grep -E "trainable|activation plan|Maximum resident|Elapsed" "$RESULTS/qlora_70b$TAG.log"
python3 - "$WORK/out/metrics.jsonl" "$RESULTS" "$TAG" <<'PY'
import json, statistics, sys, subprocess, datetime, os
ls = [json.loads(l) for l in open(sys.argv[1]) if l.strip()] if os.path.exists(sys.argv[1]) else []
ls = [l for l in ls if "tokens_per_s" in l]
if not ls: sys.exit("no metrics")
late = ls[2:] or ls
dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"], capture_output=True, text=True).stdout.strip().replace(" ", "-")
ckpt = "activation plan (no --grad-checkpoint)" if sys.argv[3] else "grad-checkpoint"
r = dict(device=dev, date=datetime.date.today().isoformat(), config="llama-70b shape QLoRA (NF4+DQ) r16 all-linear, 1x2048, " + ckpt,
         steps=len(ls), tok_s=statistics.median(l["tokens_per_s"] for l in late), mfu=statistics.median(l.get("mfu", 0) for l in late),
         step_s=statistics.median(l["step_s"] for l in late), gpu_peak_gib=max(l.get("gpu_peak_gib", 0) for l in ls),
         loss=[l["loss"] for l in ls])
p = os.path.join(sys.argv[2], f"qlora_70b_{dev}_{r['date']}{sys.argv[3]}.json"); json.dump(r, open(p, "w"), indent=1); print(json.dumps(r))
PY
