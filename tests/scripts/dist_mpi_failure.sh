#!/usr/bin/env bash
# A rank that dies (kill -9) or hangs must take the whole job down quickly
# with a non-zero exit code, not leave its peers waiting in an all-reduce.
# $1 = qtrain binary, $2 = source dir.
set -u
source "$(dirname "$0")/lib/mpi_test_dist.sh"
fail=0
for mode in kill hang; do
  start=$(date +%s)
  log=$(QTRAIN_TEST_MPI_FAILURE=$mode timeout 100 mpirun --oversubscribe "${root_flag[@]}" --bind-to none -np 3 \
        -x QTRAIN_TEST_MPI_FAILURE "$test_bin" --gtest_filter='MpiFailure.*' 2>&1)
  rc=$?
  took=$(( $(date +%s) - start ))
  echo "mode=$mode: exit $rc after ${took}s"
  if [ "$rc" = 0 ] || [ "$rc" = 124 ] || [ "$took" -gt 60 ]; then
    echo "FAIL: mode=$mode should end the job non-zero within 60 s"; echo "$log" | tail -20; fail=1
  fi
  if [ "$mode" = hang ] && ! grep -q "comm-timeout" <<<"$log"; then
    echo "FAIL: mode=hang should name the timeout"; echo "$log" | tail -20; fail=1
  fi
done
# Bad input found on one rank (rank 1 reads --eval-data too late for a
# pre-check on rank 0) ends the whole job with 2, as it ends a single process.
fx=$2/tests/fixtures; out=$(mktemp -d)
log=$(timeout 60 mpirun --oversubscribe "${root_flag[@]}" --bind-to none -np 2 "$1" train --model "$fx/tiny-llama" \
      --data "$fx/tiny-llama-eval.jsonl" --eval-data "$fx/no-such-eval.jsonl" --seq-len 16 --steps 2 --device cpu \
      --out "$out/run" 2>&1)
rc=$?
echo "bad input under mpirun: exit $rc"
if [ "$rc" != 2 ] || ! grep -q "no-such-eval.jsonl" <<<"$log"; then
  echo "FAIL: bad input under mpirun should exit 2 naming the file"; echo "$log" | tail -10; fail=1
fi
rm -rf "$out"
exit $fail
