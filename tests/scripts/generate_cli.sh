#!/usr/bin/env bash
# qtrain generate end to end on the CPU: --ids greedy output equals HF generate
# (tests/fixtures/generate-ref.json) for both fixture models with and without the
# adapter, unmerged and --merge; quantized bases run; sampling repeats with its
# seed; text streams for GPT-2; --prompts batches equal HF and lone runs; bad
# flags and prompts exit 2 with a line naming the flag.
# Usage: generate_cli.sh QTRAIN_BINARY SOURCE_DIR
set -uo pipefail
qtrain=$1; src=$2; fx=$src/tests/fixtures
gpt2_tok=$src/../shared/data/gpt2-tokenizer
err=$(mktemp); tmp=$(mktemp -d); trap 'rm -f "$err"; rm -rf "$tmp"' EXIT
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

# --warmup: untimed runs first, then the timed one runs the whole prompt (nothing cached from
# the warmup) and samples exactly what a run without warmup does.
w=$("$qtrain" generate --model "$fx/tiny-llama" --prompt-ids 1,5,9 --max-new-tokens 16 --temperature 1 --top-p 0.9 \
  --top-k 50 --seed 1 --ids --ignore-eos --device cpu --warmup 2 2>"$tmp/warm.err" | ids_of)
if [[ $w != "$a" ]]; then
  echo "FAIL --warmup 2 changed the sampled tokens: [$w], without it [$a]"; fail=1
elif ! grep -q '^\[generate\] warmup: 2 untimed runs' "$tmp/warm.err" || ! grep -q 'prompt 3 tokens (3 run)' "$tmp/warm.err"; then
  cat "$tmp/warm.err"; echo "FAIL --warmup: no warmup line, or the timed run did not prefill the whole prompt"; fail=1
else
  echo "ok   --warmup 2: same tokens, the timed run prefills all 3 prompt tokens"
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

# --prompts: every prompt of a JSONL file, --batch-size at a time in one KV cache; each
# row equals HF (the fixture's prompts of 5 and 9 tokens mixed in one batch), in file
# order, with batch sizes 1, 2 and 3 alike, and the tokens/s line on stderr.
while read -r model adapter; do
  sel=$(awk -v m="$model" -v a="$adapter" '$1 == m && $2 == a' <<<"$cases")
  awk '{print "{\"prompt_ids\": [" $4 "], \"note\": \"an ignored field\"}"}' <<<"$sel" >"$tmp/p.jsonl"
  awk '{print "{\"prompt_ids\": [" $4 "]}"}' <<<"$sel" | tac >>"$tmp/p.jsonl"   # 4 rows: a, b, b, a
  want=$( (cut -d' ' -f5 <<<"$sel"; cut -d' ' -f5 <<<"$sel" | tac) | tr '\n' ' ')
  max_new=$(head -n1 <<<"$sel" | cut -d' ' -f3)
  for bs in 1 2 3; do
    args=(generate --model "$fx/$model" --prompts "$tmp/p.jsonl" --batch-size $bs --max-new-tokens "$max_new"
          --temperature 0 --ids --device cpu)
    [[ $adapter != - ]] && args+=(--adapter "$fx/$adapter")
    got=$("$qtrain" "${args[@]}" 2>"$err" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert [r["index"] for r in rows] == list(range(len(rows))), "not in file order"
print(" ".join(",".join(map(str, r["ids"])) for r in rows))' 2>&1)
    if [[ $got != "${want% }" ]]; then
      echo "FAIL --prompts $model adapter=$adapter --batch-size $bs: got [$got] want [${want% }]"
      sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
    elif ! grep -q '^\[generate\] 4 prompts in .* tokens/s' "$err"; then
      echo "FAIL --prompts: no tokens/s line on stderr"; sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
    else
      echo "ok   --prompts $model adapter=$adapter --batch-size $bs: 4 rows (prompts of mixed length) equal HF"
    fi
  done
done < <(awk '{print $1, $2}' <<<"$cases" | sort -u)

# --prompts with text: each completion equals the text a lone --prompt run prints.
if [[ -d $gpt2_tok ]]; then
  printf '%s\n' '{"prompt": "Hello, world"}' '{"prompt": "def fib(n):\n    return"}' >"$tmp/t.jsonl"
  t=(--model "$fx/tiny-gpt2" --tokenizer "$gpt2_tok" --max-new-tokens 12 --temperature 0 --device cpu)
  got=$("$qtrain" generate "${t[@]}" --prompts "$tmp/t.jsonl" 2>"$err" |
        python3 -c 'import json,sys; [print(json.dumps(json.loads(l)["completion"])) for l in sys.stdin]')
  want=$(for p in "Hello, world" $'def fib(n):\n    return'; do
    "$qtrain" generate "${t[@]}" --prompt "$p" 2>/dev/null | python3 -c 'import json,sys; print(json.dumps(sys.stdin.read()[:-1]))'
  done)
  if [[ -z $got || $got != "$want" ]]; then
    echo "FAIL --prompts text: got [$got] want [$want]"; sed 's/^/  stderr: /' "$err" | tail -n3; fail=1
  else
    echo "ok   --prompts text: completions equal lone --prompt runs"
  fi
else
  echo "skip --prompts text: no $gpt2_tok"
fi

m=(--model "$fx/tiny-llama" --ids --device cpu)
printf '%s\n' '{"prompt_ids": [1, 2]}' '{"prompt_ids": [1, 300]}' >"$tmp/bad.jsonl"
expect_error "--prompts id outside the vocabulary" "bad.jsonl:2 prompt_ids 300" generate "${m[@]}" --prompts "$tmp/bad.jsonl"
printf '%s\n' '{"prompt": "hi"}' >"$tmp/text.jsonl"
expect_error "--prompts text without a tokenizer" "text.jsonl:1 --tokenizer" generate "${m[@]}" --prompts "$tmp/text.jsonl"
# --seed is unsigned: -1 was taken as 2^64 - 1 without a word.
expect_error "--seed -1" "--seed -1" generate "${m[@]}" --prompt-ids 1,2 --max-new-tokens 2 --seed -1
expect_error "--warmup -1" "--warmup" generate "${m[@]}" --prompt-ids 1,2 --warmup -1
expect_error "--warmup with --prompts" "--warmup --prompts" generate "${m[@]}" --prompts "$tmp/p.jsonl" --warmup 1
expect_error "--prompts missing file" "nope.jsonl" generate "${m[@]}" --prompts "$tmp/nope.jsonl"
expect_error "--batch-size 0" "--batch-size" generate "${m[@]}" --prompts "$tmp/p.jsonl" --batch-size 0
expect_error "--batch-size without --prompts" "--batch-size --prompts" generate "${m[@]}" --prompt-ids 1 --batch-size 2
expect_error "--prompts with --prompt-ids" "--prompts --prompt-ids" generate "${m[@]}" --prompt-ids 1 --prompts "$tmp/p.jsonl"
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
expect_error "--prompts a directory" "$tmp: directory" generate "${m[@]}" --prompts "$tmp"
if [[ -d $gpt2_tok ]]; then  # GPT-2's 50257 tokens on a model of 300: the prompt's ids do not fit
  expect_error "tokenizer larger than the model" "--prompt --tokenizer 300" generate --model "$fx/tiny-llama" \
    --tokenizer "$gpt2_tok" --prompt "hello world" --device cpu
  printf '%s\n' '{"prompt": "hello world"}' >"$tmp/words.jsonl"
  expect_error "--prompts tokenizer larger than the model" "words.jsonl:1 --tokenizer 300" generate --model "$fx/tiny-llama" \
    --tokenizer "$gpt2_tok" --prompts "$tmp/words.jsonl" --device cpu
fi
exit $fail
