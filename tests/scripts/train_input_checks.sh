#!/usr/bin/env bash
# Inputs that used to train garbage without a word (issue 21) exit 2 naming the
# flag; a learning rate that blows the model up stops it with exit 1; injected
# non-finite gradients are skipped and counted (or stop the run), the last
# checkpoint kept. $1 = qtrain binary, $2 = source dir.
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
err=$tmp/err; fail=0
source "$src/tests/scripts/lib/expect_error.sh"
export OMP_NUM_THREADS=1
F=$src/tests/fixtures
M=(train --model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --batch-size 1 --device cpu --log-every 1)
A=("${M[@]}" --seq-len 16)
expect_error "--lr -1"          "--lr -1"            "${A[@]}" --steps 5 --lr -1 --out "$tmp/a"
expect_error "--lr 0"           "--lr 0"             "${A[@]}" --steps 5 --lr 0 --out "$tmp/a"
expect_error "--lr inf"         "--lr inf"           "${A[@]}" --steps 5 --lr inf --out "$tmp/a"
expect_error "--lr nan"         "--lr nan"           "${A[@]}" --steps 5 --lr nan --out "$tmp/a"
expect_error "--seq-len > positions" "--seq-len 256 128 positions" "${M[@]}" --steps 5 --seq-len 256 --out "$tmp/a"
expect_error "--warmup = --steps"    "--warmup 5 --steps"          "${A[@]}" --steps 5 --warmup 5 --out "$tmp/a"
expect_error "--save-every -1"  "--save-every -1"    "${A[@]}" --steps 5 --save-every -1 --out "$tmp/a"
expect_error "--clip -1"        "--clip -1"          "${A[@]}" --steps 5 --clip -1 --out "$tmp/a"
expect_error "--steps 0"        "--steps 0 --epochs" "${A[@]}" --steps 0 --out "$tmp/a"
[[ -e $tmp/a ]] && { echo "FAIL: a refused run created its --out"; fail=1; }
"$qtrain" train --help | grep -q -- "optimizer steps, at least 1" || { echo "FAIL: --help does not say what --steps takes"; fail=1; }

# --lr 1e6 blows the model up: exit 1 with the cause, no adapter (issue 21: rc 0 and an adapter of ppl = vocab).
"$qtrain" "${A[@]}" --steps 30 --lr 1e6 --out "$tmp/blowup" > "$tmp/log" 2>&1; rc=$?
if [[ $rc == 1 ]] && grep -qi "qtrain: error: step [0-9]*: .*lower --lr" "$tmp/log" && [[ ! -e $tmp/blowup/adapter ]]; then
  echo "ok   --lr 1e6: exit 1: $(grep 'qtrain: error' "$tmp/log" | cut -c1-150)"
else
  echo "FAIL --lr 1e6: exit $rc"; tail -3 "$tmp/log"; fail=1
fi

# Full fine-tuning at --lr 10 diverges (loss 6 -> 4000): exit 1 after 3 steps above 3 ln(vocab), no model written.
"$qtrain" "${A[@]}" --steps 30 --lr 10 --method full --out "$tmp/diverge" > "$tmp/log" 2>&1; rc=$?
if [[ $rc == 1 ]] && grep -q "qtrain: error: step [0-9]*: training diverged" "$tmp/log" && [[ ! -e $tmp/diverge/model ]]; then
  echo "ok   --method full --lr 10: exit 1: $(grep 'qtrain: error' "$tmp/log" | cut -c1-150)"
else
  echo "FAIL --method full --lr 10: exit $rc"; tail -3 "$tmp/log"; fail=1
fi

adapter_finite() {  # every value of the adapter's safetensors is finite
  python3 - "$1" <<'PY'
import json, math, struct, sys
b = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); data = b[8 + n:]
for k, v in h.items():
    if k == "__metadata__": continue
    s, e = v["data_offsets"]; vals = struct.unpack("<%df" % ((e - s) // 4), data[s:e])
    assert all(math.isfinite(x) for x in vals), k
PY
}
last() { python3 -c "import json,sys; print([json.loads(l) for l in open(sys.argv[1])][-1][sys.argv[2]])" "$@"; }

# Default policy: skip. Gradients of steps 2 and 3 poisoned: both skipped and counted, the run finishes.
QTRAIN_TEST_NONFINITE_GRAD_AT=2,3 "$qtrain" "${A[@]}" --steps 6 --lr 1e-2 --out "$tmp/skip" > "$tmp/log" 2>&1; rc=$?
n=$(last "$tmp/skip/metrics.jsonl" nonfinite_skipped 2>/dev/null)
if [[ $rc == 0 && $n == 2 ]] && grep -q "step 3: non-finite gradient.*update skipped" "$tmp/log" \
   && adapter_finite "$tmp/skip/adapter/adapter_model.safetensors"; then
  echo "ok   2 non-finite steps, --on-nonfinite skip: exit 0, nonfinite_skipped $n, adapter finite"
else
  echo "FAIL skip: exit $rc, nonfinite_skipped '$n'"; tail -3 "$tmp/log"; fail=1
fi
# Too many in a row: stop, exit 1, the step-2 checkpoint kept.
QTRAIN_TEST_NONFINITE_GRAD_AT=3,4 "$qtrain" "${A[@]}" --steps 6 --lr 1e-2 --save-every 2 --max-nonfinite-skips 2 \
  --out "$tmp/many" > "$tmp/log" 2>&1; rc=$?
step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$tmp/many/checkpoint/manifest.json" 2>/dev/null)
if [[ $rc == 1 && $step == 2 ]] && grep -q "step 4: .*2 steps in a row skipped.*checkpoint/*, is kept" "$tmp/log"; then
  echo "ok   2 non-finite steps in a row, --max-nonfinite-skips 2: exit 1, checkpoint of step $step kept"
else
  echo "FAIL --max-nonfinite-skips: exit $rc, checkpoint step '$step'"; tail -3 "$tmp/log"; fail=1
fi
# --on-nonfinite stop: the first one stops the run.
QTRAIN_TEST_NONFINITE_GRAD_AT=3 "$qtrain" "${A[@]}" --steps 6 --lr 1e-2 --on-nonfinite stop --out "$tmp/stop" > "$tmp/log" 2>&1; rc=$?
if [[ $rc == 1 ]] && grep -q "step 3: non-finite gradient.*--on-nonfinite stop" "$tmp/log" && [[ ! -e $tmp/stop/adapter ]]; then
  echo "ok   1 non-finite step, --on-nonfinite stop: exit 1 at step 3"
else
  echo "FAIL --on-nonfinite stop: exit $rc"; tail -3 "$tmp/log"; fail=1
fi
exit $fail
