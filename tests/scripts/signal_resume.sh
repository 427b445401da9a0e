#!/usr/bin/env bash
# SIGTERM mid-run (issue 21): the run finishes the step in progress, writes a
# checkpoint, exits 143 with a line saying how to resume, and `--resume OUT`
# alone then ends bit for bit where an uninterrupted run ends. Once on one
# process, once on 2 MPI ranks with the signal sent to rank 1 only (the ranks
# must agree on the step to stop at; rank 0 writes the checkpoint).
# $1 = qtrain binary, $2 = source dir.
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1  # ranks share two cores in CI
F=$src/tests/fixtures
# Enough steps that the signal, sent once 3 are logged, lands mid-run: 40 steps of this model take
# 0.1 s on one core, and CI saw a run finish before its SIGTERM arrived (exit 0, not 143).
steps=400
A=(--model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --seq-len 128
   --lr 1e-2 --lora-dropout 0.1 --schedule cosine --warmup 2 --log-every 1 --device cpu --steps $steps)
fail=0
losses() { python3 -c "import json,sys; print([(j['step'], j['loss']) for j in map(json.loads, open(sys.argv[1])) if j.get('kind') != 'eval'])" "$1"; }

# interrupt NAME PID_TO_SIGNAL_CMD LAUNCH...: start the run, SIGTERM it once 3 steps are logged.
interrupt() {
  local name=$1 pick=$2; shift 2
  "$@" > "$tmp/$name.log" 2>&1 &
  local job=$!
  for _ in $(seq 1 600); do
    [[ -f $tmp/$name/metrics.jsonl && $(wc -l < "$tmp/$name/metrics.jsonl") -ge 3 ]] && break
    kill -0 $job 2>/dev/null || break
    sleep 0.05
  done
  local victim
  victim=$($pick $job)
  [[ -n $victim ]] && kill -TERM "$victim"
  wait $job
  echo $?
}
self() { echo "$1"; }
rank1() {  # the rank-1 process under mpirun (OMPI_COMM_WORLD_RANK=1 in its environment)
  local p
  for p in $(pgrep -f -- "--out $tmp/mpi\$"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && { echo $p; return; }
  done
}

check_stopped() {  # check_stopped NAME RC
  local name=$1 rc=$2
  if [[ $rc != 143 ]]; then echo "FAIL $name: exit $rc after SIGTERM, want 143"; tail -5 "$tmp/$name.log"; fail=1; return 1; fi
  grep -q "stopped by .* Continue with: qtrain train --resume $tmp/$name" "$tmp/$name.log" \
    || { echo "FAIL $name: no line saying how to resume"; tail -5 "$tmp/$name.log"; fail=1; return 1; }
  local at
  at=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$tmp/$name/checkpoint/manifest.json")
  if [[ -z $at || $at -ge $steps ]]; then echo "FAIL $name: checkpoint at step '$at' (not mid-run)"; fail=1; return 1; fi
  echo "ok   $name: SIGTERM -> exit 143, checkpoint at step $at of $steps"
}

# ---- one process ----
"$qtrain" train "${A[@]}" --batch-size 4 --out "$tmp/full" > "$tmp/full.log" 2>&1 || { cat "$tmp/full.log"; exit 1; }
rc=$(interrupt one self "$qtrain" train "${A[@]}" --batch-size 4 --out "$tmp/one")
if check_stopped one "$rc"; then
  "$qtrain" train --resume "$tmp/one" > "$tmp/one-resume.log" 2>&1 || { echo "FAIL one: resume"; tail -5 "$tmp/one-resume.log"; fail=1; }
  [[ "$(losses "$tmp/full/metrics.jsonl")" == "$(losses "$tmp/one/metrics.jsonl")" ]] || { echo "FAIL one: losses differ after resume"; fail=1; }
  cmp "$tmp/full/adapter/adapter_model.safetensors" "$tmp/one/adapter/adapter_model.safetensors" \
    && echo "ok   one: resumed adapter is bit-identical to the uninterrupted run's" || { echo "FAIL one: adapters differ"; fail=1; }
fi

# ---- SIGTERM during the final evaluation ----
# A whole eval split can outlast the training (a preset's final eval ran 10 minutes on the CPU, deaf
# to SIGTERM). The adapter and checkpoint are written before it; the signal cuts it short: exit 143,
# the partial eval not recorded as one.
python3 -c "
import sys
line = open(sys.argv[1]).readline()
open(sys.argv[2], 'w').write(line * 100000)" "$F/tiny-llama-eval.jsonl" "$tmp/big-eval.jsonl"
"$qtrain" train --model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --seq-len 128 --device cpu \
  --steps 3 --batch-size 4 --eval-data "$tmp/big-eval.jsonl" --out "$tmp/ev" > "$tmp/ev.log" 2>&1 &
job=$!
for _ in $(seq 1 600); do grep -q "info done:" "$tmp/ev.log" 2>/dev/null && break; sleep 0.05; done
sleep 0.3; kill -TERM $job; t0=$(date +%s.%N)
wait $job; rc=$?; waited=$(python3 -c "import sys, time; print(round(time.time() - float(sys.argv[1]), 1))" "$t0")
if [[ $rc == 143 && -f $tmp/ev/adapter/adapter_model.safetensors && -f $tmp/ev/checkpoint/manifest.json ]] \
   && grep -q "final evaluation cut short by SIGTERM" "$tmp/ev.log" && ! grep -q '"kind":"eval"' "$tmp/ev/metrics.jsonl"; then
  echo "ok   SIGTERM during the final eval: exit 143 after ${waited}s, adapter and checkpoint written, no eval row"
else
  echo "FAIL SIGTERM during the final eval: exit $rc after ${waited}s"; tail -3 "$tmp/ev.log"; fail=1
fi

# ---- 2 MPI ranks, the signal to rank 1 only ----
if command -v mpirun >/dev/null; then
  MPIRUN=(mpirun --oversubscribe --bind-to none -x OMP_NUM_THREADS -np 2)
  [ "$(id -u)" = 0 ] && MPIRUN+=(--allow-run-as-root)
  "${MPIRUN[@]}" "$qtrain" train "${A[@]}" --batch-size 2 --out "$tmp/mpifull" > "$tmp/mpifull.log" 2>&1 \
    || { tail -20 "$tmp/mpifull.log"; exit 1; }
  rc=$(interrupt mpi rank1 "${MPIRUN[@]}" "$qtrain" train "${A[@]}" --batch-size 2 --out "$tmp/mpi")
  # mpirun reports the ranks' 143 as its own non-zero status.
  if [[ $rc != 0 ]] && ! grep -q "stopped by a signal to another rank" "$tmp/mpi.log"; then
    echo "FAIL mpi: rank 0 did not stop on rank 1's signal"; tail -5 "$tmp/mpi.log"; fail=1
  elif [[ $rc != 0 ]] && rc=143 && check_stopped mpi "$rc"; then
    "${MPIRUN[@]}" "$qtrain" train --resume "$tmp/mpi" > "$tmp/mpi-resume.log" 2>&1 \
      || { echo "FAIL mpi: resume"; tail -5 "$tmp/mpi-resume.log"; fail=1; }
    [[ "$(losses "$tmp/mpifull/metrics.jsonl")" == "$(losses "$tmp/mpi/metrics.jsonl")" ]] || { echo "FAIL mpi: losses differ after resume"; fail=1; }
    cmp "$tmp/mpifull/adapter/adapter_model.safetensors" "$tmp/mpi/adapter/adapter_model.safetensors" \
      && echo "ok   mpi: resumed adapter is bit-identical to the uninterrupted 2-rank run's" || { echo "FAIL mpi: adapters differ"; fail=1; }
  elif [[ $rc == 0 ]]; then
    echo "FAIL mpi: exit 0 after SIGTERM to rank 1"; tail -5 "$tmp/mpi.log"; fail=1
  fi
else
  echo "skipped 2-rank part: mpirun not found"
fi
exit $fail
