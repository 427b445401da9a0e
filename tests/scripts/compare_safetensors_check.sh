#!/usr/bin/env bash
# compare_safetensors.py is the judge of the distributed and resume contracts
# (dist_train_*.sh, resume_exact.sh ...): it must fail on a real difference, and
# on a NaN, which once compared equal to anything (NaN > worst is false).
# $1 = qtrain binary (unused), $2 = source dir.
set -u
SRC=$2
command -v python3 >/dev/null || { echo "skipped: python3 not found"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import json, struct, sys
def write(path, vals):
    body = struct.pack(f"<{len(vals)}f", *vals)
    head = json.dumps({"w": {"dtype": "F32", "shape": [len(vals)], "data_offsets": [0, len(body)]}}).encode()
    open(path, "wb").write(struct.pack("<Q", len(head)) + head + body)
d = sys.argv[1]
write(f"{d}/ref.safetensors", [1.0, 2.0, 3.0])
write(f"{d}/same.safetensors", [1.0, 2.0, 3.0])
write(f"{d}/other.safetensors", [1.0, 2.5, 3.0])
write(f"{d}/nan.safetensors", [float("nan")] * 3)
write(f"{d}/inf.safetensors", [1.0, float("inf"), 3.0])
PY
cmp="python3 $SRC/tests/scripts/compare_safetensors.py"
fail=0
expect() {  # expect RC A B
  $cmp "$tmp/$2.safetensors" "$tmp/$3.safetensors" >/dev/null 2>&1
  local rc=$?
  if [ "$rc" != "$1" ]; then echo "FAIL: compare $2 vs $3 gave exit $rc, expected $1"; fail=1; fi
}
expect 0 same ref
expect 1 other ref
expect 1 nan ref
expect 1 ref nan
expect 1 inf ref
expect 1 nan nan
[ $fail = 0 ] && echo OK
exit $fail
