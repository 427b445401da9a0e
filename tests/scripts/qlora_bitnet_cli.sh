#!/usr/bin/env bash
# --method qlora-bitnet from the command line: QLoRA, merge, the naive rounding
# scored, BitNet QAT on the merged model for half the steps (or --qat-steps), ternary
# export; each phase leaves its own folder and config; a missing --steps and
# --resume are clear errors (exit 2).
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); err=$tmp/err; trap 'rm -rf "$tmp"' EXIT
fail=0
source "$(dirname "$0")/lib/expect_error.sh"
F=$src/tests/fixtures
D=(--model "$F/tiny-llama" --data "$F/tiny-llama-eval.jsonl" --format input_ids --seq-len 16 --batch-size 2)
"$qtrain" train "${D[@]}" --method qlora-bitnet --steps 8 --bitnet-warmup 100 --lr 1e-3 --eval-data "$F/tiny-llama-eval.jsonl" \
  --eval-batches 2 --out "$tmp/qb" > "$tmp/log" 2>&1 || { tail -20 "$tmp/log"; echo "FAIL: train --method qlora-bitnet"; exit 1; }
for f in qlora/adapter/adapter_config.json qlora-merged/config.json bitnet/model/config.json ternary/config.json qlora.json bitnet.json; do
  [ -e "$tmp/qb/$f" ] || { echo "FAIL: no $f"; fail=1; }
done
grep -q '"steps": 4' "$tmp/qb/bitnet.json" && grep -q '"bitnet_warmup": 2' "$tmp/qb/bitnet.json" && grep -q '"method": "bitnet"' "$tmp/qb/bitnet.json" \
  || { cat "$tmp/qb/bitnet.json"; echo "FAIL: the QAT phase should run 8 / 2 = 4 steps, warmup capped at 2"; fail=1; }
grep -q "naive conversion" "$tmp/log" && grep -q '"ppl"' "$tmp/log" || { echo "FAIL: the naive conversion was not scored"; fail=1; }
"$qtrain" generate --model "$tmp/qb/ternary" --method bitnet-lora --prompt-ids 1,2,3 --max-new-tokens 2 --ids --temperature 0 \
  > "$tmp/gen" 2>&1 || { cat "$tmp/gen"; echo "FAIL: generate from the ternary export"; fail=1; }
[ $fail = 0 ] && echo "ok   qlora-bitnet: qlora, merged, naive score, bitnet (4 steps), ternary export that generates"
# The closing line's generate command runs as printed: a base whose exports carry no tokenizer
# (a GGUF file, a registered name, or a --tokenizer given) is named with --tokenizer; an HF
# directory's tokenizer travels with the exports, so none is added.
grep -q "generate --model $tmp/qb/ternary --method bitnet-lora)" "$tmp/log" \
  || { grep "qlora-bitnet: done" "$tmp/log"; echo "FAIL: the closing generate command of an HF-directory base"; fail=1; }
"$qtrain" train "${D[@]}" --method qlora-bitnet --steps 4 --qat-steps 3 --tokenizer "$src/../shared/data/gpt2-tokenizer" --out "$tmp/tq" \
  > "$tmp/tlog" 2>&1 || { tail -3 "$tmp/tlog"; echo "FAIL: qlora-bitnet --tokenizer"; fail=1; }
grep -q "generate --model $tmp/tq/ternary --method bitnet-lora --tokenizer [^ ]*gpt2-tokenizer)" "$tmp/tlog" \
  && echo "ok   qlora-bitnet: the closing generate command names the --tokenizer the exports lack" \
  || { grep "qlora-bitnet: done" "$tmp/tlog"; echo "FAIL: the closing generate command should name --tokenizer"; fail=1; }
grep -q '"steps": 3' "$tmp/tq/bitnet.json" && grep -q '"qat_steps": 0' "$tmp/tq/bitnet.json" \
  && echo "ok   qlora-bitnet --qat-steps 3: the QAT phase runs 3 steps" \
  || { cat "$tmp/tq/bitnet.json"; echo "FAIL: --qat-steps 3 should set the QAT phase's steps"; fail=1; }
expect_error "--qat-steps without qlora-bitnet" "--qat-steps" train "${D[@]}" --method bitnet --steps 2 --qat-steps 3 --out "$tmp/y"
# The QLoRA phase's adapter options (--loftq-iters, --adapter-type, --target) stay out of the BitNet
# phase (which refused them after the QLoRA phase had trained); with LoftQ the merged model
# scores as the adapter on its LoftQ base does.
"$qtrain" train "${D[@]}" --method qlora-bitnet --steps 4 --adapter-type dora --out "$tmp/dq" > "$tmp/log" 2>&1 \
  && echo "ok   qlora-bitnet --adapter-type dora" || { tail -3 "$tmp/log"; echo "FAIL: qlora-bitnet --adapter-type dora"; fail=1; }
"$qtrain" train "${D[@]}" --method qlora-bitnet --steps 4 --loftq-iters 1 --lora-r 4 --lora-alpha 4 \
  --target q_proj,v_proj --lr 1e-3 --out "$tmp/lq" > "$tmp/log" 2>&1 || { tail -3 "$tmp/log"; echo "FAIL: qlora-bitnet --loftq-iters 1"; fail=1; }
E=(--data "$F/tiny-llama-eval.jsonl" --format input_ids --seq-len 16)
a=$("$qtrain" eval --model "$F/tiny-llama" --adapter "$tmp/lq/qlora/adapter" --method qlora --loftq-iters 1 "${E[@]}" 2>/dev/null | grep -o '"loss":[0-9.e+-]*' | cut -d: -f2)
m=$("$qtrain" eval --model "$tmp/lq/qlora-merged" "${E[@]}" 2>/dev/null | grep -o '"loss":[0-9.e+-]*' | cut -d: -f2)
python3 -c "import sys; a, m = float(sys.argv[1]), float(sys.argv[2]); sys.exit(abs(a - m) > 2e-3 * abs(a))" "$a" "$m" 2>/dev/null \
  && echo "ok   qlora-bitnet --loftq-iters 1: merged model loss $m = the adapter on its LoftQ base $a" \
  || { echo "FAIL: qlora-bitnet with LoftQ: merged loss '$m', adapter on the LoftQ base '$a'"; fail=1; }
expect_error "qlora-bitnet without --steps" "qlora-bitnet --steps" train "${D[@]}" --method qlora-bitnet --out "$tmp/x"
exit $fail
