#!/usr/bin/env bash
# qtrain tokenize end to end: GPT-2 cases.jsonl through the CLI must give the reference ids,
# in order, and --decode must give the texts back; bad input exits 2 naming the line.
set -euo pipefail
QTRAIN=$1
SRC=$2
TOK=$SRC/../shared/data/gpt2-tokenizer
command -v python3 >/dev/null || exit 77
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$QTRAIN" tokenize --tokenizer "$TOK" < "$TOK/cases.jsonl" > "$tmp/ids.jsonl"
"$QTRAIN" tokenize --tokenizer "$TOK" --decode < "$tmp/ids.jsonl" > "$tmp/text.jsonl"
python3 - "$TOK/cases.jsonl" "$tmp/ids.jsonl" "$tmp/text.jsonl" <<'PY'
import json, sys
cases = [json.loads(l) for l in open(sys.argv[1])]
ids = [json.loads(l)["ids"] for l in open(sys.argv[2])]
texts = [json.loads(l)["text"] for l in open(sys.argv[3])]
assert len(ids) == len(cases) == len(texts), (len(ids), len(cases), len(texts))
for i, c in enumerate(cases):
    assert ids[i] == c["ids"], f"case {i}: ids differ"
    assert texts[i] == c["text"], f"case {i}: decode differs"
print(f"tokenize CLI: {len(cases)} cases exact")
PY
set +e
printf '{"text": "ok"}\n{"txt": 1}\n' | "$QTRAIN" tokenize --tokenizer "$TOK" > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ "$rc" = 2 ] || { echo "expected exit 2, got $rc"; exit 1; }
grep -q "stdin line 2" "$tmp/err" || { echo "error does not name the line:"; cat "$tmp/err"; exit 1; }
# --decode takes whole ids only: 1.5, true and 2^32+1 were read as 1 and decoded without a word.
for bad in '1.5' 'true' '4294967297'; do
  set +e
  printf '{"ids": [%s]}\n' "$bad" | "$QTRAIN" tokenize --tokenizer "$TOK" --decode > "$tmp/out" 2> "$tmp/err"
  rc=$?
  set -e
  [ "$rc" = 2 ] && grep -q "stdin line 1: \"ids\"\[0\]" "$tmp/err" \
    || { echo "--decode of ids [$bad]: exit $rc, out '$(cat "$tmp/out")', err '$(cat "$tmp/err")'"; exit 1; }
done
echo OK
