#!/usr/bin/env bash
# The Python packages of the training anchors (bench/train_vs_hf.py, bench/anchor_run.py) that the GPU
# machine's image lacks, as one DEST/pylib.tar.gz: bench/device_run.sh unpacks it there under
# /tmp/pylib and puts that on PYTHONPATH. The image already has torch 2.11, transformers 5.17,
# peft, accelerate, triton 3.6, tokenizers, pandas, pyarrow, xxhash, requests (the device notes'
# package list); what follows is what `import unsloth` and the anchors' runs import beyond that,
# found by importing Unsloth's GPU path here (UNSLOTH_ALLOW_CPU=1) against that package set.
#
#   bench/pack_pylib.sh DEST          (bench/device_run.sh --pack calls it with PACK_PYLIB=1)
#
# Every wheel is pinned and fetched with --no-deps for CPython 3.12 on manylinux x86-64 (the GPU
# machine's Python); each package's own needs are listed beside it.
set -euo pipefail
dest=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
lib=$tmp/lib; mkdir -p "$lib" "$tmp/w"
dl() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d "$tmp/w" "$@"
}
unpack() { for w in "$@"; do (cd "$lib" && unzip -qo "$w"); done; }

# bitsandbytes, for the HF+peft+bnb QLoRA anchor (and Unsloth's load_in_4bit). The wheel with every
# backend is 43 MB: keep the CUDA 13.x libraries (the machine has CUDA 13) and the CPU one.
dl bitsandbytes==0.50.2 && unpack "$tmp"/w/bitsandbytes-*.whl
find "$lib/bitsandbytes" -name 'libbitsandbytes_*.so' ! -name '*_cpu.so' ! -name '*_cuda130.so' ! -name '*_cuda132.so' -delete
# Liger kernels (pure Python + Triton), the HF+peft+Liger anchor (--liger).
dl liger-kernel==0.8.5 && unpack "$tmp"/w/liger_kernel-*.whl
# Unsloth (--unsloth). Its wheel is 29 MB, nearly all of it the "studio" web app and CLI: only the
# unsloth package and its metadata (unsloth_zoo stays whole: even its Apple-only mlx/ is imported).
# unsloth 2026.10.9 pins transformers <= 5.17.0 (the machine's) and trl <= 1.15.0.
dl unsloth==2026.10.9 unsloth_zoo==2026.10.9
(cd "$lib" && unzip -qo "$tmp"/w/unsloth-2026.10.9-*.whl 'unsloth/*' 'unsloth-2026.10.9.dist-info/*')
unpack "$tmp"/w/unsloth_zoo-*.whl
# What `import unsloth` needs beyond the image: trl (SFTTrainer is patched at import) and datasets
# (< 5, Unsloth's pin), with datasets' dill and multiprocess. cut_cross_entropy is unsloth_zoo's
# declared loss kernel (it skips it on torch >= 2.8, but keeps the install as users have it).
# Left out, as unused on this path: xformers (built per torch version, 100+ MB: Unsloth falls back
# to SDPA), torchao (QAT/FP8 only), tyro, diffusers, hf_transfer (downloads), msgspec (vLLM only),
# pydantic/structlog/json5/nest-asyncio (the studio).
dl trl==1.15.0 datasets==4.8.5 dill==0.4.0 multiprocess==0.70.18 cut_cross_entropy==25.1.1
unpack "$tmp"/w/trl-*.whl "$tmp"/w/datasets-*.whl "$tmp"/w/dill-*.whl "$tmp"/w/multiprocess-*.whl \
  "$tmp"/w/cut_cross_entropy-*.whl
# hqq, for the HF+peft+hqq anchor (transformers' HqqConfig): an sdist only, built here without its
# optional CUDA extension (the PyTorch backend), + termcolor, which it imports.
DISABLE_CUDA=1 python3 -m pip wheel -q --no-deps -w "$tmp/w" hqq==0.2.8.post1
dl termcolor==3.3.0
unpack "$tmp"/w/hqq-*.whl "$tmp"/w/termcolor-*.whl
find "$lib" -name '__pycache__' -prune -exec rm -rf {} +
mkdir -p "$dest"
tar czf "$dest/pylib.tar.gz" -C "$lib" .
echo "pylib: $(du -sh "$lib" | cut -f1) unpacked, $(du -sh "$dest/pylib.tar.gz" | cut -f1) packed:" \
  "$(ls "$lib" | grep -v dist-info | tr '\n' ' ')"
