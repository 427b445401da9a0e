#!/usr/bin/env python3
"""Compares the tensors of two safetensors files: same names and shapes, and per tensor
||a - b|| / ||b|| <= --rtol. Standard library only (CI has no numpy). Exit 1 on a mismatch."""
import argparse
import json
import math
import struct
import sys


def load(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        raw = data[b:end]
        if e["dtype"] == "F32":
            vals = struct.unpack(f"<{len(raw) // 4}f", raw)
        elif e["dtype"] == "F16":
            vals = struct.unpack(f"<{len(raw) // 2}e", raw)
        elif e["dtype"] == "BF16":
            halves = struct.unpack(f"<{len(raw) // 2}H", raw)
            vals = struct.unpack(f"<{len(halves)}f", struct.pack(f"<{len(halves)}I", *[h << 16 for h in halves]))
        else:
            sys.exit(f"{path}: tensor {name}: unsupported dtype {e['dtype']}")
        out[name] = (e["shape"], vals)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("a")
    p.add_argument("b", help="the reference")
    p.add_argument("--rtol", type=float, default=1e-5)
    a = p.parse_args()
    ta, tb = load(a.a), load(a.b)
    if set(ta) != set(tb):
        sys.exit(f"tensor names differ: only in {a.a}: {sorted(set(ta) - set(tb))[:5]}, "
                 f"only in {a.b}: {sorted(set(tb) - set(ta))[:5]}")
    worst, worst_name = 0.0, ""
    for name in sorted(ta):
        (sa, va), (sb, vb) = ta[name], tb[name]
        if sa != sb:
            sys.exit(f"{name}: shape {sa} vs {sb}")
        num = math.sqrt(sum((x - y) ** 2 for x, y in zip(va, vb)))
        den = math.sqrt(sum(y * y for y in vb))
        err = num / den if den > 0 else num
        # A NaN anywhere makes err NaN, and NaN > worst is false: count it as the worst error,
        # or a NaN adapter would match anything.
        if math.isnan(err):
            err = math.inf
        if err > worst:
            worst, worst_name = err, name
    print(f"{len(ta)} tensors, worst relative error {worst:.3g} ({worst_name or '-'})")
    sys.exit(1 if worst > a.rtol else 0)


if __name__ == "__main__":
    main()
