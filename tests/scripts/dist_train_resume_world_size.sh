#!/usr/bin/env bash
# A checkpoint written by 2 ranks resumes on 1 rank and on 4 ranks (same
# global batch) and ends where 4 uninterrupted steps end (issue 8).
# $1 = qtrain binary, $2 = source dir.
source "$(dirname "$0")/dist_lib.bash"
set -e
run() {  # run LOG NP ARGS...
  local log=$1 np=$2; shift 2
  if [ "$np" = 1 ]; then "$QTRAIN" train $(train_args) "$@" >"$log" 2>&1 || { tail -20 "$log"; exit 1; }
  else "${MPIRUN[@]}" -np "$np" "$QTRAIN" train $(train_args) "$@" >"$log" 2>&1 || { tail -20 "$log"; exit 1; }; fi
}
run "$WORK/full.log" 2 --steps 4 --batch-size 2 --out "$WORK/full"
run "$WORK/half.log" 2 --steps 2 --batch-size 2 --out "$WORK/half"
cp -r "$WORK/half" "$WORK/half4"
run "$WORK/on1.log" 1 --steps 4 --batch-size 4 --out "$WORK/half" --resume "$WORK/half"
run "$WORK/on4.log" 4 --steps 4 --batch-size 1 --out "$WORK/half4" --resume "$WORK/half4"
echo "2 ranks -> 1 rank vs uninterrupted:";  compare "$WORK/half" "$WORK/full"
echo "2 ranks -> 4 ranks vs uninterrupted:"; compare "$WORK/half4" "$WORK/full"
