#!/usr/bin/env bash
# Data parallel = one big batch: N ranks with per-rank batch B give the same
# adapter after K steps as 1 rank with batch N*B, and as 1 rank with
# --grad-accum N (issue 8). $1 = qtrain binary, $2 = source dir.
source "$(dirname "$0")/dist_lib.bash"
set -e
steps=3
"$QTRAIN" train $(train_args) --steps $steps --batch-size 4 --out "$WORK/np1" >"$WORK/np1.log" 2>&1 \
  || { tail -20 "$WORK/np1.log"; exit 1; }
"${MPIRUN[@]}" -np 2 "$QTRAIN" train $(train_args) --steps $steps --batch-size 2 --out "$WORK/np2" \
  >"$WORK/np2.log" 2>&1 || { tail -20 "$WORK/np2.log"; exit 1; }
"${MPIRUN[@]}" -np 4 "$QTRAIN" train $(train_args) --steps $steps --batch-size 1 --out "$WORK/np4" \
  >"$WORK/np4.log" 2>&1 || { tail -20 "$WORK/np4.log"; exit 1; }
"$QTRAIN" train $(train_args) --steps $steps --batch-size 2 --grad-accum 2 --out "$WORK/accum" \
  >"$WORK/accum.log" 2>&1 || { tail -20 "$WORK/accum.log"; exit 1; }
# A control that must differ: 1 rank with batch 2 trains on half the rows. If compare
# passed this too, the checks above would prove nothing (e.g. every rank reading the same rows).
"$QTRAIN" train $(train_args) --steps $steps --batch-size 2 --out "$WORK/half" >"$WORK/half.log" 2>&1 \
  || { tail -20 "$WORK/half.log"; exit 1; }
grep -q "2 rank" "$WORK/np2.log" || { echo "np2 did not run on 2 ranks:"; tail -5 "$WORK/np2.log"; exit 1; }
grep -q "4 rank" "$WORK/np4.log" || { echo "np4 did not run on 4 ranks:"; tail -5 "$WORK/np4.log"; exit 1; }
echo "control (batch 2, other rows) vs np1, must differ:"
if compare "$WORK/half" "$WORK/np1"; then echo "FAIL: compare cannot tell other rows from the same rows"; exit 1; fi
echo "np2 vs np1:";   compare "$WORK/np2" "$WORK/np1"
echo "np4 vs np1:";   compare "$WORK/np4" "$WORK/np1"
echo "accum vs np1:"; compare "$WORK/accum" "$WORK/np1"
