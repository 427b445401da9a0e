#!/usr/bin/env bash
# Weak scaling 1 -> N GPUs (all of the machine's, or NGPU), repeated, with the right denominator.
# The two GPUs of one machine differ by up to ~16% in single-GPU step time, so
# 2-GPU tok/s is compared with the SUM of what each GPU does alone. Both
# single-GPU runs go concurrently (same clocks/power state as the 2-GPU run),
# then the 2-GPU run; REPEATS times, interleaved, so drift hits both sides.
#   efficiency_r = tok/s(N GPUs) / (sum over GPUs of tok/s(that GPU alone))
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
N=${NGPU:-$(nvidia-smi -L | wc -l)}  # all GPUs of the machine unless told
for r in $(seq 1 "$REPEATS"); do
  for g in $(seq 0 $((N - 1))); do
    rm -rf "$WORK/r${r}_gpu$g"
    CUDA_VISIBLE_DEVICES=$g "$QTRAIN" "${common[@]}" --out "$WORK/r${r}_gpu$g" --overwrite > "$RESULTS/repeat_${TAG}_r${r}_gpu$g.log" 2>&1 &
  done
  wait
  rm -rf "$WORK/r${r}_np$N"
  ${MPIRUN:-mpirun} --allow-run-as-root --bind-to none -np "$N" -x NCCL_NVLS_ENABLE=0 -x LD_LIBRARY_PATH \
    "$QTRAIN" "${common[@]}" --out "$WORK/r${r}_np$N" --overwrite > "$RESULTS/repeat_${TAG}_r${r}_np$N.log" 2>&1
  echo "repeat $r done"
done
# Strong scaling: the N-GPU global batch on one GPU (per-rank --batch-size times N).
rm -rf "$WORK/strong1"
if [ -n "${STRONG:-}" ]; then
  strong=("${common[@]}"); for i in "${!strong[@]}"; do
    [ "${strong[$i]}" = --batch-size ] && strong[$((i + 1))]=$((N * ${strong[$((i + 1))]})); done
  rm -rf "$WORK/strong1"
  CUDA_VISIBLE_DEVICES=0 "$QTRAIN" "${strong[@]}" --out "$WORK/strong1" --overwrite > "$RESULTS/repeat_${TAG}_strong1.log" 2>&1
fi
N=$N TAG=$TAG SETUP="$MODEL ${TRAIN[*]}" python3 - "$WORK" "$RESULTS" "$REPEATS" "$WARMUP" <<'PY'
import datetime, json, os, statistics, subprocess, sys
work, results, R, warm = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def med(name, key):
    p = os.path.join(work, name, "metrics.jsonl")
    if not os.path.exists(p): return None
    ls = [json.loads(l) for l in open(p) if l.strip()]
    ls = [l for l in ls if l.get("step", 0) > warm and key in l]
    return statistics.median(l[key] for l in ls) if ls else None
N = int(os.environ["N"])
reps = []
for r in range(1, R + 1):
    alone = [med(f"r{r}_gpu{g}", "tokens_per_s") for g in range(N)]
    many = med(f"r{r}_np{N}", "tokens_per_s")
    rep = {f"gpu{g}_tok_s": alone[g] for g in range(N)}
    rep.update({f"np{N}_tok_s": many, f"np{N}_comm_exposed_s": med(f"r{r}_np{N}", "comm_exposed_s"),
                f"np{N}_step_s": med(f"r{r}_np{N}", "step_s")})
    if all(alone) and many: rep["efficiency"] = many / sum(alone)
    reps.append(rep)
eff = [x["efficiency"] for x in reps if "efficiency" in x]
strong1 = med("strong1", "tokens_per_s")
many = [x[f"np{N}_tok_s"] for x in reps if x[f"np{N}_tok_s"]]
strong = dict(one_gpu_n_times_batch_tok_s=strong1, speedup=statistics.median(many) / strong1) if strong1 and many else None
try:
    dev = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"], capture_output=True,
                         text=True).stdout.strip().replace(" ", "-") or "unknown"
except FileNotFoundError:
    dev = "unknown"
res = dict(device=dev, gpus=N, date=datetime.date.today().isoformat(), steps=int(os.environ.get("SCALING_STEPS", 50)), warmup=warm,
           setup=os.environ["SETUP"] + f" LoRA r16 all-linear (per rank); eff = np{N} / (sum of each GPU alone)",
           repeats=reps, efficiency_median=statistics.median(eff) if eff else None,
           efficiency_min=min(eff) if eff else None, efficiency_max=max(eff) if eff else None, strong=strong)
tag = os.environ["TAG"]
path = os.path.join(results, f"scaling_repeat_{'' if tag == 'smol-lora' else tag + '_'}{'' if N == 2 else f'{N}gpu_'}{dev}_{res['date']}.json")
json.dump(res, open(path, "w"), indent=1)
print(json.dumps(res, indent=1)); print("wrote", path)
PY
