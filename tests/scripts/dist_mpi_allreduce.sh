#!/usr/bin/env bash
# Multi-rank collectives and bucketed gradient reduction over MPI on CPU:
# runs the Mpi* tests of test_dist on 4 ranks. $1 = qtrain binary, $2 = source dir.
set -u
build_dir=$(dirname "$1")
test_bin="$build_dir/test_dist"
command -v mpirun >/dev/null || { echo "skipped: mpirun not found"; exit 77; }
[ -x "$test_bin" ] || { echo "skipped: $test_bin not built"; exit 77; }
root_flag=(); [ "$(id -u)" = 0 ] && root_flag=(--allow-run-as-root)
exec timeout 300 mpirun --oversubscribe "${root_flag[@]}" --bind-to none -np 4 \
  "$test_bin" --gtest_filter='Mpi*' --gtest_brief=1
