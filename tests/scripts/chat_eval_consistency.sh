#!/usr/bin/env bash
# `qtrain eval` and `train --eval-data` build their data streams in one place
# (trainer/setup.h), so on chat data both render the model's own chat template
# and give the same loss. (They once differed: eval used the built-in ChatML.)
# Usage: chat_eval_consistency.sh QTRAIN_BINARY SOURCE_DIR
set -euo pipefail
qtrain=$1; fx=$2/tests/fixtures
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# The tiny GPT-2 fixture (real GPT-2 tokenizer) with a chat template that is not ChatML.
model=$tmp/model; mkdir -p "$model"
cp "$fx/tiny-gpt2/config.json" "$fx/tiny-gpt2/model.safetensors" "$model/"
ln -s "$(cd "$2/../shared/data/gpt2-tokenizer" && pwd)"/{encoder.json,vocab.bpe} "$model/"
cat >"$model/tokenizer_config.json" <<'JSON'
{"chat_template": "{% for m in messages %}### {{ m['role'] }}:\n{{ m['content'] }}\n\n{% endfor %}"}
JSON
for i in 1 2 3 4 5 6; do
  echo '{"messages": [{"role": "user", "content": "hello abc '$i'"}, {"role": "assistant", "content": "hell how bad '$i'"}]}'
done >"$tmp/chat.jsonl"
"$qtrain" train --model "$model" --data "$tmp/chat.jsonl" --eval-data "$tmp/chat.jsonl" --steps 1 --lr 1e-20 \
  --seq-len 32 --batch-size 2 --device cpu --out "$tmp/run" >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; exit 1; }
train_loss=$(grep '"eval_loss"' "$tmp/run/metrics.jsonl" | tail -n1 | sed 's/.*"eval_loss":\([-+0-9.eE]*\).*/\1/')
line=$("$qtrain" eval --model "$model" --adapter "$tmp/run/adapter" --data "$tmp/chat.jsonl" --seq-len 32 \
  --batch-size 2 --device cpu 2>"$tmp/eval.log" | grep '^{' | tail -n1)
eval_loss=$(sed 's/.*"loss":\([-+0-9.eE]*\).*/\1/' <<<"$line")
echo "train --eval-data: $train_loss   eval: $eval_loss"
awk -v a="$train_loss" -v b="$eval_loss" 'BEGIN { if (a == "" || b == "") exit 1; d = (a - b) / b; if (d < 0) d = -d; exit !(d < 1e-5) }'
