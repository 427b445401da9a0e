#!/usr/bin/env bash
# --memory-budget GiB (issue 20), on the CPU: the activation plan keeps every
# layer, keeps only GEMM outputs, or recomputes layers, as few as fit; the
# losses and gradient norms of every step are the same whatever it chose. The
# plan is in the log, run.json and metrics.jsonl, and run.json's config replays
# it; a budget that not even recomputing every layer fits is refused (exit 2)
# naming what would fit. $1 = qtrain binary, $2 = source dir.
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
err=$tmp/err; fail=0
source "$src/tests/scripts/lib/expect_error.sh"
source "$src/tests/scripts/lib/random_shard.sh"
F=$src/tests/fixtures
# Random ids below tiny-llama's vocabulary (300): 3 steps of 4 x 128.
random_shard "$tmp/tokens.bin" $((4 * 4 * 129)) 300
A=(train --model "$F/tiny-llama" --data "$tmp/tokens.bin" --format bin --seq-len 128 --batch-size 4 --steps 3
   --device cpu --log-every 1 --lora-dropout 0.1)
run() {  # run NAME ARGS...: a training run into $tmp/NAME that must succeed
  local name=$1; shift
  "$qtrain" "${A[@]}" "$@" --out "$tmp/$name" > "$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; echo "FAIL $name: run failed"; exit 1; }
}
plan() {  # plan NAME: recompute_layers pointwise_layers estimate_gib from its run.json
  python3 -c "import json, sys; p = json.load(open(sys.argv[1]))['activation_plan']; \
print(p['recompute_layers'], p['pointwise_layers'], repr(p['estimate_gib']))" "$tmp/$1/run.json"
}
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

run keep --memory-budget 1
run ckpt --memory-budget 1 --grad-checkpoint
read -r k0 j0 e_all < <(plan keep)
read -r k1 j1 e_ck < <(plan ckpt)
check "a large budget keeps every layer ($k0 $j0)" '[[ "$k0 $j0" == "0 0" ]]'
check "--grad-checkpoint recomputes every layer whatever the budget ($k1 $j1)" '[[ "$k1 $j1" == "2 0" ]]'
# Halfway between the two estimates: some layers keep less, not all are recomputed.
mid=$(python3 -c "print(($e_all + $e_ck) / 2)")
run mid --memory-budget "$mid"
read -r k2 j2 e_mid < <(plan mid)
check "budget $mid GiB: a partial plan ($k2 recomputed, $j2 GEMM outputs only) within it ($e_mid)" \
  '(( k2 + j2 > 0 && k2 < 2 )) && python3 -c "import sys; sys.exit(not $e_mid <= $mid)"'
check "the log prints the plan" \
  'grep -q "activation plan: 2 layers: $((2 - k2 - j2)) keep everything, $j2 keep GEMM outputs .*, $k2 recomputed; estimated peak .*; budget: --memory-budget is" "$tmp/mid.log"'
# A kibibyte below keeping everything: one layer keeps only its GEMM outputs (the pointwise tier comes first).
run tight --memory-budget "$(python3 -c "print($e_all - 2 ** -20)")"
read -r k3 j3 _ < <(plan tight)
check "a KiB below keeping everything: one layer keeps GEMM outputs only ($k3 $j3)" '[[ "$k3 $j3" == "0 1" ]]'
check "metrics.jsonl records the plan" \
  'grep -q "\"pointwise_layers\":$j2," "$tmp/mid/metrics.jsonl" && grep -q "\"recompute_layers\":$k2," "$tmp/mid/metrics.jsonl"'
# Every plan trains the same: the same losses and gradient norms, bit for bit, with LoRA dropout on.
same=$(python3 - "$tmp" <<'PY'
import json, sys
runs = {n: [(r["loss"], r["grad_norm"]) for r in map(json.loads, open(f"{sys.argv[1]}/{n}/metrics.jsonl"))]
        for n in ("keep", "ckpt", "mid", "tight")}
print("yes" if runs["keep"] == runs["ckpt"] == runs["mid"] == runs["tight"] and len(runs["keep"]) == 3 else runs)
PY
)
check "the same losses and gradient norms under every plan ($same)" '[[ $same == yes ]]'
# run.json's config replays as a --config file, budget included: the same plan.
python3 -c "import json, sys; c = json.load(open(sys.argv[1]))['config']; c['out'] = sys.argv[2]; json.dump(c, open(sys.argv[3], 'w'))" \
  "$tmp/mid/run.json" "$tmp/replay" "$tmp/replay.json"
"$qtrain" train --config "$tmp/replay.json" > "$tmp/replay.log" 2>&1 || { cat "$tmp/replay.log"; echo "FAIL replay"; exit 1; }
check "run.json's config replays the plan" '[[ "$(plan replay)" == "$(plan mid)" ]]'
# On the CPU without a budget there is no plan: everything is kept.
run default
check "no plan on the CPU by default" \
  '! grep -q "activation plan" "$tmp/default.log" && [[ $(python3 -c "import json, sys; print(json.load(open(sys.argv[1]))[\"activation_plan\"])" "$tmp/default/run.json") == None ]]'
# Below what recomputing every layer needs: refused before loading, naming a batch that fits.
small=$(python3 -c "print($e_ck * 0.6)")
expect_error "budget $small GiB below recomputing every layer" "--memory-budget is --batch-size --grad-accum --no-memory-check" \
  "${A[@]}" --memory-budget "$small" --out "$tmp/r"
check "the refusal does not offer --grad-checkpoint" '! grep -q -- "--grad-checkpoint" "$err"'
run nocheck --memory-budget "$small" --no-memory-check
check "--no-memory-check starts it anyway, recomputing every layer" \
  '[[ "$(plan nocheck | cut -d" " -f1-2)" == "2 0" ]] && grep -q "starting anyway" "$tmp/nocheck.log"'
expect_error "a negative budget" "--memory-budget must be" "${A[@]}" --memory-budget -1 --out "$tmp/n"
exit $fail
