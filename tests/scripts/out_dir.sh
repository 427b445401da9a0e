#!/usr/bin/env bash
# The --out directory (issue 21): a second run into a busy OUT is refused
# naming the first one's pid, a dead run's lock is taken over, an OUT with an
# earlier run's results needs --resume or --overwrite, --keep-checkpoints N,
# --resume DIR alone (a changed --lr logged), and a write past `ulimit -f`
# (SIGXFSZ) fails with the file named, leaving no partial checkpoint.tmp-* and
# the previous checkpoint and adapter intact. $1 = qtrain binary, $2 = source dir.
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export OMP_NUM_THREADS=1
F=$src/tests/fixtures
A=(--model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --lr 1e-2
   --device cpu --log-every 1)
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; [[ -f $tmp/log ]] && tail -n3 "$tmp/log"; fail=1; }

# 1. Two runs into one OUT: the second is refused with the first one's pid.
# (long enough that it is still running when the second one starts on an idle machine: 40 steps were not)
"$qtrain" train "${A[@]}" --seq-len 128 --batch-size 4 --steps 2000 --out "$tmp/busy" > "$tmp/first.log" 2>&1 &
first=$!
for _ in $(seq 1 400); do [[ -f $tmp/busy/.qtrain.lock ]] && break; sleep 0.05; done
"$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 2 --out "$tmp/busy" > "$tmp/log" 2>&1; rc=$?
wait $first; rc1=$?
if [[ $rc == 2 ]] && grep -q "in use by qtrain pid $first" "$tmp/log"; then ok "second run into a busy --out: exit 2: $(grep error "$tmp/log")"
else bad "second run into a busy --out: exit $rc"; fi
[[ $rc1 == 0 && $(wc -l < "$tmp/busy/metrics.jsonl") == 2000 && ! -e $tmp/busy/.qtrain.lock ]] \
  && ok "the first run finished alone (2000 metrics lines, lock removed)" || bad "first run: exit $rc1"

# 2. A lock left by a dead process is taken over.
mkdir -p "$tmp/stale"; sleep 0 & dead=$!; wait $dead
echo "$dead $(hostname)" > "$tmp/stale/.qtrain.lock"
"$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 2 --out "$tmp/stale" > "$tmp/log" 2>&1 \
  && grep -q "taking over the lock of pid $dead" "$tmp/log" && ok "stale lock of dead pid $dead taken over" || bad "stale lock"

# 3. An OUT holding an earlier run's results: refused without --resume or --overwrite.
"$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 2 --out "$tmp/stale" > "$tmp/log" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "already holds an earlier run's adapter/, checkpoint/.*--overwrite" "$tmp/log" \
  && ok "rerun into a used --out: exit 2" || bad "rerun into a used --out: exit $rc"
# --overwrite with a bad input (a typo in --data, a --target that matches nothing) is refused before
# the earlier run is removed: it used to delete adapter/ and checkpoint/ first, then fail.
for badarg in "--data $tmp/no-such.jsonl" "--target no_such_proj"; do
  "$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 2 --overwrite $badarg --out "$tmp/stale" > "$tmp/log" 2>&1; rc=$?
  [[ $rc == 2 && -f $tmp/stale/adapter/adapter_model.safetensors && -f $tmp/stale/checkpoint/manifest.json ]] \
    && ok "--overwrite $badarg: exit 2, the earlier adapter/ and checkpoint/ kept" \
    || bad "--overwrite $badarg: exit $rc, left: $(ls "$tmp/stale" | tr '\n' ' ')"
done
"$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 2 --overwrite --out "$tmp/stale" > "$tmp/log" 2>&1 \
  && grep -q -- "--overwrite: removed .*stale/checkpoint" "$tmp/log" && ok "--overwrite replaces it" || bad "--overwrite"

# 4. --keep-checkpoints 2: the newest in checkpoint/, the one before as checkpoint-step<N>/.
"$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 6 --save-every 2 --keep-checkpoints 2 --out "$tmp/keep" > "$tmp/log" 2>&1 || bad "keep run"
kept=$(cd "$tmp/keep" && ls -d checkpoint* | tr '\n' ' ')
[[ $kept == "checkpoint checkpoint-step4 " ]] && ok "--keep-checkpoints 2 keeps: $kept" || bad "--keep-checkpoints 2 keeps: $kept"

# 5. --resume DIR alone continues the run; a changed --lr is logged as deliberate.
"$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 6 --stop-at 3 --lora-r 4 --out "$tmp/res" > "$tmp/log" 2>&1 || bad "stop-at run"
"$qtrain" train --resume "$tmp/res" --lr 5e-3 > "$tmp/log" 2>&1; rc=$?
n=$(wc -l < "$tmp/res/metrics.jsonl")
[[ $rc == 0 && $n == 6 ]] && grep -q '"r": 4' "$tmp/res/adapter/adapter_config.json" \
  && grep -q "lr changed from 0.01 to 0.005 (given on the command line: a deliberate change)" "$tmp/log" \
  && ok "--resume DIR alone finished the 6 steps with the saved settings; the --lr change was logged" \
  || bad "--resume alone: exit $rc, $n metrics lines"
# ... and a --steps below the checkpoint's step is refused (it logged "training -1 steps" and
# rewrote the adapter of step 6 as the run's result); the checkpoint stays as it was.
"$qtrain" train --resume "$tmp/res" --steps 4 > "$tmp/log" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "qtrain: error: --steps 4 ends before step 6" "$tmp/log" \
  && [[ $(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$tmp/res/checkpoint/manifest.json") == 6 ]] \
  && ok "--resume with --steps 4 < the checkpoint's 6: exit 2" || bad "--resume with --steps below the checkpoint: exit $rc"

# 6. A file-size limit (SIGXFSZ): the checkpoint write fails with exit 1 naming
#    the file; no checkpoint.tmp-* stays; the last checkpoint and adapter are intact.
cp "$tmp/res/adapter/adapter_model.safetensors" "$tmp/adapter.before"
( ulimit -f 40; exec "$qtrain" train --resume "$tmp/res" --steps 8 ) > "$tmp/log" 2>&1; rc=$?
left=$(ls -d "$tmp/res"/checkpoint.tmp-* 2>/dev/null | wc -l)
step=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['step'])" "$tmp/res/checkpoint/manifest.json")
if [[ $rc == 1 ]] && grep -q "qtrain: error: .*safetensors.*File too large" "$tmp/log" && [[ $left == 0 && $step == 6 ]] \
   && cmp -s "$tmp/adapter.before" "$tmp/res/adapter/adapter_model.safetensors"; then
  ok "ulimit -f 40: exit 1: $(grep 'qtrain: error' "$tmp/log" | sed "s|$tmp/||g"); checkpoint (step $step) and adapter intact"
else
  bad "ulimit -f: exit $rc, $left checkpoint.tmp-* left, checkpoint step $step"
fi
"$qtrain" train --resume "$tmp/res" --steps 8 > "$tmp/log" 2>&1 && ok "and the run then resumes from it" || bad "resume after EFBIG"

# 7. An --out that is a file (or below one): exit 2 naming --out; the file is left alone.
echo keep > "$tmp/afile"
for o in "$tmp/afile" "$tmp/afile/sub"; do
  "$qtrain" train "${A[@]}" --seq-len 16 --batch-size 1 --steps 2 --out "$o" > "$tmp/log" 2>&1; rc=$?
  [[ $rc == 2 ]] && grep -q "qtrain: error: --out $o: .*afile is a file, not a directory" "$tmp/log" && [[ $(cat "$tmp/afile") == keep ]] \
    && ok "--out ${o#$tmp/}: exit 2: $(grep 'qtrain: error' "$tmp/log" | sed "s|$tmp/||g")" || bad "--out ${o#$tmp/}: exit $rc"
done
exit $fail
