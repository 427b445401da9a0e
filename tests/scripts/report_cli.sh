#!/usr/bin/env bash
# qtrain report: a tiny CPU training (with evals) gives report.md and valid
# PNG plots; --bench renders the train_vs_hf results; a missing plotter is
# exit 2 with the install line. Skipped (77) without a Python that has matplotlib.
# Usage: report_cli.sh QTRAIN_BINARY SOURCE_DIR
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
F=$src/tests/fixtures
fail=0

# No plotter: exit 2, and stderr says how to install it (runs with or without matplotlib).
mkdir -p "$tmp/empty"; echo '{"step": 1, "loss": 1}' > "$tmp/empty/metrics.jsonl"
QTRAIN_PYTHON=/bin/false "$qtrain" report "$tmp/empty" > /dev/null 2> "$tmp/err"; rc=$?
if [[ $rc -ne 2 ]] || ! grep -q "apt-get install python3-matplotlib" "$tmp/err"; then
  echo "FAIL no plotter: exit $rc, want 2 with the install line:"; cat "$tmp/err"; fail=1
else
  echo "ok   no plotter: $(head -n1 "$tmp/err")"
fi
"$qtrain" report "$tmp/empty" --python "$tmp/no-python" > /dev/null 2> "$tmp/err"; rc=$?
if [[ $rc -ne 2 ]] || ! grep -q "no-python: cannot run" "$tmp/err"; then
  echo "FAIL --python that does not exist: exit $rc"; cat "$tmp/err"; fail=1
fi
# Not a run directory: exit 2 naming metrics.jsonl.
"$qtrain" report "$tmp/nowhere" > /dev/null 2> "$tmp/err"; rc=$?
if [[ $rc -ne 2 ]] || ! grep -q "metrics.jsonl" "$tmp/err"; then
  echo "FAIL missing run dir: exit $rc"; cat "$tmp/err"; fail=1
fi

python=""
for p in "${QTRAIN_PYTHON:-}" python3 /usr/bin/python3; do
  [[ -n $p ]] && "$p" -c "import matplotlib" 2>/dev/null && { python=$p; break; }
done
if [[ -z $python ]]; then
  echo "skipped: no Python with matplotlib (apt-get install python3-matplotlib)"
  [[ $fail -eq 0 ]] && exit 77 || exit 1
fi
export QTRAIN_PYTHON=$python

is_png() { [[ -s $1 ]] && [[ $(head -c 8 "$1" | od -An -tx1 | tr -d ' \n') == 89504e470d0a1a0a ]]; }

"$qtrain" train --model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --seq-len 16 \
  --batch-size 1 --steps 6 --lr 1e-2 --schedule cosine --warmup 2 --eval-data "$F/tiny-llama-eval.jsonl" \
  --eval-every 2 --log-every 100 --device cpu --out "$tmp/run" > "$tmp/log" 2>&1 || { cat "$tmp/log"; exit 1; }
grep -q '"kind":"eval"' "$tmp/run/metrics.jsonl" || { echo "FAIL: the run wrote no eval rows"; fail=1; }
# Each evaluation says it starts (the final one follows "done" silently otherwise), and "done" lists what it wrote.
[[ $(grep -c "eval step [0-9]*: every batch of .*tiny-llama-eval.jsonl (split valid) \.\.\.$" "$tmp/log") == 3 ]] \
  || { grep "eval step" "$tmp/log"; echo "FAIL: want 3 'eval step N: every batch of ... (split valid) ...' lines"; fail=1; }
grep -q "wrote $tmp/run/adapter, $tmp/run/metrics.jsonl, $tmp/run/checkpoint" "$tmp/log" \
  || { grep "done:" "$tmp/log"; echo "FAIL: the 'done' line does not list adapter, metrics.jsonl, checkpoint"; fail=1; }
"$qtrain" report "$tmp/run" > "$tmp/log" 2>&1 || { echo "FAIL: report exit $?"; cat "$tmp/log"; exit 1; }
[[ -s $tmp/run/report.md ]] || { echo "FAIL: no report.md"; exit 1; }
for png in loss throughput lr grad_norm; do
  if ! is_png "$tmp/run/plots/$png.png"; then echo "FAIL: plots/$png.png missing or not a PNG"; fail=1; fi
  grep -q "(plots/$png.png)" "$tmp/run/report.md" || { echo "FAIL: report.md does not show $png.png"; fail=1; }
done
# A CPU run has no GPU memory: no plot, and the report says so.
[[ ! -e $tmp/run/plots/gpu_memory.png ]] || { echo "FAIL: gpu_memory.png for a CPU run"; fail=1; }
for want in "tiny-llama" "| method | lora |" "trainable of" "final eval loss"; do
  grep -qF "$want" "$tmp/run/report.md" || { echo "FAIL: report.md lacks '$want'"; fail=1; }
done

bench=$(ls "$src"/bench/results/train_vs_hf_*.json | head -n1)
"$qtrain" report --bench "$bench" --out "$tmp/tvh.png" > "$tmp/log" 2>&1 || { echo "FAIL: report --bench"; cat "$tmp/log"; fail=1; }
is_png "$tmp/tvh.png" || { echo "FAIL: --bench wrote no PNG"; fail=1; }
echo '{"rows": 3}' > "$tmp/bad.json"
"$qtrain" report --bench "$tmp/bad.json" > /dev/null 2> "$tmp/err"; rc=$?
if [[ $rc -ne 2 ]] || ! grep -q "bad.json" "$tmp/err"; then echo "FAIL bench without rows: exit $rc"; cat "$tmp/err"; fail=1; fi

# Bad flags and hand-edited metrics: one error line naming the flag/file, exit 2, no traceback.
err=$tmp/err
source "$src/tests/scripts/lib/expect_error.sh"
expect_error "--out with RUN_DIR" "--out --bench" report "$tmp/run" --out "$tmp/x.png"
expect_error "--out in a missing directory" "--out $tmp/no/x.png" report --bench "$bench" --out "$tmp/no/x.png"
mkdir -p "$tmp/strings"; echo '{"step": 1, "loss": "nan?", "eval_loss": null}' > "$tmp/strings/metrics.jsonl"
"$qtrain" report "$tmp/strings" > /dev/null 2> "$err" || { echo "FAIL metrics with a string loss: exit $?"; cat "$err"; fail=1; }
if grep -q Traceback "$err"; then echo "FAIL metrics with a string loss: traceback"; cat "$err"; fail=1; fi

[[ $fail -eq 0 ]] && echo "report_cli: ok ($(ls "$tmp/run/plots" | tr '\n' ' '))"
exit $fail
