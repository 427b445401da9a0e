#!/usr/bin/env bash
# bench/decode_vs_hf.py on made-up numbers: each qtrain row's ratio to each HF anchor of its batch,
# the fastest anchor as the bar's, bitsandbytes only beside the NF4 rows, the issue's targets marked,
# and bad input named with exit 2. Stdlib Python only (no GPU, no torch).
# Usage: decode_vs_hf.sh QTRAIN_BINARY SOURCE_DIR
set -u
src=$2
command -v python3 >/dev/null || { echo "skipped: python3 not found"; exit 77; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cat > "$work/q.json" <<'J'
{"device": "GPU-X", "rows": [
 {"model": "random:llama-7b", "method": "qlora", "lora_r": 0, "batch": 1, "ms_per_token": 2.0, "fraction_of_roofline": 0.5},
 {"model": "random:llama-7b", "method": "lora", "lora_r": 0, "batch": 1, "ms_per_token": 1.0}]}
J
# A second bench_decode file (device_run passes the base-alone and the LoRA r16 runs): its rows follow.
cat > "$work/q16.json" <<'J'
{"device": "GPU-X", "rows": [
 {"model": "random:llama-7b", "method": "qlora", "lora_r": 16, "batch": 8, "ms_per_token": 3.0}]}
J
cat > "$work/hf.json" <<'J'
{"date": "2026-01-02", "torch": "9.9", "rows": [
 {"mode": "hf", "batch": 1, "ms_per_token": 40.0}, {"mode": "hf-static", "batch": 1, "ms_per_token": 5.0},
 {"mode": "hf-bnb-nf4", "batch": 1, "ms_per_token": 4.0}, {"mode": "hf", "batch": 8, "ms_per_token": 30.0}]}
J
python3 "$src/bench/decode_vs_hf.py" --qtrain "$work/q.json" "$work/q16.json" --hf "$work/hf.json" -o "$work/t.json" > "$work/log" \
  || { cat "$work/log"; echo "FAIL: decode_vs_hf.py exited $?"; exit 1; }
python3 - "$work/t.json" <<'PY' || exit 1
import json, sys
d = json.load(open(sys.argv[1]))
r = {(x["method"], x["batch"]): x for x in d["rows"]}
def eq(a, b, what):
    if a != b:
        print(f"FAIL: {what}: {a!r}, expected {b!r}"); sys.exit(1)
nf4 = r[("qlora", 1)]
eq(nf4["anchors"]["hf"]["ratio"], 20.0, "NF4 b1 vs HF generate")
eq(nf4["anchors"]["hf-static"]["ratio"], 2.5, "NF4 b1 vs HF static")
eq(nf4["anchors"]["hf-bnb-nf4"]["ratio"], 2.0, "NF4 b1 vs bnb")
eq((nf4["anchor"], nf4["anchor_name"], nf4["ratio"]), (4.0, "HF + bnb NF4", 2.0), "NF4 b1's bar: the fastest anchor")
eq(nf4["targets_missed"], ["<= 1.2 ms"], "NF4 b1 targets")
bf16 = r[("lora", 1)]
eq(sorted(bf16["anchors"]), ["hf", "hf-static"], "bnb is no anchor of a BF16 row")
eq(bf16["targets_missed"], [], "BF16 b1 targets")
lora = r[("qlora", 8)]
eq(lora["anchors"]["hf"]["ratio"], 10.0, "NF4 b8 + LoRA vs HF generate")
eq("LoRA r16" in lora["config"], True, "the LoRA row says so")
eq(d["date"], "2026-01-02", "date from the HF file when the qtrain file has none")
eq(d["sources"], ["q.json", "q16.json", "hf.json"], "both qtrain files named as sources")
print("decode_vs_hf: ratios, anchors and targets as expected")
PY
grep -q "| llama-7b NF4 base (double quant), batch 1 | 2 | 50% | 40 (20.00×) | 5 (2.50×) | 4 (2.00×) | <= 1.2 ms |" "$work/t.md" \
  || { cat "$work/t.md"; echo "FAIL: markdown row"; exit 1; }
echo '{"rows": [{"batch": 1}]}' > "$work/bad.json"
python3 "$src/bench/decode_vs_hf.py" --qtrain "$work/bad.json" --hf "$work/hf.json" -o "$work/x.json" 2> "$work/err"
rc=$?
[ $rc = 2 ] && grep -q "bad.json: rows\[0\]: field 'ms_per_token' is missing" "$work/err" \
  || { cat "$work/err"; echo "FAIL: bad input exit $rc"; exit 1; }
echo "decode_vs_hf: bad input named, exit 2"
