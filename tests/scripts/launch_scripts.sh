#!/usr/bin/env bash
# The mpirun and SLURM wrappers in launch/: their usage is readable and names files that
# exist, they reject a bad option with one line, and they hand qtrain's arguments through.
# quickstart.sh picks the fine-tune the machine and the build can run (--dry-run, stubs).
# launch/qtrain-mpi really runs 2 CPU ranks; slurm-example.sbatch runs against stub
# srun/scontrol commands (no SLURM here) that record what they were given.
# $1 = qtrain binary, $2 = source dir.
set -u
QTRAIN=$1
SRC=$2
MPI=$SRC/launch/qtrain-mpi
SB=$SRC/launch/slurm-example.sbatch
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

# --- qtrain-mpi usage: the header comment and the options, nothing of the script's code.
help=$(bash "$MPI" --help 2>&1) || bad "qtrain-mpi --help exited non-zero"
grep -qE '^(set |usage\(\)|\{|\})' <<<"$help" && bad "qtrain-mpi --help prints script code: $(grep -E '^(set |usage)' <<<"$help")"
grep -q -- "-np N" <<<"$help" || bad "qtrain-mpi --help does not list -np"
for cfg in $( (cat "$SB"; echo "$help") | grep -oE 'configs/[A-Za-z0-9_.-]+\.json' | sort -u); do
  [ -f "$SRC/$cfg" ] || bad "the launch scripts name $cfg, which does not exist"
done
# An option missing its value: one line naming it, exit 2 (not bash's 'unbound variable').
out=$(bash "$MPI" -np 2>&1); rc=$?
{ [ "$rc" = 2 ] && grep -q -- "-np" <<<"$out" && ! grep -q "unbound" <<<"$out"; } \
  || bad "qtrain-mpi -np without a value: exit $rc, '$out'"
# Arguments after -- reach qtrain as they were (spaces kept).
out=$(bash "$MPI" -np 2 --cpu --dry-run --qtrain "$QTRAIN" -- train --data "a b.jsonl" --lr 1e-3 2>&1)
grep -qF -- "$QTRAIN train --data a\\ b.jsonl --lr 1e-3" <<<"$out" || bad "qtrain-mpi --dry-run: $out"

# --- qtrain-mpi really runs the ranks (CPU, tiny model, 2 steps).
if command -v mpirun >/dev/null; then
  OMP_NUM_THREADS=1 timeout 120 bash "$MPI" -np 2 --cpu --qtrain "$QTRAIN" -- train --model "$SRC/tests/fixtures/tiny-gpt2" \
    --tokenizer "$SRC/../shared/data/gpt2-tokenizer" --data "$SRC/../shared/data/codesearchnet-format" --seq-len 16 \
    --batch-size 1 --steps 2 --device cpu --out "$tmp/run" >"$tmp/mpi.log" 2>&1 || bad "qtrain-mpi -np 2 run: $(tail -5 "$tmp/mpi.log")"
  grep -q "2 rank" "$tmp/mpi.log" || bad "qtrain-mpi -np 2 did not run 2 ranks: $(tail -5 "$tmp/mpi.log")"
else
  echo "mpirun not found: the qtrain-mpi run is skipped"
fi

# --- slurm-example.sbatch against stubs: srun exits with $SRUN_RC and records its arguments.
mkdir -p "$tmp/bin"
printf '#!/bin/bash\nprintf "%%s\\n" "$@" > "$STUB_DIR/srun.args"\nexit ${SRUN_RC:-0}\n' > "$tmp/bin/srun"
printf '#!/bin/bash\necho "$@" > "$STUB_DIR/scontrol.args"\n' > "$tmp/bin/scontrol"
chmod +x "$tmp/bin/srun" "$tmp/bin/scontrol"
sb() {  # sb SRUN_RC ARGS...: run the batch script in SRC with the stubs
  local rc=$1; shift
  rm -f "$tmp"/*.args
  (cd "$SRC" && PATH="$tmp/bin:$PATH" STUB_DIR=$tmp SRUN_RC=$rc SLURM_JOB_ID=77 SLURM_CPUS_PER_TASK=4 OUT="$tmp/sout" \
     QTRAIN=/bin/true bash "$SB" "$@") >"$tmp/sb.log" 2>&1
}
sb 0 configs/tiny-gpt2-lora.json --steps 5 --lr 1e-3; rc=$?
[ "$rc" = 0 ] || bad "sbatch script with a successful srun exited $rc: $(cat "$tmp/sb.log")"
args=$(tr '\n' ' ' < "$tmp/srun.args" 2>/dev/null)
grep -qF -- "--config configs/tiny-gpt2-lora.json" <<<"$args" || bad "sbatch script did not pass the config: $args"
grep -qF -- "--steps 5 --lr 1e-3" <<<"$args" || bad "sbatch script dropped qtrain arguments after the config: $args"
[ -f "$tmp/scontrol.args" ] && bad "sbatch script requeued a finished run"
# qtrain's exit after SIGUSR1 (128+10, checkpoint written): the job requeues itself and resumes.
sb 138 configs/tiny-gpt2-lora.json
grep -q "requeue 77" "$tmp/scontrol.args" 2>/dev/null || bad "sbatch script did not requeue after the USR1 stop (exit 138)"
# Any other failure is the job's failure, passed on.
sb 1 configs/tiny-gpt2-lora.json; rc=$?
[ "$rc" = 1 ] || bad "sbatch script hid a failed run (exit $rc)"
[ -f "$tmp/scontrol.args" ] && bad "sbatch script requeued a failed run"

# --- quickstart.sh --dry-run: which fine-tune it picks, against a stub nvidia-smi (GPU or none)
# and stub binaries with and without the CUDA backend (as `qtrain --version` says). A GPU with
# a qtrain built without nvcc gets the short CPU preset and a line saying why: --device auto
# runs on the CPU there, and the full preset would take hours.
v=$("$QTRAIN" --version)
grep -qE "^qtrain [0-9.]+ \(CUDA backend: (yes|no), MPI: (yes|no)\)$" <<<"$v" || bad "qtrain --version does not name the backends: '$v'"
mkdir -p "$tmp/qs/gpu" "$tmp/qs/nogpu" "$tmp/qs/models"
printf '#!/bin/sh\necho "GPU 0: stub"\n' > "$tmp/qs/gpu/nvidia-smi"
printf '#!/bin/sh\nexit 9\n' > "$tmp/qs/nogpu/nvidia-smi"
printf '#!/bin/sh\necho "qtrain 0.1 (CUDA backend: yes, MPI: yes)"\n' > "$tmp/qs/cuda"
printf '#!/bin/sh\necho "qtrain 0.1 (CUDA backend: no, MPI: yes)"\n' > "$tmp/qs/nocuda"
chmod +x "$tmp"/qs/*/nvidia-smi "$tmp/qs/cuda" "$tmp/qs/nocuda"
qs() {  # qs GPU|NOGPU BINARY: quickstart's --dry-run output
  (cd "$SRC" && PATH="$tmp/qs/$1:$PATH" QTRAIN="$tmp/qs/$2" QTRAIN_MODELS="$tmp/qs/models" bash launch/quickstart.sh --dry-run 2>&1)
}
expect_qs() {  # expect_qs GPU BINARY PRESET WARNS(0|1)
  local out; out=$(qs "$1" "$2")
  grep -qF "train --config configs/$3 --overwrite" <<<"$out" || bad "quickstart ($1, $2 build) should run configs/$3: $out"
  [ -f "$SRC/configs/$3" ] || bad "quickstart names configs/$3, which does not exist"
  if [ "$4" = 1 ]; then grep -q "built without the CUDA backend" <<<"$out" || bad "quickstart ($1, $2) does not say why the GPU is unused: $out"
  else grep -q "without the CUDA backend" <<<"$out" && bad "quickstart ($1, $2) warns needlessly: $out"; fi
  grep -qE "qtrain: installing|dependencies already installed|already in|fetched|could not fetch|Configuring|Build files" <<<"$out" && bad "quickstart --dry-run installed, fetched or built: $out"
}
expect_qs gpu cuda tiny-gpt2-lora.json 0
expect_qs gpu nocuda tiny-gpt2-lora-cpu.json 1
expect_qs nogpu cuda tiny-gpt2-lora-cpu.json 0
echo x > "$tmp/qs/models/SmolLM2-135M-Instruct.Q4_1.gguf"  # fetched: the SmolLM2 presets
expect_qs gpu cuda smollm2-lora.json 0
expect_qs gpu nocuda smollm2-lora-cpu.json 1
out=$(cd "$SRC" && bash launch/quickstart.sh --bogus 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q -- "--bogus" <<<"$out" || bad "quickstart.sh --bogus: exit $rc, '$out'"
# It builds the binary alone (the test suite is launch/test.sh's), with a --target build.sh takes.
grep -q "launch/build.sh --target qtrain" "$SRC/launch/quickstart.sh" || bad "quickstart.sh does not build --target qtrain alone"
out=$(cd "$SRC" && bash launch/build.sh --target 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "target name" <<<"$out" || bad "build.sh --target without a name: exit $rc, '$out'"

[ $fail = 0 ] && echo OK
exit $fail
