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
# --tokenizer in every form train takes: a registered name or a .gguf file means the vocabulary
# it embeds (the default model's tokenizer lives only in its GGUF), for tokenize and data shard
# alike. The ids start as HF's for the same text (tests/fixtures/gguf/smollm2_reference.json holds
# its first 64); without the fetched model the error says how to fetch it.
REF=$SRC/tests/fixtures/gguf/smollm2_reference.json
models=${QTRAIN_MODELS:-$HOME/.cache/qtrain/models}
python3 -c 'import json, sys; print(json.dumps({"text": json.load(open(sys.argv[1]))["code"]}))' "$REF" > "$tmp/code.jsonl"
if [ -s "$models/SmolLM2-135M-Instruct.Q4_1.gguf" ]; then
  for t in smollm2-135m "$models/SmolLM2-135M-Instruct.Q4_1.gguf"; do
    "$QTRAIN" tokenize --tokenizer "$t" < "$tmp/code.jsonl" > "$tmp/sm.jsonl"
    python3 -c 'import json, sys; w = json.load(open(sys.argv[1]))["ids"]; sys.exit(json.load(open(sys.argv[2]))["ids"][:len(w)] != w)' \
      "$REF" "$tmp/sm.jsonl" || { echo "tokenize --tokenizer $t: not HF's ids: $(head -c 200 "$tmp/sm.jsonl")"; exit 1; }
  done
  n=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["ids"]) + 1)' "$tmp/sm.jsonl")  # + EOS
  "$QTRAIN" data shard "$tmp/code.jsonl" --tokenizer smollm2-135m --out "$tmp/smshard" > "$tmp/smshard.json"
  grep -q "\"tokens\":$n" "$tmp/smshard.json" || { echo "data shard --tokenizer smollm2-135m: $(cat "$tmp/smshard.json"), want $n tokens"; exit 1; }
  echo "--tokenizer smollm2-135m (registered name and .gguf): HF's ids, in tokenize and data shard"
else
  echo "SmolLM2 not fetched: its ids are not compared (bash launch/fetch-models.sh)"
fi
set +e
QTRAIN_MODELS=$tmp/no-models "$QTRAIN" tokenize --tokenizer smollm2-135m < "$tmp/code.jsonl" > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ "$rc" = 2 ] && grep -q "fetch-models.sh" "$tmp/err" \
  || { echo "tokenize --tokenizer smollm2-135m without the model: exit $rc, '$(cat "$tmp/err")' (want 2, naming fetch-models.sh)"; exit 1; }
echo OK
