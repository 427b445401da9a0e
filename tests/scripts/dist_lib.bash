# Shared by the dist_train_*.sh CTest scripts (sourced; not a test itself).
# Expects $1 = qtrain binary, $2 = source dir. Sets QTRAIN, SRC, WORK, MPIRUN and
# defines train_args (a small, deterministic LoRA run on the tiny GPT-2 fixture).
set -u
QTRAIN=$1
SRC=$2
command -v mpirun >/dev/null || { echo "skipped: mpirun not found"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: python3 not found"; exit 77; }
"$QTRAIN" train --help 2>/dev/null | grep -q -- "--bucket-mb" || { echo "skipped: qtrain train (with --bucket-mb) is not built yet"; exit 77; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qtrain_dist.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS)
[ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
# One OpenMP thread per rank: ranks share two cores in CI, and the comparison
# must not depend on thread counts.
export OMP_NUM_THREADS=1

# Global batch 4 rows of 32 tokens; constant lr so that runs of different
# --steps share a schedule (needed by the resume test).
train_args() {
  echo --model "$SRC/tests/fixtures/tiny-gpt2" --tokenizer "$SRC/../shared/data/gpt2-tokenizer" --data "$SRC/../shared/data/codesearchnet-format" \
       --method lora --lora-r 4 --target all-linear --seq-len 32 --lr 1e-2 --schedule constant \
       --clip 1.0 --seed 3 --device cpu --log-every 1
}

compare() {  # compare OUT_A OUT_B: their adapters must agree within 1e-5 relative
  python3 "$SRC/tests/scripts/compare_safetensors.py" --rtol 1e-5 \
    "$1/adapter/adapter_model.safetensors" "$2/adapter/adapter_model.safetensors"
}
