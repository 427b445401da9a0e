#!/usr/bin/env bash
# LowRA from the command line: --method lowra trains at --lowra-bits 1.75 (the
# plan logs its bits per weight and LoftQ initialises every module, 5 rounds by
# default), the adapter evaluates back to the same loss twice (the base is
# rebuilt identically) and to a different one on a base of other --lowra-bits;
# bad --lowra-bits and rows of partial 64-weight blocks are clear errors (exit 2).
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); err=$tmp/err; trap 'rm -rf "$tmp"' EXIT
fail=0
source "$(dirname "$0")/lib/expect_error.sh"
source "$(dirname "$0")/lib/cli_checks.sh"
F=$src/tests/fixtures
D="--data $F/tiny-llama-eval.jsonl --format input_ids --seq-len 16"
M="--model random:tiny-llama"

"$qtrain" train $M $D --method lowra --lowra-bits 1.75 --lora-r 4 --lora-alpha 4 --steps 3 --batch-size 2 \
  --lr 1e-2 --out "$tmp/lw" > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: train --method lowra"; exit 1; }
grep -q "lowra: 1024 channels in 14 modules at 1.7500 bits per weight" "$tmp/log" \
  || { grep lowra "$tmp/log"; echo "FAIL: the plan's line"; fail=1; }
[ "$(grep -c 'loftq: .* x5:' "$tmp/log")" = 14 ] || { echo "FAIL: LoftQ (5 rounds) did not initialise 14 modules"; fail=1; }
grep -q '"lowra_bits": *1.75' "$tmp/lw/run.json" || { echo "FAIL: lowra_bits not in run.json"; fail=1; }
E="eval $M $D --adapter $tmp/lw/adapter --method lowra --max-batches 2"
"$qtrain" $E --lowra-bits 1.75 > "$tmp/e1" 2>&1 && "$qtrain" $E --lowra-bits 1.75 > "$tmp/e2" 2>&1 \
  && "$qtrain" $E --lowra-bits 4 > "$tmp/e3" 2>&1 || { cat "$tmp/e1" "$tmp/e3"; echo "FAIL: eval the lowra adapter"; exit 1; }
l1=$(loss "$tmp/e1"); l2=$(loss "$tmp/e2"); l3=$(loss "$tmp/e3")
if [ -n "$l1" ] && [ "$l1" = "$l2" ] && [ "$l1" != "$l3" ]; then echo "ok   eval rebuilds the base: $l1 twice, $l3 at 4 bits"
else echo "FAIL: eval losses '$l1' '$l2' (same base) '$l3' (4 bits)"; fail=1; fi

expect_error "--lowra-bits 5" "--lowra-bits" train $M $D --method lowra --lowra-bits 5 --steps 1 --out "$tmp/bad"
expect_error "partial blocks" "lowra down_proj" train --model "$F/tiny-llama" $D --method lowra --steps 1 --out "$tmp/bad2"
exit $fail
