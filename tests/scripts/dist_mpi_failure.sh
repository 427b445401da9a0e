#!/usr/bin/env bash
# A rank that dies (kill -9) or hangs must take the whole job down quickly
# with a non-zero exit code, not leave its peers waiting in an all-reduce.
# $1 = qtrain binary, $2 = source dir.
set -u
build_dir=$(dirname "$1")
test_bin="$build_dir/test_dist"
command -v mpirun >/dev/null || { echo "skipped: mpirun not found"; exit 77; }
[ -x "$test_bin" ] || { echo "skipped: $test_bin not built"; exit 77; }
root_flag=(); [ "$(id -u)" = 0 ] && root_flag=(--allow-run-as-root)
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
exit $fail
