#!/usr/bin/env bash
# Bad input gives exit code 2, no crash, and a one-line error naming the file and the
# field (issue 3). Inputs: tests/fixtures/bad/ (made by make_bad_fixtures.py).
# Usage: fixtures_bad_inputs.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; fx=$2/tests/fixtures; bad=$fx/bad
if "$qtrain" eval --help 2>&1 | grep -q "not built yet"; then echo "skipped: qtrain eval not built yet"; exit 77; fi
err=$(mktemp); out=$(mktemp -d); trap 'rm -rf "$err" "$out"' EXIT
fail=0

source "$(dirname "$0")/lib/expect_error.sh"

micro=(--data "$bad/micro-eval.jsonl" --seq-len 8 --batch-size 1 --device cpu)
expect_error "truncated safetensors" "model.safetensors" eval --model "$bad/truncated" "${micro[@]}"
expect_error "header runs past the file" "model.safetensors" eval --model "$bad/header-truncated" "${micro[@]}"
expect_error "offsets out of range" "model.safetensors model.norm.weight" eval --model "$bad/offsets-out-of-range" "${micro[@]}"
expect_error "unknown dtype" "model.safetensors Q9" eval --model "$bad/unknown-dtype" "${micro[@]}"
expect_error "config without hidden_size" "config.json hidden_size" eval --model "$bad/config-missing-field" "${micro[@]}"

llama=(--model "$fx/tiny-llama" --data "$fx/tiny-llama-eval.jsonl" --seq-len 16 --batch-size 2 --device cpu)
expect_error "adapter for another hidden size" "adapter" eval "${llama[@]}" --adapter "$bad/adapter-wrong-shape"
expect_error "adapter r != tensor shapes" "adapter" eval "${llama[@]}" --adapter "$bad/adapter-r-mismatch"
expect_error "missing model dir" "no-such-model" eval --model "$bad/no-such-model" "${micro[@]}"
expect_error "missing data file" "no-such-data.jsonl" eval --model "$fx/tiny-llama" --data "$bad/no-such-data.jsonl" --device cpu
python3 -c 'import json; print(json.dumps({"input_ids": list(range(1, 201))}))' > "$out/long.jsonl"
expect_error "input_ids row past GPT-2's positions" "200 128 input_ids" eval --model "$fx/tiny-gpt2" \
  --data "$out/long.jsonl" --seq-len 100 --device cpu
expect_error "missing adapter dir" "no-such-adapter" eval "${llama[@]}" --adapter "$bad/no-such-adapter"
expect_error "adapter given as a file" "adapter_config.json: not a directory" eval "${llama[@]}" \
  --adapter "$fx/tiny-llama-lora/adapter_config.json"

# A merged GGUF needs a vocabulary in GGUF form that fits the model: an HF base without
# --tokenizer, HF tokenizer files and another model's GGUF vocabulary are refused (exit 2).
merge=(export --model "$fx/tiny-llama" --adapter "$fx/tiny-llama-lora" --merge --format gguf --gguf-type f32)
expect_error "merged GGUF without a tokenizer" "nogguf.gguf tokenizer" "${merge[@]}" --out "$out/nogguf.gguf"
[[ -e $out/nogguf.gguf ]] && { echo "FAIL merged GGUF without a tokenizer: a file was written"; fail=1; }
expect_error "merged GGUF with an HF tokenizer" "--tokenizer" "${merge[@]}" --tokenizer "$fx/tiny-llama" --out "$out/hf.gguf"
expect_error "merged GGUF with another model's vocabulary" "tiny_llama.gguf 40 300" "${merge[@]}" \
  --tokenizer "$fx/gguf/tiny_llama.gguf" --out "$out/other.gguf"
expect_error "merged GGUF without a tokenizer, into a directory" "model.gguf tokenizer" "${merge[@]}" --out "$out/ggdir"
[[ -e $out/ggdir ]] && { echo "FAIL merged GGUF without a tokenizer: $out/ggdir was created"; fail=1; }

# Export flags are checked before the merge runs; --merge is no llama.cpp LoRA.
lora=(export --model "$fx/tiny-llama" --adapter "$fx/tiny-llama-lora")
expect_error "unknown --format" "--format foo" "${lora[@]}" --format foo --out "$out/foo"
expect_error "unknown --format with --merge" "--format foo" "${lora[@]}" --merge --format foo --out "$out/foo"
expect_error "unknown --dtype" "--dtype f8" "${lora[@]}" --merge --dtype f8 --out "$out/f8"
expect_error "unknown --gguf-type" "--gguf-type q5_k" "${lora[@]}" --merge --format gguf --gguf-type q5_k --out "$out/q5.gguf"
expect_error "--merge with gguf-lora" "--merge gguf-lora" "${lora[@]}" --merge --format gguf-lora --out "$out/m.gguf"
[[ -e $out/foo || -e $out/f8 || -e $out/m.gguf ]] && { echo "FAIL a refused export left output"; ls "$out"; fail=1; }

# A .gguf --out is a file: an existing one needs --overwrite, and the model being read is never it.
cp "$fx/gguf/tiny_llama.gguf" "$out/base.gguf"
expect_error "GGUF export over its own --model" "--out base.gguf reads" export --model "$out/base.gguf" \
  --adapter "$fx/tiny-llama-lora" --merge --format gguf --out "$out/base.gguf" --overwrite
cmp -s "$fx/gguf/tiny_llama.gguf" "$out/base.gguf" || { echo "FAIL GGUF export over its own --model: it was changed"; fail=1; }
echo keep > "$out/old.gguf"
expect_error "GGUF export over an existing file" "--out old.gguf --overwrite" "${lora[@]}" --format gguf-lora --out "$out/old.gguf"
[[ $(cat "$out/old.gguf") == keep ]] || { echo "FAIL GGUF export over an existing file: it was replaced"; fail=1; }
if "$qtrain" "${lora[@]}" --format gguf-lora --out "$out/old.gguf" --overwrite 2>"$err" && [[ $(head -c4 "$out/old.gguf") == GGUF ]]; then
  echo "ok   GGUF export --overwrite replaces the file"
else
  echo "FAIL GGUF export --overwrite"; tail -n5 "$err"; fail=1
fi

# export --requantize writes a bitsandbytes checkpoint for transformers: loading it here says so by name.
if "$qtrain" "${lora[@]}" --merge --requantize nf4 --out "$out/nf4" >/dev/null 2>"$err"; then
  expect_error "a bitsandbytes 4-bit checkpoint as --model" "nf4/config.json quantization_config bitsandbytes" \
    eval --model "$out/nf4" --data "$fx/tiny-llama-eval.jsonl" --device cpu
else
  echo "FAIL export --requantize nf4"; tail -n5 "$err"; fail=1
fi

# Exports in qtrain's own packed storage load only with the --method that reads it: the error says which.
if "$qtrain" export --model "$fx/tiny-llama" --method bitnet --format ternary --out "$out/tern" >/dev/null 2>"$err"; then
  expect_error "a ternary export without --method bitnet-lora" "tern ternary --method bitnet-lora" \
    eval --model "$out/tern" --data "$fx/tiny-llama-eval.jsonl" --device cpu
else
  echo "FAIL export --format ternary"; tail -n5 "$err"; fail=1
fi
if "$qtrain" train --model "$fx/tiny-llama" --method qablora --data "$fx/tiny-llama-eval.jsonl" --format input_ids \
     --seq-len 16 --batch-size 1 --steps 1 --device cpu --out "$out/qa" >/dev/null 2>"$err" &&
   "$qtrain" export --model "$fx/tiny-llama" --method qablora --adapter "$out/qa/adapter" --merge --out "$out/qa4" \
     >/dev/null 2>"$err"; then
  expect_error "a QA-BLoRA 4-bit export without --method qablora" "qa4 4-bit --method qablora" \
    eval --model "$out/qa4" --data "$fx/tiny-llama-eval.jsonl" --device cpu
else
  echo "FAIL qablora train + merged export"; tail -n5 "$err"; fail=1
fi

# Directory exports are swapped in whole: a non-empty --out needs --overwrite, and an --out
# that holds what the export reads (or is the working directory) is refused.
peft=(export --model "$fx/tiny-llama" --adapter "$fx/tiny-llama-lora")
mkdir -p "$out/busy" && echo keep > "$out/busy/notes.txt"
expect_error "export into a non-empty --out" "--out busy --overwrite" "${peft[@]}" --out "$out/busy"
[[ -f $out/busy/notes.txt ]] || { echo "FAIL export into a non-empty --out: it was touched"; fail=1; }
expect_error "export over the adapter it reads" "--out tiny-llama-lora" "${peft[@]}" --out "$fx/tiny-llama-lora" --overwrite
expect_error "export into the working directory" "--out working" "${peft[@]}" --out . --overwrite
if "$qtrain" "${peft[@]}" --out "$out/busy" --overwrite 2>"$err" && [[ -f $out/busy/adapter_config.json && ! -e $out/busy/notes.txt ]] &&
   [[ -z $(ls -d "$out"/busy.* 2>/dev/null) ]]; then
  echo "ok   export --overwrite replaces the directory, no temp left"
else
  echo "FAIL export --overwrite"; tail -n5 "$err"; ls "$out"; fail=1
fi

if "$qtrain" train --help 2>&1 | grep -q "not built yet"; then
  echo "skip unknown --method: qtrain train not built yet"
else
  expect_error "unknown --method" "no-such-method" train --model "$fx/tiny-llama" --data "$fx/tiny-llama-eval.jsonl" \
    --method no-such-method --seq-len 16 --steps 1 --device cpu --out "$out/run"
  expect_error "unknown --attention" "--attention flash9" train --model "$fx/tiny-llama" \
    --data "$fx/tiny-llama-eval.jsonl" --attention flash9 --steps 1 --device cpu --out "$out/run2"
  expect_error "negative --int8-threshold" "--int8-threshold" train --model "$fx/tiny-llama" \
    --data "$fx/tiny-llama-eval.jsonl" --method int8-lora --int8-threshold -1 --steps 1 --device cpu --out "$out/run3"
fi
exit $fail
