#!/usr/bin/env bash
# The benchmark table writer and row commands of bench/train_vs_hf.py (fastest anchor, ratios,
# markdown, merging two steps' files, each row's qtrain flags and anchor recipe) on made-up
# numbers: bench/test_bench_table.py; bench/table3.py's run logic on a stand-in qtrain: bench/test_table3.py. Stdlib Python only (no GPU, no torch).
# Usage: bench_table.sh QTRAIN_BINARY SOURCE_DIR
set -u
src=$2
python3 -m unittest discover -s "$src/bench" -p 'test_*.py' 2>&1
