#!/usr/bin/env bash
# --grad-checkpoint on the GPU: the same run with and without it must give the
# same losses (recompute is deterministic: dropout off, same kernels) and a
# lower activation peak. SmolLM2-135M shape, LoRA r16, 8 x 1024, 6 steps.
#   bench/gc_check.sh QTRAIN MODEL_DIR RESULTS_DIR
set -uo pipefail
QTRAIN=$(realpath "$1"); MODEL=$(realpath "$2"); RESULTS=$3; WORK=/tmp/qtrain_gc
mkdir -p "$RESULTS" "$WORK"
python3 "$(dirname "$0")/make_tokens.py" "$WORK/tokens.bin" $((16 * 8 * 1025)) 49152
common=(train --model "$MODEL" --data "$WORK/tokens.bin" --format bin --device cuda --lora-r 16 --lora-dropout 0
        --target all-linear --lr 1e-3 --seed 1 --batch-size 8 --seq-len 1024 --steps 6 --log-every 1 --save-every 0)
for m in plain gc; do
  rm -rf "$WORK/$m"; extra=(); [ $m = gc ] && extra=(--grad-checkpoint)
  "$QTRAIN" "${common[@]}" "${extra[@]}" --out "$WORK/$m" --overwrite > "$RESULTS/gc_$m.log" 2>&1 || { echo "$m FAILED"; tail -5 "$RESULTS/gc_$m.log"; }
done
python3 - "$WORK" <<'PY'
import json, sys
r = {}
for m in ("plain", "gc"):
    ls = [json.loads(l) for l in open(f"{sys.argv[1]}/{m}/metrics.jsonl") if l.strip()]
    r[m] = dict(loss=[l["loss"] for l in ls], peak=max(l.get("gpu_peak_gib", 0) for l in ls),
                step_s=sorted(l["step_s"] for l in ls)[len(ls) // 2])
d = max(abs(a - b) / abs(b) for a, b in zip(r["gc"]["loss"], r["plain"]["loss"]))
print(json.dumps(r)); print(f"gc: max rel loss diff {d:.2e}, peak {r['gc']['peak']:.2f} vs {r['plain']['peak']:.2f} GiB, "
      f"step {r['gc']['step_s']:.3f} vs {r['plain']['step_s']:.3f} s -> {'OK' if d < 1e-5 else 'MISMATCH'}")
PY
