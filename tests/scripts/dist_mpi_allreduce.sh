#!/usr/bin/env bash
# Multi-rank collectives and bucketed gradient reduction over MPI on CPU:
# runs the Mpi* tests of test_dist on 4 ranks. $1 = qtrain binary, $2 = source dir.
set -u
source "$(dirname "$0")/lib/mpi_test_dist.sh"
exec timeout 300 mpirun --oversubscribe "${root_flag[@]}" --bind-to none -np 4 \
  "$test_bin" --gtest_filter='Mpi*' --gtest_brief=1
