#!/usr/bin/env bash
# Weak scaling 1 -> 2 GPUs, repeated, with the right denominator.
# The two GPUs of one machine differ by up to ~16% in single-GPU step time, so
# 2-GPU tok/s is compared with the SUM of what each GPU does alone. Both
# single-GPU runs go concurrently (same clocks/power state as the 2-GPU run),
# then the 2-GPU run; REPEATS times, interleaved, so drift hits both sides.
#   efficiency_r = tok/s(2 GPUs) / (tok/s(GPU0 alone) + tok/s(GPU1 alone))
# SmolLM2-135M-shape LoRA r16 all-linear, per-rank batch 16 x 1024 (the
# hardest case: the least compute per byte of gradient).
#   bench/scaling_repeat.sh QTRAIN MODEL RESULTS_DIR  (in device_run.sh's environment)
# MODEL: an HF dir or random:<shape>. Other configurations through the environment:
#   TAG=7b-qlora TRAIN_ARGS="--method qlora --batch-size 4 --seq-len 2048 --grad-checkpoint" VOCAB=32000
set -uo pipefail
QTRAIN=$(realpath "$1"); MODEL=$2; RESULTS=$3; WORK=/tmp/qtrain_repeat
[[ $MODEL == random:* ]] || MODEL=$(realpath "$MODEL")
TAG=${TAG:-smol-lora}
read -r -a TRAIN <<< "${TRAIN_ARGS:---method lora --batch-size 16 --seq-len 1024}"
REPEATS=${REPEATS:-3}; STEPS=${SCALING_STEPS:-50}; WARMUP=${SCALING_WARMUP:-10}
mkdir -p "$RESULTS" "$WORK"
python3 "$(dirname "$0")/make_tokens.py" "$WORK/tokens.bin" $((64 * 32 * 2049)) "${VOCAB:-49152}"
common=(train --model "$MODEL" --data "$WORK/tokens.bin" --format bin --device cuda --lora-r 16
        --lora-alpha 32 --lora-dropout 0 --target all-linear --lr 1e-4 --seed 1 --save-every 0 --log-every 1
        --steps "$STEPS" "${TRAIN[@]}")
for r in $(seq 1 "$REPEATS"); do
  for g in 0 1; do
    rm -rf "$WORK/r${r}_gpu$g"
    CUDA_VISIBLE_DEVICES=$g "$QTRAIN" "${common[@]}" --out "$WORK/r${r}_gpu$g" > "$RESULTS/repeat_${TAG}_r${r}_gpu$g.log" 2>&1 &
  done
  wait
  rm -rf "$WORK/r${r}_np2"
  ${MPIRUN:-mpirun} --allow-run-as-root --bind-to none -np 2 -x NCCL_NVLS_ENABLE=0 -x LD_LIBRARY_PATH \
    "$QTRAIN" "${common[@]}" --out "$WORK/r${r}_np2" > "$RESULTS/repeat_${TAG}_r${r}_np2.log" 2>&1
  echo "repeat $r done"
done
# Strong scaling: the 2-GPU global batch on one GPU (per-rank --batch-size doubled).
rm -rf "$WORK/strong1"
if [ -n "${STRONG:-}" ]; then
  strong=("${common[@]}"); for i in "${!strong[@]}"; do
    [ "${strong[$i]}" = --batch-size ] && strong[$((i + 1))]=$((2 * ${strong[$((i + 1))]})); done
  rm -rf "$WORK/strong1"
  CUDA_VISIBLE_DEVICES=0 "$QTRAIN" "${strong[@]}" --out "$WORK/strong1" > "$RESULTS/repeat_${TAG}_strong1.log" 2>&1
fi
TAG=$TAG SETUP="$MODEL ${TRAIN[*]}" python3 - "$WORK" "$RESULTS" "$REPEATS" "$WARMUP" <<'PY'
import datetime, json, os, statistics, subprocess, sys
work, results, R, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def med(name, key):
    p = os.path.join(work, name, "metrics.jsonl")
    if not os.path.exists(p): return None
    ls = [json.loads(l) for l in open(p) if l.strip()]
    ls = [l for l in ls if l.get("step", 0) > warm and key in l]
    return statistics.median(l[key] for l in ls) if ls else None
reps = []
for r in range(1, R + 1):
    g0, g1, two = (med(f"r{r}_{n}", "tokens_per_s") for n in ("gpu0", "gpu1", "np2"))
    rep = dict(gpu0_tok_s=g0, gpu1_tok_s=g1, np2_tok_s=two, np2_comm_exposed_s=med(f"r{r}_np2", "comm_exposed_s"),
               np2_step_s=med(f"r{r}_np2", "step_s"))
    if g0 and g1 and two: rep["efficiency"] = two / (g0 + g1)
    reps.append(rep)
eff = [x["efficiency"] for x in reps if "efficiency" in x]
strong1 = med("strong1", "tokens_per_s")
two = [x["np2_tok_s"] for x in reps if x["np2_tok_s"]]
strong = dict(one_gpu_double_batch_tok_s=strong1, speedup=statistics.median(two) / strong1) if strong1 and two else None
dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"], capture_output=True,
                     text=True).stdout.strip().replace(" ", "-") or "unknown"
res = dict(device=dev, date=datetime.date.today().isoformat(), steps=int(os.environ.get("SCALING_STEPS", 50)), warmup=warm,
           setup=os.environ["SETUP"] + " LoRA r16 all-linear (per rank); eff = np2 / (gpu0 alone + gpu1 alone)",
           repeats=reps, efficiency_median=statistics.median(eff) if eff else None,
           efficiency_min=min(eff) if eff else None, efficiency_max=max(eff) if eff else None, strong=strong)
tag = os.environ["TAG"]
path = os.path.join(results, f"scaling_repeat_{'' if tag == 'smol-lora' else tag + '_'}{dev}_{res['date']}.json")
json.dump(res, open(path, "w"), indent=1)
print(json.dumps(res, indent=1)); print("wrote", path)
PY
