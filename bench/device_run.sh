#!/usr/bin/env bash
# The one GPU-machine run: CUDA op tests + GPU model tests, qtrain vs HF+peft
# benchmarks, and 1 -> 2 GPU scaling. Two modes:
#
#   bench/device_run.sh --pack   HERE, after `ninja -C build-cuda qtrain test_cuda`: copies the
#                                binaries and the .debs of the shared libraries the GPU machine
#                                lacks (spdlog, fmt, openblas, hwloc, Open MPI...) into .devwork/gpu
#   bench/device_run.sh          THERE (run kind nvidia-h200-x2, carry [".devwork/gpu"]): unpacks
#                                the .debs under /tmp/sys (not /), runs everything, writes $OUT
#
# CUDA runtime, cuBLASLt and NCCL come from the machine's own CUDA toolkit and pip wheels.
# Time budget (hard per-step timeouts, 570 s in all): tests 100 s, models 90 s, train_vs_hf 240 s, scaling 140 s.
set -uo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
PACK=$SRC/.devwork/gpu

if [ "${1:-}" = "--pack" ]; then
  set -e
  BUILD=${BUILD:-$SRC/build-cuda}
  rm -rf "$PACK"; mkdir -p "$PACK/bin" "$PACK/debs"
  cp "$BUILD/qtrain" "$BUILD/test_cuda" "$PACK/bin/"
  # PACK_BINS picks the bench binaries (all by default) when the transfer limit is tight: with the
  # Python anchors (pylib.tar.gz, 14 MB) PACK_BINS=none keeps the carry at ~46 MiB (all: ~74, over 64).
  for b in ${PACK_BINS:-bench_allreduce_bw bench_quant_kernels bench_ternary_kernels bench_kernels bench_decode}; do
    [ -x "$BUILD/$b" ] && cp "$BUILD/$b" "$PACK/bin/"
  done
  # llm.c's train_gpt2cu, the full fine-tune anchor, when built beside (bench/llmc_anchor.sh)
  [ -x "${LLMC_BIN:-/work/anchors/llm.c/train_gpt2cu}" ] && cp "${LLMC_BIN:-/work/anchors/llm.c/train_gpt2cu}" "$PACK/bin/"
  # Packages owning each shared library the binaries (and mpirun) resolve here, minus
  # the C runtime and CUDA, which the GPU machine has.
  libs=$( (ldd "$BUILD/qtrain" "$BUILD/test_cuda" "$(readlink -f "$(command -v mpirun)")" \
          /usr/lib/x86_64-linux-gnu/openmpi/lib/libmpi.so.40 2>/dev/null || true) | awk '$3 ~ /^\// {print $3}' | sort -u)
  pkgs="openmpi-bin openmpi-common libopenmpi3 libpmix2"
  for l in $libs; do
    case "$l" in /usr/local/cuda*|*/libc.so*|*/libm.so*|*/libdl.so*|*/librt.so*|*/libpthread.so*|*/libstdc++*|*/libgcc_s*) continue ;; esac
    p=$(dpkg -S "$(readlink -f "$l")" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -z "$p" ] && p=$(dpkg -S "$l" 2>/dev/null | head -1 | cut -d: -f1) || true
    [ -n "$p" ] && pkgs="$pkgs $p"
  done
  # PACK_PYLIB=0 leaves the Python anchors out (runs without train_vs_hf / quant_bnb): with it, the
  # anchors' packages the machine lacks (bitsandbytes, Liger, Unsloth, hqq...) as pylib.tar.gz.
  [ "${PACK_PYLIB:-1}" = 1 ] && bash "$SRC/bench/pack_pylib.sh" "$PACK"
  # The data the tests and bench/table3 read from ../shared, which does not travel.
  mkdir -p "$PACK/shared/data" && cp -r "$SRC/../shared/data/codesearchnet-format" "$SRC/../shared/data/gpt2-tokenizer" "$PACK/shared/data/"
  # Stripped and compressed, the binaries fit the transfer limit beside the rest. Each one links the whole
  # kernel library (~25 MB, mostly fatbins), so xz with a dictionary wider than a binary stores the copies
  # once: six binaries 7 MB (gzip, which sees 32 KB back: 44 MB).
  strip "$PACK"/bin/* && (cd "$PACK" && tar cf - bin | xz -9 -T2 --lzma2=preset=9,dict=192MiB > bin.tar.xz && rm -rf bin)
  pkgs=$(echo $pkgs | tr ' ' '\n' | sort -u | tr '\n' ' ')
  echo "packing debs: $pkgs"
  (cd "$PACK/debs" && apt-get download $pkgs)
  du -sh "$PACK"
  echo "carry: [\".devwork/gpu\"]  command: bash bench/device_run.sh"
  exit 0
fi

# ---------------------------------------------------------------- on the GPU machine
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export PYTHONUNBUFFERED=1
# The tests read their fixtures from the source tree, by the path it had where they were built, unless told.
export QTRAIN_SOURCE_DIR=$SRC
OUT=${OUT:-/tmp/device_out}; mkdir -p "$OUT"
SYS=/tmp/sys; mkdir -p "$SYS"
[ -z "${LANE_CHILD:-}" ] && for f in "$PACK"/debs/*.deb; do dpkg -x "$f" "$SYS"; done
pylib() { python3 -c "import os, $1 as m; print(os.path.join(list(m.__path__)[0], 'lib'))" 2>/dev/null; }
LD=$SYS/usr/lib/x86_64-linux-gnu:$SYS/lib/x86_64-linux-gnu:$SYS/usr/lib/x86_64-linux-gnu/openblas-openmp
LD=$LD:$SYS/usr/lib/x86_64-linux-gnu/openmpi/lib:/usr/local/cuda/extras/CUPTI/lib64:/usr/local/cuda/targets/x86_64-linux/lib:/usr/local/cuda-13.0/targets/x86_64-linux/lib
# libcusolver (LoftQ's SVD, kernels/cuda/svd.cu) needs libcusparse and libnvJitLink beside it; CUDA 13 wheels
# put every library in one nvidia/cu13/lib.
for m in nvidia.nccl nvidia.cublas nvidia.cuda_runtime nvidia.cuda_cupti nvidia.cudnn nvidia.cusolver nvidia.cusparse \
    nvidia.nvjitlink nvidia.cu13; do d=$(pylib $m); [ -n "$d" ] && LD=$LD:$d; done
export LD_LIBRARY_PATH=$LD:${LD_LIBRARY_PATH:-}
# The image's own /usr/bin/mpirun is not Open MPI (no --allow-run-as-root); qtrain links Debian's Open MPI.
export PATH=$SYS/usr/bin:$PATH OPAL_PREFIX=$SYS/usr MPIRUN=$SYS/usr/bin/orterun  # mpirun is a Debian alternatives link, not in the .deb
BIN=$PACK/bin
# Unpacked under /tmp, which outlives the call: a later call on the same warm machine
# (e.g. one that only carries a model) finds binaries, libraries and data there.
# (python's lzma where the machine has no xz)
if [ -f "$PACK/bin.tar.xz" ]; then mkdir -p /tmp/qbin && python3 -c "import lzma, sys, tarfile; \
  tarfile.open(fileobj=lzma.open(sys.argv[1])).extractall(sys.argv[2])" "$PACK/bin.tar.xz" /tmp/qbin; fi
[ -d /tmp/qbin/bin ] && BIN=/tmp/qbin/bin
if [ -d "$PACK/shared" ]; then rm -rf /tmp/qshared && cp -r "$PACK/shared" /tmp/qshared; fi
[ -d "$SRC/../shared" ] || { [ -d /tmp/qshared ] && ln -s /tmp/qshared "$SRC/../shared"; }
SHARED=$SRC/../shared
# The anchors' Python packages (bench/pack_pylib.sh), unpacked once per machine like the binaries.
if [ -f "$PACK/pylib.tar.gz" ] && [ -z "${LANE_CHILD:-}" ]; then rm -rf /tmp/pylib && mkdir -p /tmp/pylib && tar xzf "$PACK/pylib.tar.gz" -C /tmp/pylib; fi
[ -d /tmp/pylib ] && export PYTHONPATH=/tmp/pylib${PYTHONPATH:+:$PYTHONPATH}
{ nvidia-smi -L; ldd "$BIN/qtrain" | grep "not found"; } 2>&1 | tee "$OUT/env.txt"

status=()
step() {  # step NAME TIMEOUT CMD...: runs with a time limit, logs to $OUT/NAME.log
  local name=$1 t=$2; shift 2
  # ONLY="a b": run just those steps (a rerun after a fix).
  if [[ -n "${ONLY:-}" && " $ONLY " != *" $name "* ]]; then return; fi
  local t0=$SECONDS
  timeout "$t" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  status+=("$(printf '%-16s rc %-3s %4ss  %s' "$name" "$rc" "$((SECONDS - t0))" "$(tail -1 "$OUT/$name.log" | cut -c1-90)")")
  echo "${status[-1]}"
}

cd "$SRC"  # tests find ../shared and tests/fixtures relative to the source dir
export BIN OUT SHARED
step test_cuda ${TEST_TIMEOUT:-150} "$BIN/test_cuda" --gtest_brief=${TEST_BRIEF:-1} ${TEST_FILTER:+--gtest_filter=$TEST_FILTER}
MODELS=/tmp/models
step make_models 90 bash -c "python3 bench/make_random_model.py $MODELS/gpt2-medium --shape gpt2-medium && \
  python3 bench/make_random_model.py $MODELS/smollm2-135m --shape smollm2-135m"
# Two lanes on a 2-GPU machine: ONLY_GPU1="..." runs those steps on GPU 1 while
# this process runs ONLY's remaining steps on GPU 0 (steps that need both GPUs,
# scaling and repeat*, belong after the lanes join: put them in ONLY_AFTER).
if [[ -n "${ONLY_GPU1:-}" && -z "${LANE_CHILD:-}" ]]; then
  LANE_CHILD=1 ONLY="$ONLY_GPU1" CUDA_VISIBLE_DEVICES=1 bash "$0" > "$OUT/lane1.txt" 2>&1 &
  lane1=$!
  export CUDA_VISIBLE_DEVICES=0
fi
# BENCH_LLMC=1: llm.c (packed beside, LLMC_BIN) as the GPT-2 full rows' anchor. The calls on one warm machine are
# one run (--run-id: its boot id): an anchor spec measured by an earlier call is reused unless BENCH_NO_REUSE=1.
step train_vs_hf ${BENCH_TIMEOUT:-240} python3 bench/train_vs_hf.py --qtrain "$BIN/qtrain" --models $MODELS --out "$OUT" \
  --steps ${BENCH_STEPS:-25} --warmup ${BENCH_WARMUP:-8} --rows ${BENCH_ROWS:-gpt2m-lora,gpt2m-full,smol-lora,smol-qlora} \
  ${BENCH_LIGER:+--liger} ${BENCH_UNSLOTH:+--unsloth} ${BENCH_LLMC:+--llmc $BIN/${BENCH_LLMC_BIN:-train_gpt2cu} --llmc-label ${BENCH_LLMC_LABEL:-llm.c}} \
  --run-id "machine-$(cat /proc/sys/kernel/random/boot_id)" ${BENCH_NO_REUSE:+--no-reuse-anchors} --budget-s $(( ${BENCH_TIMEOUT:-240} - 10 ))
if [ -n "${lane1:-}" ]; then
  wait "$lane1"; unset CUDA_VISIBLE_DEVICES
  echo "---- lane GPU 1:"; sed -n '/==== summary ====/,/^$/p' "$OUT/lane1.txt"
  [ -n "${ONLY_AFTER:-}" ] && ONLY="$ONLY_AFTER"
fi
# The PEFT family table (issue: PEFT family), peft_family_<device>_<date>.{json,md} in $OUT, one file
# that both 7B steps fill (bench/train_vs_hf.py --table). On request only. The LLaMA-7B table in one
# call: ONLY="make_7b peft7b_a peft7b_b"; each step's --budget-s is what is left of PEFT_DEADLINE
# seconds since this script started (less peft7b_b's share for peft7b_a), so the table is written
# before the call's limit, rows or anchors past the budget recorded as not run.
# PEFT_UNSLOTH=0 / PEFT_LIGER=1 drop / add those anchors; PEFT_STEPS/PEFT_WARMUP the steps per process;
# PEFT7B_A_ROWS / PEFT7B_B_ROWS other rows (a rerun of those a call could not fit).
on() { [[ " ${ONLY:-} " == *" $1 "* ]]; }
peft_args() { echo --qtrain "$BIN/qtrain" --models $MODELS --out "$OUT" --steps ${PEFT_STEPS:-6} --warmup ${PEFT_WARMUP:-2} \
  $([ "${PEFT_UNSLOTH:-1}" = 1 ] && echo --unsloth) $([ "${PEFT_LIGER:-0}" = 1 ] && echo --liger); }
peft_left() { local b=$(( ${PEFT_DEADLINE:-555} - SECONDS - ${1:-0} )); echo $(( b < 20 ? 20 : b )); }
on make_7b && step make_7b 150 bash -c "[ -f $MODELS/llama-7b/model.safetensors ] || \
  python3 bench/make_random_model.py $MODELS/llama-7b --shape llama-7b"
# QLoRA (beside Unsloth), IA3 and DoRA on the NF4 base; then bf16 LoRA (beside Unsloth 16-bit) and the
# rows qtrain cannot set up within a call (LoftQ, HQQ: recorded with the reason).
on peft7b_a && b=$(peft_left ${PEFT7B_B_SHARE:-130}) && step peft7b_a $((b + 15)) python3 bench/train_vs_hf.py $(peft_args) \
  --table peft7b --rows ${PEFT7B_A_ROWS:-llama7b-qlora-r64,llama7b-qia3,llama7b-qdora-r64} --budget-s $b
on peft7b_b && b=$(peft_left) && step peft7b_b $((b + 15)) python3 bench/train_vs_hf.py $(peft_args) \
  --table peft7b --rows ${PEFT7B_B_ROWS:-llama7b-lora-r64,llama7b-qlora-loftq-r64,llama7b-hqq4-r64,llama7b-hqq2-r64} --budget-s $b
# The SmolLM2 table: all seven methods (LoftQ and HQQ included), ~4 min; a call of its own.
on peft_smol && step peft_smol ${PEFT_SMOL_TIMEOUT:-420} python3 bench/train_vs_hf.py $(peft_args) --table peft_smol \
  --steps ${PEFT_SMOL_STEPS:-12} --warmup 4 --budget-s $(( ${PEFT_SMOL_TIMEOUT:-420} - 15 ))
# Diagnosis of the 2-GPU step time, only on request (ONLY="diag").
[[ " ${ONLY:-} " == *" diag "* ]] && step diag 240 bash bench/scaling_diag.sh "$BIN/qtrain" $MODELS/smollm2-135m "$OUT"
step scaling 140 bash bench/scaling.sh "$BIN/qtrain" $MODELS/smollm2-135m "$OUT"
# On request only (ONLY="..."):
# Repeated weak scaling against each GPU alone (bench/scaling_repeat.sh).
on repeat && STRONG=1 step repeat 200 bash bench/scaling_repeat.sh "$BIN/qtrain" random:smollm2-135m "$OUT"
# The same for LLaMA-7B-shape QLoRA r16, 4 x 2048 per GPU with gradient checkpointing.
on repeat7b && TAG=7b-qlora VOCAB=32000 REPEATS=${REPEATS_7B:-1} SCALING_STEPS=${STEPS_7B:-10} SCALING_WARMUP=3 \
  TRAIN_ARGS="--method qlora --batch-size 4 --seq-len 2048 --grad-checkpoint" \
  step repeat7b 300 bash bench/scaling_repeat.sh "$BIN/qtrain" random:llama-7b "$OUT"
# NCCL all-reduce bus bandwidth at qtrain's bucket sizes.
on allreduce && step allreduce 60 $MPIRUN --allow-run-as-root --bind-to none -np "$(nvidia-smi -L | wc -l)" -x NCCL_NVLS_ENABLE=0 -x LD_LIBRARY_PATH \
  "$BIN/bench_allreduce_bw" --device cuda --iters 50 --out "$OUT/allreduce_bw.json"
# --grad-checkpoint on the GPU: same losses, less memory (bench/gc_check.sh).
on gc && step gc 90 bash bench/gc_check.sh "$BIN/qtrain" $MODELS/smollm2-135m "$OUT"
# Where a training step's GPU time goes, by kernel class (--profile-kernels, CUPTI).
on profile && step profile 150 bash bench/profile_step.sh "$BIN/qtrain" $MODELS "$OUT"
on llmc && step llmc 150 bash bench/llmc_anchor.sh "$BIN/qtrain" "$BIN/train_gpt2cu" $MODELS/gpt2-medium "$OUT"
on big70 && step big70 ${BIG70_TIMEOUT:-420} bash bench/qlora_70b.sh "$BIN/qtrain" "$OUT" ${BIG70_STEPS:-6}
# Per-kernel times beside PyTorch (attention: cuDNN and qtrain's own kernels).
on kernels && step kernels 120 bash -c "python3 bench/kernels_torch.py $OUT/kernels_torch.json && \
  $BIN/bench_kernels --anchors $OUT/kernels_torch.json --out $OUT/kernels.json"
# LoftQ initialisation with the SVD rounds on the GPU (cuSOLVER; bench/loftq_init.cpp, PACK_BINS must hold
# bench_loftq_init): one LLaMA-7B MLP weight (4096 x 11008, r 64, NF4 + DQ), then the QLoRA r 64 model of
# LOFTQ_LAYERS LLaMA-7B layers (7 Linears each; 32 = all 224) built with and without LOFTQ_ITERS rounds.
on loftq && step loftq ${LOFTQ_TIMEOUT:-420} bash -c "$BIN/bench_loftq_init --device cuda --shape 4096x11008 --r 64 \
  --iters ${LOFTQ_ITERS:-1} --out $OUT/loftq_one.json && $BIN/bench_loftq_init --device cuda --model random:llama-7b \
  --layers ${LOFTQ_LAYERS:-32} --r 64 --iters ${LOFTQ_ITERS:-1} --out $OUT/loftq_7b.json"
on quant && step quant 120 "$BIN/bench_quant_kernels" --out "$OUT/quant_kernels.json"
# Any command in this script's environment (BIN, OUT, SHARED, the unpacked libraries), e.g. an A/B of
# kernel forms chosen by environment variables: ONLY="custom" CUSTOM='for v in 0 1; do ...; done'.
on custom && step custom ${CUSTOM_TIMEOUT:-300} bash -c "$CUSTOM"
# BitNet's W2A8 products against BF16 (decode GEMV, training GEMM).
on ternary && step ternary 120 "$BIN/bench_ternary_kernels" --out "$OUT/ternary_kernels.json"
# qtrain generate --warmup with the decode step as a CUDA graph: the same tokens as without it.
on warmup_gpu && step warmup_gpu 90 bash tests/scripts/gpu_generate_warmup.sh "$BIN/qtrain" "$SRC"
# The seeds' Table 3 (bench/table3.py): GPT-2-medium shape (random weights: memory, time, latency) and,
# when the pretrained SmolLM2-135M GGUF is at $SMOL_GGUF (carried in pieces), on it with perplexity.
on table3_gpt2m && step table3_gpt2m ${T3_GPT2M_TIMEOUT:-420} bash -c "{ [ -f $MODELS/gpt2-medium/config.json ] || python3 bench/make_random_model.py \
  $MODELS/gpt2-medium --shape gpt2-medium; } && python3 bench/table3.py --qtrain $BIN/qtrain --model $MODELS/gpt2-medium --label gpt2-medium-random \
  --tokenizer $SHARED/data/gpt2-tokenizer --data $SHARED/data/codesearchnet-format/python/final/jsonl --no-ppl \
  --tokens ${T3_GPT2M_TOKENS:-400000} --seq-len 512 --batch-size 8 --work /tmp/t3g --out-dir $OUT"
on table3_smol && step table3_smol ${T3_SMOL_TIMEOUT:-560} python3 bench/table3.py --qtrain "$BIN/qtrain" \
  --model "${SMOL_GGUF:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}" --label smollm2-135m --tokenizer "${SMOL_GGUF:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}" \
  --data "$SHARED/data/codesearchnet-format/python/final/jsonl" --tokens ${T3_SMOL_TOKENS:-2000000} --seq-len 512 \
  --batch-size 8 --eval-batches ${T3_EVAL_BATCHES:-60} --work /tmp/t3s --out-dir "$OUT"
# Low-bit bases (bench/lowbit.py): LowRA at 4..1.5 bits, HQQ 2-bit, Q-BLoRA, QA-BLoRA and its 4-bit merge
# against QLoRA on the pretrained SmolLM2-135M GGUF.
on lowbit_smol && step lowbit_smol ${LB_TIMEOUT:-540} python3 bench/lowbit.py --qtrain "$BIN/qtrain" \
  --model "${SMOL_GGUF:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}" --tokenizer "${SMOL_GGUF:-/tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf}" \
  --data $SHARED/data/codesearchnet-format/python/final/jsonl --tokens ${LB_TOKENS:-600000} --eval-batches ${LB_EVAL:-40} \
  --work /tmp/lb --out-dir $OUT
# Decode latency per base format through qtrain generate (bench/decode_methods.sh).
on decode_methods && step decode_methods ${DM_TIMEOUT:-200} bash bench/decode_methods.sh "$BIN/qtrain" "$OUT" smollm2-135m
# The memory estimate and out-of-memory message (tests/scripts/gpu_memory.sh).
on gpu_memory && step gpu_memory 240 bash tests/scripts/gpu_memory.sh "$BIN/qtrain" "$SRC"
# --memory-budget: each plan fits its budget, the estimate is within 10% of the allocator's peak, the losses do
# not depend on the plan; tok/s per plan (tests/scripts/gpu_memory_budget.sh; BUDGET_7B=1 adds 7B QLoRA 4 x 2048).
on memory_budget && step memory_budget ${MB_TIMEOUT:-420} bash tests/scripts/gpu_memory_budget.sh "$BIN/qtrain" "$SRC" "$OUT"
on peft_mem7b && step peft_mem7b 240 bash bench/peft_memory_7b.sh "$BIN/qtrain"
on mem7b && step mem7b 150 bash bench/qlora_memory.sh "$BIN/qtrain" "$OUT" llama-7b 1
# A one-off command with this machine's environment ($BIN, $OUT, $SHARED, the libraries): EXTRA="...".
on extra && step extra ${EXTRA_TIMEOUT:-150} bash -c "$EXTRA"
on quant_bnb && step quant_bnb 150 python3 bench/quant_kernels_bnb.py "$OUT/quant_kernels_bnb.json"
# KV-cache decoding, ms/token at batch 1 and 8 after a 128-token prompt, beside HF generate (bench/decode_hf.py).
# At LLaMA-7B: the base alone (--lora-r 0: what HF's anchors run, and a merged adapter's cost) and with an
# unmerged LoRA r16 on all 7 projections.
# DECODE_ARGS: more bench_decode flags, e.g. "--profile 1" (kernels per replayed step, CUPTI).
on decode && step decode ${DECODE_TIMEOUT:-300} bash -c "$BIN/bench_decode --model random:smollm2-135m \
  --methods ${DECODE_SMOL_METHODS:-lora,qlora,int8-lora} --out $OUT/decode_smollm2.json ${DECODE_ARGS:-} && \
  $BIN/bench_decode --model random:llama-7b --methods ${DECODE_7B_METHODS:-lora,qlora} --lora-r 0 --out $OUT/decode_7b_base.json \
  ${DECODE_ARGS:-} && $BIN/bench_decode --model random:llama-7b --methods ${DECODE_7B_METHODS:-lora,qlora} --out $OUT/decode_7b.json ${DECODE_ARGS:-}"
on decode_hf && step decode_hf ${DECODE_HF_TIMEOUT:-240} python3 bench/decode_hf.py $MODELS/smollm2-135m $OUT/decode_hf_smollm2.json
# The same anchors at the LLaMA-7B shape, random weights made in GPU memory per mode (no 13.5 GB file), the
# prompt and token counts of bench_decode's 7B rows (128 + 64). Eager HF and bitsandbytes NF4 first, the static
# cache + torch.compile last: its compile is what the limit may cut (rows are written as they come).
# DECODE_HF7B_ARGS: e.g. "--batch 1" or "--new 32" to fit a tighter limit.
on decode_hf7b && step decode_hf7b ${DECODE_HF7B_TIMEOUT:-150} python3 bench/decode_hf.py random:llama-7b \
  $OUT/decode_hf_7b.json --modes ${DECODE_HF7B_MODES:-hf,hf-bnb-nf4,hf-static} ${DECODE_HF7B_ARGS:-}
# With the decode step in the same call: the ratio table (bench/decode_vs_hf.py; `qtrain report --bench` draws it).
on decode_hf7b && [ -f "$OUT/decode_7b.json" ] && [ -f "$OUT/decode_hf_7b.json" ] && python3 bench/decode_vs_hf.py \
  --qtrain "$OUT/decode_7b_base.json" "$OUT/decode_7b.json" --hf "$OUT/decode_hf_7b.json" --date "$(date +%F)" -o "$OUT/decode_vs_hf_7b.json" > "$OUT/decode_vs_hf_7b.log" 2>&1

# Any command with the unpacked binaries and libraries ($BIN, $OUT, $MODELS), e.g. an ncu profile of one kernel:
#   ONLY=cmd CMD='ncu --clock-control none -k regex:gemv4 -c 1 $BIN/bench_quant_kernels > $OUT/ncu.txt'
on cmd && step cmd ${CMD_TIMEOUT:-300} bash -c "export BIN=$BIN OUT=$OUT MODELS=$MODELS; $CMD"

echo; echo "==== summary ===="
printf '%s\n' "${status[@]}"
grep -E "PASSED|FAILED|tests ran" "$OUT/test_cuda.log" 2>/dev/null | head -5
[ -f "$OUT/train_vs_hf.log" ] && sed -n '/^config/,$p' "$OUT/train_vs_hf.log"
for f in "$OUT"/peft_family_*.md; do [ -f "$f" ] && cat "$f"; done
python3 - "$OUT" <<'PYEOF'
import glob, json, sys
for p in glob.glob(sys.argv[1] + "/scaling_*.json"):
    r = json.load(open(p))
    print("scaling:", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "runs"})
PYEOF

# The device tool brings back at most 8 files of $OUT and drops the rest by count (session 19 lost a table's JSON
# that way): the logs (and train_vs_hf's per-process logs) go into one logs.tgz, and the results too, into
# results.tgz, when they alone would pass the limit. Work directories stay on the machine: /tmp/train_vs_hf holds
# each row's checkpoint (gigabytes for a full fine-tune), and compressing it cost a call its time.
if [ -z "${LANE_CHILD:-}" ]; then
  (cd "$OUT" && shopt -s nullglob && logs=(*.log *.txt) && extra=(/tmp/train_vs_hf/*.log) && \
    if [ ${#logs[@]} -gt 0 ] || [ ${#extra[@]} -gt 0 ]; then
      mkdir -p _logs/work && { [ ${#logs[@]} -eq 0 ] || mv "${logs[@]}" _logs/; } && \
      { [ ${#extra[@]} -eq 0 ] || cp "${extra[@]}" _logs/work/; } && tar czf logs.tgz -C _logs . && rm -rf _logs
    fi
    rest=(*); if [ ${#rest[@]} -gt 8 ]; then
      res=(); for f in "${rest[@]}"; do [ "$f" = logs.tgz ] || res+=("$f"); done
      tar czf results.tgz "${res[@]}" && rm -rf "${res[@]}"
    fi)
  echo "returned from \$OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
fi
