#!/usr/bin/env bash
# Installs what qtrain needs to build and test, from Debian/Ubuntu packages.
# Idempotent; skips apt-get when everything is already there. Run as root
# (or with sudo available). The CUDA toolkit is optional: with nvcc on PATH
# the CUDA backend is built too.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git python3 python3-pip
      libspdlog-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libgtest-dev libgmock-dev
      libopenblas0-openmp liblapacke-dev libopenmpi-dev openmpi-bin libhwloc-dev
      libglpk-dev  # LowRA's precision assignment: an exact integer program (models/lowra_assign.h)
      python3-matplotlib)  # plots of `qtrain report` (launch/report.py runs on Debian's /usr/bin/python3)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "qtrain: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "qtrain: build dependencies already installed"
fi

# cuDNN's fused attention is compiled against the header-only cudnn-frontend,
# which Debian does not package: take its pinned PyPI wheel and keep the headers
# under .deps/ (CMake looks there). Only with a CUDA toolkit; without the headers
# qtrain still builds and uses its own attention kernels.
cfe_ver=1.32.0
cfe_dir="$(cd "$(dirname "$0")/.." && pwd)/.deps/cudnn-frontend-$cfe_ver"
if { command -v nvcc >/dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; } && [[ ! -f "$cfe_dir/include/cudnn_frontend.h" ]]; then
  tmp=$(mktemp -d)
  # Only the headers are used, which every wheel of the release holds: pin one wheel, whatever this Python is.
  if python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
      --platform manylinux_2_28_x86_64 -d "$tmp" "nvidia-cudnn-frontend==$cfe_ver"; then
    if python3 - "$tmp" "$cfe_dir" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(whl) as z:
    z.extractall(sys.argv[2], [n for n in z.namelist() if n.startswith("include/")])
PY
    then echo "qtrain: cudnn-frontend $cfe_ver headers in $cfe_dir"
    else rm -rf "$cfe_dir"; echo "qtrain: cudnn-frontend wheel unreadable; building without cuDNN attention"
    fi
  else
    echo "qtrain: cudnn-frontend not fetched; building without cuDNN attention"
  fi
  rm -rf "$tmp"
fi
