#!/usr/bin/env bash
# The mpirun and SLURM wrappers in launch/: their usage is readable and names files that
# exist, they reject a bad option with one line, and they hand qtrain's arguments through.
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

[ $fail = 0 ] && echo OK
exit $fail
