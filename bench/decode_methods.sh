#!/usr/bin/env bash
# Decode latency per base format through `qtrain generate` (the path users run):
# a 128-token prompt then 64 new tokens at batch 1 with the KV cache, greedy, best
# of 2 runs, on a random-weight model of a named shape. Prints a table and writes
# OUT/decode_methods_<shape>.json.
#   bash bench/decode_methods.sh QTRAIN OUT [SHAPE] [METHODS...]
# METHODS default: lora (BF16) qlora lowra:4 lowra:2 hqq-lora (method:lowra-bits); DEVICE=cpu for the CPU
set -u
Q=$1; OUT=$2; SHAPE=${3:-smollm2-135m}; shift $(( $# < 3 ? $# : 3 ))
METHODS=("$@"); [ ${#METHODS[@]} = 0 ] && METHODS=(lora qlora lowra:4 lowra:2 hqq-lora)
mkdir -p "$OUT"
prompt=$(python3 -c "print(','.join(str(1 + (i * 37) % 400) for i in range(128)))")
json="$OUT/decode_methods_$SHAPE.json"; echo "[" > "$json"; first=1
printf '%-10s %12s %16s %12s\n' method prefill_ms decode_ms/token latency_ms
for spec in "${METHODS[@]}"; do
  m=${spec%%:*}; extra=(); [[ $spec == *:* ]] && extra=(--lowra-bits "${spec#*:}" --loftq-iters 0)
  best=""
  for rep in 1 2; do  # the first run also pays cuBLAS plans and the weights' upload
    line=$("$Q" generate --model "random:$SHAPE" --method "$m" "${extra[@]}" --prompt-ids "$prompt" --max-new-tokens 64 \
      --ignore-eos --temperature 0 --ids --device "${DEVICE:-cuda}" 2>&1 >/dev/null | grep -o 'prefill [0-9.]* ms.*decode [0-9.]* ms/token' | tail -1)
    [ -z "$line" ] && continue
    p=$(sed 's/prefill \([0-9.]*\) ms.*/\1/' <<<"$line"); d=$(sed 's/.*decode \([0-9.]*\) ms\/token/\1/' <<<"$line")
    l=$(python3 -c "print(round($p + 64 * $d, 2))")
    if [ -z "$best" ] || python3 -c "import sys; sys.exit(not $l < ${best##* })"; then best="$p $d $l"; fi
  done
  [ -z "$best" ] && { echo "$spec: no timing line"; continue; }
  read -r p d l <<<"$best"
  printf '%-10s %12s %16s %12s\n' "$spec" "$p" "$d" "$l"
  [ $first = 1 ] || echo "," >> "$json"; first=0
  echo "{\"method\": \"$spec\", \"shape\": \"$SHAPE\", \"prefill_ms\": $p, \"decode_ms_per_token\": $d, \"latency_ms\": $l}" >> "$json"
done
echo "]" >> "$json"
