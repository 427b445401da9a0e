#!/usr/bin/env bash
# Builds llm.c's train_gpt2cu (the full fine-tune anchor of bench/llmc_anchor.sh and
# bench/train_vs_hf.py --llmc) from a checkout of github.com/karpathy/llm.c, for sm_90,
# without NCCL/MPI. LLMC_CUDNN=1 builds its cuDNN flash-attention path (llm.c's fastest
# configuration) against the cudnn-frontend headers qtrain's build fetched into .deps/
# and the toolkit's libcudnn (the GPU machine loads the cuDNN wheel's): the stronger anchor.
# CUDA 13 changed cudaMemAdvise's location argument from an int device to a
# cudaMemLocation; the one call llm.c makes is patched in the checkout (not here).
#   bench/build_llmc.sh LLMC_CHECKOUT_DIR
set -euo pipefail
cd "$1"
sed -i 's/cudaMemAdviseSetPreferredLocation, cudaCpuDeviceId)/cudaMemAdviseSetPreferredLocation, cudaMemLocation{cudaMemLocationTypeHost, 0})/' llmc/cuda_utils.cuh
# A build machine without the NVIDIA driver has no libnvidia-ml to link. llm.c calls
# NVML only for -lg > 0 (GPU logging), which the anchor run does not use, so its
# symbols are left unresolved (lazy binding: never looked up) when the library is absent.
ldflags="-lcublas -lcublasLt -lnvidia-ml"
ldconfig -p 2>/dev/null | grep -q libnvidia-ml.so || ldflags="-lcublas -lcublasLt -Xlinker --unresolved-symbols=ignore-all"
cudnn=0
if [ "${LLMC_CUDNN:-0}" = 1 ]; then
  fe=$(ls -d "$(dirname "$(realpath "$0")")"/../.deps/cudnn-frontend-*/include 2>/dev/null | head -1)
  [ -n "$fe" ] || { echo "build_llmc.sh: no cudnn-frontend under .deps (configure qtrain with CUDA first)" >&2; exit 2; }
  ln -sfn "$(dirname "$fe")" cudnn-frontend  # where llm.c's Makefile looks
  cudnn=1 ldflags="$ldflags -lcudnn"         # NVCC_LDFLAGS given here replaces the Makefile's own -lcudnn
fi
make train_gpt2cu NO_MULTI_GPU=1 NO_USE_MPI=1 USE_CUDNN=$cudnn GPU_COMPUTE_CAPABILITY=90 NVCC="${NVCC:-/usr/local/cuda/bin/nvcc}" \
  NVCC_LDFLAGS="$ldflags"
ls -la train_gpt2cu
