#!/usr/bin/env bash
# kill -9 of one rank mid-training: every rank is gone within 60 s, the exit
# code is non-zero, and the checkpoint directory holds the last complete
# checkpoint, from which training resumes (issue 8). $1 = qtrain binary, $2 = source dir.
source "$(dirname "$0")/dist_lib.bash"
"${MPIRUN[@]}" -np 3 "$QTRAIN" train $(train_args) --steps 100000 --batch-size 1 --save-every 2 \
  --comm-timeout 20 --out "$WORK/run" >"$WORK/run.log" 2>&1 &
mpirun_pid=$!
# Wait for a first complete checkpoint (manifest.json is written last).
for _ in $(seq 1 120); do
  [ -f "$WORK/run/checkpoint/manifest.json" ] && break
  kill -0 $mpirun_pid 2>/dev/null || { echo "FAIL: the job ended before its first checkpoint"; tail -20 "$WORK/run.log"; exit 1; }
  sleep 0.5
done
[ -f "$WORK/run/checkpoint/manifest.json" ] || { echo "FAIL: no checkpoint after 60 s"; tail -20 "$WORK/run.log"; kill $mpirun_pid; exit 1; }
victim=$(pgrep -P $mpirun_pid -f "qtrain" | head -1)  # rank 0 usually: the checkpoint writer
[ -n "$victim" ] || { echo "FAIL: no rank process found under mpirun $mpirun_pid"; kill $mpirun_pid; exit 1; }
sleep 1  # let it be mid-step, perhaps mid-checkpoint
echo "killing rank process $victim"
kill -9 "$victim"
start=$(date +%s)
while kill -0 $mpirun_pid 2>/dev/null; do
  if [ $(( $(date +%s) - start )) -gt 60 ]; then
    echo "FAIL: ranks still running 60 s after the kill"; pkill -9 -P $mpirun_pid; kill -9 $mpirun_pid; exit 1
  fi
  sleep 0.5
done
wait $mpirun_pid
rc=$?
echo "job exit code $rc after $(( $(date +%s) - start )) s"
[ "$rc" != 0 ] || { echo "FAIL: exit code 0 after a rank was killed"; exit 1; }
if pgrep -f "$WORK/run" >/dev/null; then echo "FAIL: rank processes survive"; exit 1; fi
# mpirun takes the survivors down with SIGTERM: their line must not promise a new checkpoint.
if grep -q "stop requested" "$WORK/run.log" && ! grep -q "the last checkpoint stays" "$WORK/run.log"; then
  echo "FAIL: a surviving rank's stop line promises a checkpoint:"; grep "stop requested" "$WORK/run.log"; exit 1
fi
# The last complete checkpoint loads and training goes on from it.
step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$WORK/run/checkpoint/manifest.json" 2>/dev/null \
       || python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$WORK/run/checkpoint.old/manifest.json")
echo "last complete checkpoint: step $step"
"$QTRAIN" train $(train_args) --steps $((step + 1)) --batch-size 3 --out "$WORK/run" --resume "$WORK/run" \
  >"$WORK/resume.log" 2>&1 || { echo "FAIL: resume from the surviving checkpoint"; tail -20 "$WORK/resume.log"; exit 1; }
echo "resumed from step $step"
