#!/usr/bin/env bash
# qtrain eval on the HF/peft reference fixtures gives PyTorch's loss (1e-4 relative),
# ppl and token count, with and without peft adapters, for BF16 GPT-2, F32 and F16 LLaMA.
# Expected values: tests/fixtures/eval-expected.tsv (made by make_model_fixtures.py).
# Usage: fixtures_eval.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; fx=$2/tests/fixtures
if "$qtrain" eval --help 2>&1 | grep -q "not built yet"; then echo "skipped: qtrain eval not built yet"; exit 77; fi

field() {  # field NAME JSON_LINE -> the number after "NAME":
  sed -n "s/.*\"$1\"[[:space:]]*:[[:space:]]*\([-+0-9.eE]*\).*/\1/p" <<<"$2"
}

fail=0
while IFS=$'\t' read -r model adapter data loss ppl tokens; do
  [[ $model == model ]] && continue
  args=(eval --model "$fx/$model" --data "$fx/$data" --seq-len 16 --batch-size 2 --device cpu)
  [[ $adapter != - ]] && args+=(--adapter "$fx/$adapter")
  line=$("$qtrain" "${args[@]}" 2>/tmp/fixtures_eval.$$.err | grep '^{' | tail -n1)
  rc=${PIPESTATUS[0]}
  got_loss=$(field loss "$line"); got_ppl=$(field ppl "$line"); got_tokens=$(field tokens "$line")
  verdict=$(awk -v a="$got_loss" -v b="$loss" -v p="$got_ppl" -v q="$ppl" -v t="$got_tokens" -v n="$tokens" 'BEGIN {
    if (a == "" || p == "" || t == "") { print "no JSON"; exit }
    # ppl is checked through its log: log(ppl) must match the reference loss like the loss does
    d = (a - b) / b; if (d < 0) d = -d; e = (log(p) - b) / b; if (e < 0) e = -e;
    if (d > 1e-4) print "loss rel err " d; else if (e > 1e-4) print "log(ppl) rel err " e;
    else if (t + 0 != n + 0) print "tokens " t " != " n; else print "ok" }')
  if [[ $rc -ne 0 || $verdict != ok ]]; then
    echo "FAIL $model adapter=$adapter: rc=$rc $verdict; got: $line; want loss=$loss ppl=$ppl tokens=$tokens"
    sed 's/^/  stderr: /' /tmp/fixtures_eval.$$.err | tail -n5
    fail=1
  else
    echo "ok   $model adapter=$adapter loss=$got_loss (want $loss)"
  fi
done <"$fx/eval-expected.tsv"
rm -f /tmp/fixtures_eval.$$.err
exit $fail
