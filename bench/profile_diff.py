#!/usr/bin/env python3
"""Where two training steps' GPU time differs, from two `qtrain train --profile-kernels`
files (OUT/kernel_profile.json): ms per step in all and by kernel class, then the kernels
whose ms per step moved most, with their calls per step. For questions like "why is the
DoRA step 1.57x the QLoRA step": the rows say which kernels the extra time is in.

    python3 bench/profile_diff.py BASE.json OTHER.json [--top 20] [--names A B]
Standard library only."""
import argparse
import json
import sys


def load(path):
    with open(path) as f:
        d = json.load(f)
    if "kernels" not in d or "gpu_ms_per_step" not in d:
        sys.exit(f"{path}: not a kernel_profile.json (no 'kernels' / 'gpu_ms_per_step')")
    return d


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base")
    p.add_argument("other")
    p.add_argument("--top", type=int, default=20, help="kernel rows to print (largest |delta| first)")
    p.add_argument("--names", nargs=2, default=["base", "other"], metavar=("A", "B"), help="column titles")
    a = p.parse_args()
    x, y = load(a.base), load(a.other)
    na, nb = a.names
    tx, ty = x["gpu_ms_per_step"], y["gpu_ms_per_step"]
    print(f"GPU ms/step: {na} {tx:.2f}, {nb} {ty:.2f}, {nb}/{na} {ty / tx if tx else float('nan'):.3f}, "
          f"delta {ty - tx:+.2f}")
    print(f"\n{'class':<16}{na:>10}{nb:>10}{'delta':>10}")
    classes = sorted(set(x.get("classes", {})) | set(y.get("classes", {})))
    rows = [(c, x.get("classes", {}).get(c, {}).get("ms_per_step", 0.0),
             y.get("classes", {}).get(c, {}).get("ms_per_step", 0.0)) for c in classes]
    for c, u, v in sorted(rows, key=lambda r: -abs(r[2] - r[1])):
        print(f"{c:<16}{u:>10.2f}{v:>10.2f}{v - u:>+10.2f}")
    kx = {k["name"]: k for k in x["kernels"]}
    ky = {k["name"]: k for k in y["kernels"]}
    krows = []
    for n in set(kx) | set(ky):
        u, v = kx.get(n, {}), ky.get(n, {})
        krows.append((v.get("ms_per_step", 0.0) - u.get("ms_per_step", 0.0), n, u, v))
    krows.sort(key=lambda r: -abs(r[0]))
    print(f"\n{'delta':>8}{na + ' ms':>10}{nb + ' ms':>10}{'calls':>14}  kernel (class)")
    for d, n, u, v in krows[: a.top]:
        calls = f"{u.get('calls_per_step', 0):g}/{v.get('calls_per_step', 0):g}"
        cls = (v or u).get("class", "")
        print(f"{d:>+8.2f}{u.get('ms_per_step', 0.0):>10.2f}{v.get('ms_per_step', 0.0):>10.2f}{calls:>14}  {n[:90]} ({cls})")
    rest = sum(r[0] for r in krows[a.top:])
    if len(krows) > a.top:
        print(f"{rest:>+8.2f}  in the other {len(krows) - a.top} kernels")


if __name__ == "__main__":
    main()
