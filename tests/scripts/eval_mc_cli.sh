#!/usr/bin/env bash
# qtrain eval --task mc end to end: the shipped Python/stdlib set runs and
# reports every subject; on the fixture, --predictions gives the PyTorch
# reference's predictions (tests/fixtures/mc/tiny-gpt2-mc-ref.json), with
# --dev FILE the same as dev rows; bad rows and flags exit 2 naming the file/field.
# Usage: eval_mc_cli.sh QTRAIN_BINARY SOURCE_DIR
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
err=$tmp/err; fail=0
F=$src/tests/fixtures
source "$src/tests/scripts/lib/expect_error.sh"
M=(--model "$F/tiny-gpt2" --tokenizer "$src/../shared/data/gpt2-tokenizer" --device cpu)

out=$("$qtrain" eval --task mc "${M[@]}" --data "$src/configs/mc/python-stdlib.jsonl" 2>"$err") \
  || { echo "FAIL shipped set: exit $?"; cat "$err"; exit 1; }
python3 - "$out" <<'PY' || fail=1
import json, sys
j = json.loads(sys.argv[1])
assert j["task"] == "mc" and j["n"] == 36 and j["shots"] == 5, j
assert sorted(j["subjects"]) == ["python_builtins", "python_language", "python_standard_library"], j
assert all(s["n"] == 12 for s in j["subjects"].values()), j
assert 0 <= j["accuracy"] <= 1 and j["seq_len"] == 128, j  # tiny-gpt2 has 128 positions
print("ok   shipped set:", sys.argv[1][:120], "...")
PY

for dev in "" "$F/mc/dev.jsonl"; do
  args=(eval --task mc "${M[@]}" --data "$F/mc/questions.jsonl" --shots 3 --seq-len 128 --batch-size 3
        --predictions "$tmp/pred.jsonl")
  [[ -n $dev ]] && args+=(--dev "$dev")
  "$qtrain" "${args[@]}" > "$tmp/out" 2>"$err" || { echo "FAIL fixture (dev '$dev'): exit $?"; cat "$err"; fail=1; continue; }
  python3 - "$tmp/pred.jsonl" "$F/mc/tiny-gpt2-mc-ref.json" "$tmp/out" <<'PY' || fail=1
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
ref = json.load(open(sys.argv[2]))["base"]
out = json.load(open(sys.argv[3]))
assert [g["pred"] for g in got] == [r["pred"] for r in ref], (got, ref)
assert [g["shots"] for g in got] == [r["shots"] for r in ref]
worst = max(abs(a - b) for g, r in zip(got, ref) for a, b in zip(g["loglik"], r["loglik"]))
assert worst < 1e-4, worst
assert out["truncated"]["prompts_cut"] == 1 and out["n"] == len(ref), out
print(f"ok   fixture: predictions as PyTorch, loglik within {worst:.1e}")
PY
done

# Two MPI ranks share the questions out and gather every score: the same predictions file.
if command -v mpirun >/dev/null; then
  MPIRUN=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS=1 -np 2)
  [[ $(id -u) == 0 ]] && MPIRUN+=(--allow-run-as-root)
  cp "$tmp/pred.jsonl" "$tmp/pred1.jsonl"
  if "${MPIRUN[@]}" "$qtrain" eval --task mc "${M[@]}" --data "$F/mc/questions.jsonl" --shots 3 --seq-len 128 \
       --predictions "$tmp/pred2.jsonl" > "$tmp/out2" 2>"$err"; then
    python3 - "$tmp/pred1.jsonl" "$tmp/pred2.jsonl" <<'PY' || fail=1
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert [x["pred"] for x in a] == [x["pred"] for x in b] and len(a) == len(b) == 8, (a, b)
worst = max(abs(p - q) for x, y in zip(a, b) for p, q in zip(x["loglik"], y["loglik"]))
assert worst < 1e-5, worst
print(f"ok   2 ranks: the same predictions, loglik within {worst:.1e}")
PY
  else
    echo "FAIL 2 ranks: exit $?"; tail -n5 "$err"; fail=1
  fi
else
  echo "skipped part: mpirun not found (2-rank check)"
fi

printf '%s\n' '{"question": "q", "choices": ["a", "b"], "answer": 0, "subject": "s"}' \
  '{"question": "q", "choices": ["a", "b"], "answer": 5, "subject": "s"}' > "$tmp/bad.jsonl"
expect_error "answer out of range" "bad.jsonl:2 answer" eval --task mc "${M[@]}" --data "$tmp/bad.jsonl"
expect_error "unknown task" "--task xyz" eval --task xyz "${M[@]}" --data "$tmp/bad.jsonl"
expect_error "grad norms with mc" "--grad-norms" eval --task mc --grad-norms "${M[@]}" --data "$F/mc/questions.jsonl"
expect_error "mc batch size 0" "--batch-size" eval --task mc "${M[@]}" --data "$F/mc/questions.jsonl" --batch-size 0
expect_error "negative max batches" "--max-batches" eval "${M[@]}" --data "$F/tiny-gpt2-eval.jsonl" --max-batches -1
expect_error "directory as mc data" "$tmp: directory" eval --task mc "${M[@]}" --data "$tmp"
expect_error "predictions into a missing directory" "--predictions $tmp/no/p.jsonl" \
  eval --task mc "${M[@]}" --data "$F/mc/questions.jsonl" --predictions "$tmp/no/p.jsonl"
expect_error "missing dev file" "nowhere.jsonl" eval --task mc "${M[@]}" --data "$F/mc/questions.jsonl" --dev "$tmp/nowhere.jsonl"
exit $fail
