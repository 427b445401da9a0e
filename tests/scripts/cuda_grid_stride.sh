#!/usr/bin/env bash
# Every CUDA kernel launched with grid_for() loops over its range (QT_GRID_STRIDE, or its own
# gridDim stride). grid_for caps the grid at 16 blocks per SM, so a kernel that takes one index
# per thread silently skips everything past sm_count * 16 * block: unpack_ternary did, from
# 4096 x 4096 up, and only a GPU test at that size saw it. This source check runs without a GPU.
# It first checks itself on two made-up kernels (one without the loop must be flagged).
# Usage: cuda_grid_stride.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
src=$2
python3 - "$src" <<'PY'
import glob, os, re, sys

LAUNCH = re.compile(r"(\w+)(?:<[^<>;]*(?:<[^<>;]*>[^<>;]*)*>)?\s*<<<\s*grid_for\s*\(")
# launch_pdl(pdl, KERNEL<...>, GRID, ...) where GRID is a variable assigned from grid_for in that file.
PDL_LAUNCH = re.compile(r"launch_pdl\(\s*[^;]*?,\s*(\w+)(?:<[^;]*?>)?\s*,\s*(\w+)\s*,")


def launched(text):
    """Names of the kernels this file launches with a grid_for grid."""
    names = set(LAUNCH.findall(text))
    for kernel, grid in PDL_LAUNCH.findall(text):
        if re.search(r"\b" + grid + r"\s*=\s*(?:\w+\()?grid_for\s*\(", text):
            names.add(kernel)
    return names


def body_of(text, name):
    m = re.search(r"__global__[^{;]*?\b" + re.escape(name) + r"\s*\(", text)
    if not m:
        return None
    i = text.index("{", m.end())
    depth = 0
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j + 1]
    return None


def offenders(sources):
    """(kernel, file) pairs launched with grid_for whose body has no grid-stride loop."""
    everything = "\n".join(sources.values())
    found, bad = 0, []
    for path, text in sorted(sources.items()):
        for name in sorted(launched(text)):
            found += 1
            body = body_of(everything, name)
            if body is None:
                bad.append((name, path, "definition not found"))
            elif "QT_GRID_STRIDE" not in body and "gridDim" not in body:
                bad.append((name, path, "no grid-stride loop"))
    return found, bad


# Self-check: the scanner must flag a one-index-per-thread kernel and pass a looping one.
demo = {"demo.cu": """
__global__ void ok_kernel(float* y, int64_t n) { QT_GRID_STRIDE(i, n) y[i] = 0.f; }
__global__ void bad_kernel(float* y, int64_t n) { const int64_t i = blockIdx.x * 256 + threadIdx.x; if (i < n) y[i] = 0.f; }
__global__ void bad_pdl_kernel(float* y, int64_t n) { if (threadIdx.x < n) y[threadIdx.x] = 0.f; }
__global__ void row_kernel(float* y, int64_t n) { y[blockIdx.x] = 0.f; }
void run(float* y, int64_t n) {
  ok_kernel<<<grid_for(n, 256), 256>>>(y, n);
  bad_kernel<<<grid_for(n, 256), 256, 0, s>>>(y, n);
  const unsigned blocks = unsigned(grid_for(n, 256));
  launch_pdl(pdl_small(blocks), bad_pdl_kernel, blocks, 256u, 0, y, n);
  launch_pdl(pdl_small(n), row_kernel, unsigned(n), 256u, 0, y, n);
}"""}
n, bad = offenders(demo)
if n != 3 or [b[0] for b in bad] != ["bad_kernel", "bad_pdl_kernel"]:
    sys.exit(f"self-check failed: {n} launches, flagged {bad}")

root = os.path.join(sys.argv[1], "kernels", "cuda")
files = glob.glob(os.path.join(root, "**", "*.cu"), recursive=True) + glob.glob(os.path.join(root, "**", "*.cuh"), recursive=True)
sources = {os.path.relpath(f, sys.argv[1]): open(f).read() for f in files}
n, bad = offenders(sources)
if n < 10:  # the launches exist (36 on 2026-12-05): a scanner that finds none checks nothing
    sys.exit(f"only {n} grid_for launches found under {root}: the scanner no longer matches the code")
for name, path, why in bad:
    print(f"{path}: {name} is launched with grid_for but has {why}")
print(f"{n} kernels launched with grid_for, {len(bad)} without a grid-stride loop")
sys.exit(1 if bad else 0)
PY
