#!/usr/bin/env bash
# qtrain generate end to end on the CPU: --ids greedy output equals HF generate
# (tests/fixtures/generate-ref.json) for both fixture models with and without the
# adapter, unmerged and --merge; quantized bases run; sampling repeats with its
# seed; text streams for GPT-2; bad flags and prompts exit 2 with a line naming
# the flag.
# Usage: generate_cli.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; src=$2; fx=$src/tests/fixtures
gpt2_tok=$src/../shared/data/gpt2-tokenizer
err=$(mktemp); trap 'rm -f "$err"' EXIT
fail=0
source "$src/tests/scripts/lib/expect_error.sh"

# One "model adapter max_new prompt_ids new_ids" line per greedy case of the fixture.
cases=$(python3 - "$fx/generate-ref.json" <<'PY'
import json, sys
for c in json.load(open(sys.argv[1]))["greedy"]:
    print(c["model"], c["adapter"] or "-", c["max_new_tokens"],
          ",".join(map(str, c["prompt_ids"])), ",".join(map(str, c["new_ids"])))
PY
) || { echo "FAIL cannot read generate-ref.json"; exit 1; }

ids_of() {  # the "ids" list of a --ids JSON line, comma-separated
  python3 -c 'import json,sys; print(",".join(map(str, json.loads(sys.stdin.readline())["ids"])))'
}

while read -r model adapter max_new prompt want; do
  args=(generate --model "$fx/$model" --prompt-ids "$prompt" --max-new-tokens "$max_new" --temperature 0 --ids
        --device cpu)
  [[ $adapter != - ]] && args+=(--adapter "$fx/$adapter")
  line=$("$qtrain" "${args[@]}" 2>"$err"); rc=$?
  got=$(ids_of <<<"$line" 2>/dev/null)
  if [[ $rc -ne 0 || $got != "$want" ]]; then
    echo "FAIL greedy $model adapter=$adapter prompt=$prompt: rc=$rc got [$got] want [$want]"
    sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
  else
    echo "ok   greedy $model adapter=$adapter prompt=$prompt: the $(tr , "\n" <<<"$want" | wc -l) new ids equal HF"
  fi
  grep -q '^\[generate\] prompt [0-9]* tokens.*ms/token.*stop:' "$err" || {
    echo "FAIL no timing line on stderr"; fail=1; }
done <<<"$cases"

# The adapter merged into the base (--merge) generates what HF's unmerged peft model does.
while read -r model adapter max_new prompt want; do
  [[ $adapter == - ]] && continue
  got=$("$qtrain" generate --model "$fx/$model" --adapter "$fx/$adapter" --merge --prompt-ids "$prompt" \
    --max-new-tokens "$max_new" --temperature 0 --ids --device cpu 2>"$err" | ids_of 2>/dev/null)
  if [[ $got != "$want" ]]; then
    echo "FAIL --merge $model prompt=$prompt: got [$got] want [$want]"; sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
  else
    echo "ok   --merge $model prompt=$prompt equals HF"
  fi
done <<<"$cases"

# Quantized bases run (their tokens need not equal the dense model's).
for method in qlora int8-lora; do
  n=$("$qtrain" generate --model "$fx/tiny-llama" --adapter "$fx/tiny-llama-lora" --method $method --prompt-ids 1,5,9 \
    --max-new-tokens 6 --temperature 0 --ignore-eos --ids --device cpu 2>"$err" | ids_of | tr , '\n' | wc -l)
  if [[ $n -ne 6 ]]; then
    echo "FAIL --method $method: $n ids, want 6"; sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
  else
    echo "ok   --method $method generates"
  fi
done

# Sampling: the same seed gives the same tokens, another seed others.
sample() {
  "$qtrain" generate --model "$fx/tiny-llama" --prompt-ids 1,5,9 --max-new-tokens 16 --temperature 1 --top-p 0.9 \
    --top-k 50 --seed "$1" --ids --ignore-eos --device cpu 2>/dev/null | ids_of
}
a=$(sample 1); b=$(sample 1); c=$(sample 2)
if [[ -z $a || $a != "$b" || $a == "$c" ]]; then
  echo "FAIL seeded sampling: seed 1 [$a] then [$b], seed 2 [$c]"; fail=1
else
  echo "ok   seeded sampling repeats ([$a]) and differs with the seed"
fi

# Text: streamed to stdout.
if [[ -d $gpt2_tok ]]; then
  text=$("$qtrain" generate --model "$fx/tiny-gpt2" --tokenizer "$gpt2_tok" --prompt "Hello, world" \
    --max-new-tokens 12 --temperature 0 --device cpu 2>"$err"); rc=$?
  if [[ $rc -ne 0 || -z $text ]]; then
    echo "FAIL text generation: rc=$rc"; sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
  else
    echo "ok   text: $(head -c 80 <<<"$text")"
  fi
else
  echo "skip text generation: no $gpt2_tok"
fi

m=(--model "$fx/tiny-llama" --ids --device cpu)
expect_error "negative temperature" "--temperature" generate "${m[@]}" --prompt-ids 1 --temperature -1
expect_error "top-p 0" "--top-p" generate "${m[@]}" --prompt-ids 1 --top-p 0
expect_error "top-p above 1" "--top-p" generate "${m[@]}" --prompt-ids 1 --top-p 1.5
expect_error "negative top-k" "--top-k" generate "${m[@]}" --prompt-ids 1 --top-k -1
expect_error "no new tokens" "--max-new-tokens" generate "${m[@]}" --prompt-ids 1 --max-new-tokens 0
expect_error "empty prompt" "--prompt-ids empty" generate "${m[@]}" --prompt-ids ""
expect_error "id outside the vocabulary" "--prompt-ids 300" generate "${m[@]}" --prompt-ids 1,300
expect_error "prompt past the positions" "--prompt-ids 129 128 positions" generate "${m[@]}" \
  --prompt-ids "$(printf '3,%.0s' {1..128})3"
expect_error "--system without --chat" "--system --chat" generate "${m[@]}" --prompt-ids 1 --system hi
expect_error "text without a tokenizer" "--tokenizer" generate --model "$fx/tiny-llama" --prompt hi --device cpu
exit $fail
