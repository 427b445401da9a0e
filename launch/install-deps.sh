#!/usr/bin/env bash
# Installs what qtrain needs to build and test, from Debian/Ubuntu packages.
# Idempotent; skips apt-get when everything is already there. Run as root
# (or with sudo available). The CUDA toolkit is optional: with nvcc on PATH
# the CUDA backend is built too.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config git python3 python3-pip
      libspdlog-dev nlohmann-json3-dev libcli11-dev zlib1g-dev libgtest-dev libgmock-dev
      libopenblas0-openmp libopenmpi-dev openmpi-bin libhwloc-dev)
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
