#!/usr/bin/env bash
# qtrain data inspect / data shard / prepare end to end:
# - inspect counts the shared CodeSearchNet corpus as its README says (7,803 / 424 / 581 functions);
# - shard writes .bin files whose tokens are the tokenizer's ids of each `code` + EOS, in order;
# - prepare builds a tree that inspect reads back, with the 90/5/5 md5 split;
# - bad input exits 2 with the file named.
set -euo pipefail
QTRAIN=$1
SRC=$2
CSN=$SRC/../shared/data/codesearchnet-format
TOK=$SRC/../shared/data/gpt2-tokenizer
command -v python3 >/dev/null || exit 77
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$QTRAIN" data inspect "$CSN" > "$tmp/inspect.json"
python3 - "$tmp/inspect.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
got = {s: v["records"] for s, v in j["splits"].items()}
assert got == {"train": 7803, "valid": 424, "test": 581}, got
assert j["malformed_lines"] == 0 and "func_name" in j["fields"], j
PY

"$QTRAIN" data shard "$CSN" --tokenizer "$TOK" --out "$tmp/shards" --split valid --shard-tokens 150000 > "$tmp/shard.json"
"$QTRAIN" tokenize --tokenizer "$TOK" > "$tmp/ids.jsonl" < <(python3 - "$CSN" <<'PY'
import gzip, json, sys
for n in (0, 1):
    for l in gzip.open(f"{sys.argv[1]}/python/final/jsonl/valid/python_valid_{n}.jsonl.gz", "rt"):
        print(json.dumps({"text": json.loads(l)["code"]}))
PY
)
python3 - "$tmp/shard.json" "$tmp/ids.jsonl" <<'PY'
import json, struct, sys
res = json.load(open(sys.argv[1]))
want = []
for l in open(sys.argv[2]):
    want += json.loads(l)["ids"] + [50256]
got = []
assert len(res["files"]) == 2, res  # 150k tokens per shard
for f in res["files"]:
    b = open(f, "rb").read()
    magic, version, n = struct.unpack("<3i", b[:12])
    assert (magic, version) == (20240520, 1) and len(b) == 1024 + 2 * n, (f, magic, version, n)
    got += list(struct.unpack(f"<{n}H", b[1024:]))
assert res["documents"] == 424 and got == want, (res, len(got), len(want))
print(f"shard: {len(got)} tokens exact")
PY
"$QTRAIN" data inspect "$tmp/shards" | grep -q '"tokens":' || { echo "inspect of shards has no token count"; exit 1; }

mkdir -p "$tmp/src/pkg"
cat > "$tmp/src/pkg/mod.py" <<'PY'
import functools


@functools.lru_cache()
def add(a, b):
    """Add two numbers.

    Longer text."""
    return a + b


class K:
    def m(self):
        # comment
        return 1
PY
printf 'def broken(:\n' > "$tmp/src/pkg/bad.py"
"$QTRAIN" prepare --from "$tmp/src" --out "$tmp/corpus" --repo me/pkg > "$tmp/prep.json"
python3 - "$tmp/prep.json" "$tmp/corpus" <<'PY'
import glob, gzip, hashlib, json, sys
p = json.load(open(sys.argv[1]))
assert p["files"] == 1 and p["skipped_files"] == 1, p
split = "train" if int(hashlib.md5(b"pkg/mod.py").hexdigest(), 16) % 100 < 90 else "other"
recs = [json.loads(l) for f in glob.glob(sys.argv[2] + "/python/final/jsonl/*/*.jsonl.gz") for l in gzip.open(f, "rt")]
by = {r["func_name"]: r for r in recs}
assert set(by) == {"add", "K.m"}, by.keys()
a = by["add"]
assert a["code"].startswith("@functools.lru_cache()\ndef add(a, b):") and a["docstring"].startswith("Add two numbers."), a
assert a["docstring_tokens"] == ["Add", "two", "numbers", "."], a["docstring_tokens"]
assert '"""Add two numbers.' not in " ".join(a["code_tokens"]) and a["code_tokens"][:2] == ["@", "functools"], a
assert by["K.m"]["code"] == "def m(self):\n    # comment\n    return 1\n", by["K.m"]["code"]
assert a["repo"] == "me/pkg" and a["path"] == "pkg/mod.py", a
PY
"$QTRAIN" data inspect "$tmp/corpus" | grep -q '"records":2' || { echo "inspect of prepared corpus"; exit 1; }

set +e
printf '{"text": "ok"}\n{"text": \n' > "$tmp/bad.jsonl"
"$QTRAIN" data inspect "$tmp/bad.jsonl" > "$tmp/bad.json"
grep -q '"malformed_lines":1' "$tmp/bad.json" || { echo "inspect did not count the malformed line"; cat "$tmp/bad.json"; exit 1; }
grep -q 'bad.jsonl:2' "$tmp/bad.json" || { echo "inspect did not name the malformed line"; exit 1; }
"$QTRAIN" data shard "$tmp/bad.jsonl" --tokenizer "$TOK" --out "$tmp/o" 2> "$tmp/err"
rc=$?
set -e
[ "$rc" = 2 ] || { echo "shard of bad input: expected exit 2, got $rc"; exit 1; }
grep -q "bad.jsonl:2: malformed JSON" "$tmp/err" || { echo "error does not name file:line:"; cat "$tmp/err"; exit 1; }
# The failed shard leaves no .bin behind: line 1 was written before line 2 failed, and a
# half-written shard (header still zero) would be picked up by `--data OUT` later.
left=$(find "$tmp/o" -name '*.bin' 2>/dev/null || true)  # the folder itself is gone too (below)
[ -z "$left" ] || { echo "shard of bad input left partial output: $left"; exit 1; }
[ ! -e "$tmp/o" ] || { echo "shard of bad input left its --out folder behind (it did not exist before)"; exit 1; }

# Sharding again into an OUT that holds shards of the same prefix and split is refused:
# fewer new shards would leave old ones beside them, and `--data OUT` would train on both.
set +e
"$QTRAIN" data shard "$CSN" --tokenizer "$TOK" --out "$tmp/shards" --split valid > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ "$rc" = 2 ] || { echo "shard into an OUT with old shards: expected exit 2, got $rc"; cat "$tmp/err"; exit 1; }
grep -q "data_valid_000000.bin" "$tmp/err" && grep -q -- "--overwrite" "$tmp/err" \
  || { echo "the refusal should name an old shard and --overwrite:"; cat "$tmp/err"; exit 1; }
[ "$(ls "$tmp/shards" | wc -l)" = 2 ] || { echo "the refused shard touched OUT: $(ls "$tmp/shards")"; exit 1; }
"$QTRAIN" data shard "$CSN" --tokenizer "$TOK" --out "$tmp/shards" --split valid --overwrite > "$tmp/shard2.json"
[ "$(ls "$tmp/shards" | wc -l)" = 1 ] || { echo "--overwrite left old shards: $(ls "$tmp/shards")"; exit 1; }
# A flat directory whose file names mention no split gives every split the same files: inspect
# listed them as train, valid and test and counted each malformed line three times.
mkdir -p "$tmp/flat"
printf '{"text": "a"}\n{"text": \n' > "$tmp/flat/one.jsonl"
printf '{"text": "b"}\n' > "$tmp/flat/two.jsonl"
"$QTRAIN" data inspect "$tmp/flat" > "$tmp/flat.json"
python3 - "$tmp/flat.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert list(j["splits"]) == ["all"], j["splits"]
assert j["splits"]["all"]["records"] == 2 and j["malformed_lines"] == 1 and len(j["first_malformed"]) == 1, j
PY

# A directory with no data files: inspect says which files it looks for, as train and shard do.
mkdir -p "$tmp/nodata" && echo hi > "$tmp/nodata/readme.txt"
set +e
"$QTRAIN" data inspect "$tmp/nodata" > /dev/null 2> "$tmp/err"; rc=$?
set -e
[ "$rc" = 2 ] && grep -q "nodata: no data files.*\.jsonl/\.jsonl\.gz/\.bin" "$tmp/err" \
  || { echo "inspect of a directory without data files: exit $rc, $(cat "$tmp/err")"; exit 1; }

# --help of data shard names every --format it accepts, and what each flag does by default.
help=$("$QTRAIN" data shard --help)
for f in auto codesearchnet instruct chat text input_ids; do
  grep -q -- "--format.*$f" <<<"$(tr '\n' ' ' <<<"$help")" || { echo "data shard --help does not list --format $f"; exit 1; }
done
# input_ids rows are written as they are, as the help says (no EOS added).
printf '{"input_ids": [5, 6, 7]}\n{"input_ids": [8]}\n' > "$tmp/ids.jsonl"
"$QTRAIN" data shard "$tmp/ids.jsonl" --tokenizer "$TOK" --out "$tmp/ids" > "$tmp/ids.json"
grep -q '"tokens":4' "$tmp/ids.json" || { echo "input_ids shard: $(cat "$tmp/ids.json")"; exit 1; }
grep -q "input_ids rows are written as they are" <<<"$help" || { echo "data shard --help does not say input_ids rows get no EOS"; exit 1; }
echo OK
