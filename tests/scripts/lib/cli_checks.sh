# Sourced by the CLI scripts that compare eval losses and look inside exports.

# loss FILE: the first "loss" value in FILE (a qtrain eval's output).
loss() { grep -o '"loss":[0-9.e+-]*' "$1" | head -1 | cut -d: -f2; }

# close A B RTOL: succeeds when |A - B| <= RTOL * |B|.
close() { python3 -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - b) > $3 * abs(b))" "$1" "$2"; }

# packed_linears FILE COMPANION: FILE, a model.safetensors of the tiny LLaMA, holds its 14 Linear
# weights as U8 codes (no float Linear weight left), each with its WEIGHT.COMPANION tensor.
packed_linears() {
  python3 - "$1" "$2" <<'PY'
import json, struct, sys
blob = open(sys.argv[1], "rb").read()
h = json.loads(blob[8:8 + struct.unpack("<Q", blob[:8])[0]])
lin = [k for k in h if k.endswith("_proj.weight")]
assert len(lin) == 14 and all(h[k]["dtype"] == "U8" for k in lin), lin
assert all(k + "." + sys.argv[2] in h for k in lin)
PY
}
