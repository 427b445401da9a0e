#!/usr/bin/env bash
# Bad GGUF input gives exit code 2, no crash, and one stderr line naming the file
# and the key/tensor (issue 5). Inputs: tests/fixtures/gguf/bad/ (made by
# tests/fixtures/gguf/make_gguf_fixtures.py).
# Usage: gguf_bad_inputs.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; fx=$2/tests/fixtures; bad=$fx/gguf/bad
if "$qtrain" eval --help 2>&1 | grep -q "not built yet"; then echo "skipped: qtrain eval not built yet"; exit 77; fi
err=$(mktemp); trap 'rm -f "$err"' EXIT
fail=0

source "$(dirname "$0")/lib/expect_error.sh"

data=(--data "$fx/bad/micro-eval.jsonl" --seq-len 8 --batch-size 1 --device cpu)
expect_error "bad magic" "bad_magic.gguf magic" eval --model "$bad/bad_magic.gguf" "${data[@]}"
expect_error "truncated file" "truncated.gguf damaged" eval --model "$bad/truncated.gguf" "${data[@]}"
expect_error "tensor past the end" "tensor_past_end.gguf token_embd.weight end" \
  eval --model "$bad/tensor_past_end.gguf" "${data[@]}"
expect_error "unknown tensor type" "unknown_type.gguf token_embd.weight 77" eval --model "$bad/unknown_type.gguf" "${data[@]}"
expect_error "string length past the end" "string_past_end.gguf general.architecture length" \
  eval --model "$bad/string_past_end.gguf" "${data[@]}"
expect_error "unsupported architecture" "unsupported_arch.gguf mamba" eval --model "$bad/unsupported_arch.gguf" "${data[@]}"
expect_error "missing .gguf" "no-such.gguf" eval --model "$bad/no-such.gguf" "${data[@]}"
QTRAIN_MODELS=$bad/no-models-here expect_error "registered model not fetched" "smollm2-135m fetch-models.sh" \
  eval --model smollm2-135m "${data[@]}"
exit $fail
