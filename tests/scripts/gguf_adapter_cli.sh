#!/usr/bin/env bash
# A llama.cpp LoRA adapter (.gguf) that `export --format gguf-lora` wrote loads back as --adapter:
# eval gives the PEFT directory's loss, generate its greedy tokens, export --merge its merged
# weights, and --format peft converts it to a PEFT directory that evaluates the same. Plus the
# refusals: a model GGUF given as an adapter, and an --out that is (or holds) the file a
# registered --model name resolves to.
# Usage: gguf_adapter_cli.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; src=$2; fx=$src/tests/fixtures
if "$qtrain" export --help 2>&1 | grep -q "not built yet"; then echo "skipped: qtrain export not built yet"; exit 77; fi
err=$(mktemp); out=$(mktemp -d); trap 'rm -rf "$err" "$out"' EXIT
fail=0
source "$(dirname "$0")/lib/expect_error.sh"

model=(--model "$fx/tiny-llama")
peft=$fx/tiny-llama-lora
"$qtrain" export "${model[@]}" --adapter "$peft" --format gguf-lora --out "$out/a.gguf" >"$err" 2>&1 \
  || { echo "FAIL export --format gguf-lora:"; tail -n3 "$err"; exit 1; }

loss() { "$qtrain" eval "${model[@]}" --data "$fx/tiny-llama-eval.jsonl" --seq-len 16 --batch-size 2 --device cpu "$@" \
  2>"$err" | tail -n1 | grep -o '"loss":[^,]*' | cut -d: -f2; }
same() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && b != "" && d * d < 1e-12) }'; }
dir_loss=$(loss --adapter "$peft"); gguf_loss=$(loss --adapter "$out/a.gguf"); base_loss=$(loss)
if same "$dir_loss" "$gguf_loss" && ! same "$dir_loss" "$base_loss"; then
  echo "ok   eval: the .gguf adapter's loss $gguf_loss = the PEFT directory's (base alone: $base_loss)"
else echo "FAIL eval: .gguf '$gguf_loss', PEFT dir '$dir_loss', base alone '$base_loss'"; tail -n3 "$err"; fail=1; fi

gen() { "$qtrain" generate "${model[@]}" --ids --prompt-ids "1,2,3,4" --ignore-eos --max-new-tokens 12 --temperature 0 --device cpu "$@" \
  2>"$err" | tail -n1; }
g_dir=$(gen --adapter "$peft"); g_gguf=$(gen --adapter "$out/a.gguf")
if [[ -n $g_dir && $g_dir == "$g_gguf" ]]; then echo "ok   generate: the same greedy tokens ($g_gguf)"
else echo "FAIL generate: PEFT dir '$g_dir', .gguf '$g_gguf'"; tail -n3 "$err"; fail=1; fi

# --format peft from the .gguf: a PEFT directory again, which evaluates the same.
if "$qtrain" export "${model[@]}" --adapter "$out/a.gguf" --format peft --out "$out/back" >"$err" 2>&1; then
  back_loss=$(loss --adapter "$out/back")
  same "$dir_loss" "$back_loss" && echo "ok   export --format peft of the .gguf evaluates the same ($back_loss)" \
    || { echo "FAIL the converted PEFT directory: $back_loss, want $dir_loss"; fail=1; }
else echo "FAIL export --format peft from the .gguf:"; tail -n3 "$err"; fail=1; fi

# export --merge: the same merged weights from either adapter.
for a in dir gguf; do
  adapter=$peft; [[ $a == gguf ]] && adapter=$out/a.gguf
  "$qtrain" export "${model[@]}" --adapter "$adapter" --merge --format hf --dtype f32 --out "$out/m_$a" >"$err" 2>&1 \
    || { echo "FAIL export --merge with the $a adapter:"; tail -n3 "$err"; fail=1; }
done
if python3 "$src/tests/scripts/compare_safetensors.py" "$out/m_gguf/model.safetensors" "$out/m_dir/model.safetensors" --rtol 1e-6 \
    >"$err" 2>&1; then echo "ok   export --merge: the same merged weights"
else echo "FAIL export --merge differs:"; tail -n3 "$err"; fail=1; fi

llama=(eval "${model[@]}" --data "$fx/tiny-llama-eval.jsonl" --seq-len 16 --batch-size 2 --device cpu)
expect_error "a model GGUF as --adapter" "tiny_llama.gguf general.type not a llama.cpp LoRA adapter" \
  "${llama[@]}" --adapter "$fx/gguf/tiny_llama.gguf"
expect_error "a LLaMA .gguf adapter on GPT-2" "a.gguf LLaMA" eval --model "$fx/tiny-gpt2" \
  --data "$fx/tiny-gpt2-eval.jsonl" --seq-len 16 --device cpu --adapter "$out/a.gguf"

# export --merge --format gguf --out onto the file a registered --model name stands for: refused
# before anything is read (it was replaced by the merge: the base lost).
mkdir -p "$out/models"
reg=SmolLM2-135M-Instruct.Q4_1.gguf  # smollm2-135m's file (models/model_registry.cpp)
cp "$fx/gguf/tiny_llama.gguf" "$out/models/$reg"
before=$(cksum <"$out/models/$reg")
QTRAIN_MODELS=$out/models expect_error "--out is the registered --model's file" "smollm2-135m which export reads" \
  export --model smollm2-135m --adapter "$peft" --merge --format gguf --out "$out/models/$reg" --overwrite
# ... and a directory --out that holds it (the models cache dir itself): swapped out whole, the base with it.
QTRAIN_MODELS=$out/models expect_error "--out holds the registered --model's file" "holds $reg which export reads" \
  export --model smollm2-135m --adapter "$peft" --merge --out "$out/models" --overwrite
[[ $(cksum <"$out/models/$reg") == "$before" ]] && echo "ok   the registered model's file is untouched" \
  || { echo "FAIL the registered model's file changed"; fail=1; }
exit $fail
