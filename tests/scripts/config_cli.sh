#!/usr/bin/env bash
# --config FILE.json: keys with '-' or '_', arrays and booleans become flags; the
# command line overrides the file; unknown keys are a clear error (exit 2).
set -u
qtrain=$1; src=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
F=$src/tests/fixtures
cat > "$tmp/cfg.json" <<JSON
{"model": "$F/tiny-llama", "data": "$F/tiny-llama-eval.jsonl", "format": "input_ids",
 "seq_len": 16, "batch_size": 1, "steps": 2, "lr": 0.01, "target": ["q_proj", "v_proj"],
 "lora-r": 2, "grad_checkpoint": true, "out": "$tmp/a", "log_every": 1}
JSON
"$qtrain" train --config "$tmp/cfg.json" --steps 3 > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: train with --config"; exit 1; }
n=$(grep -c '"step"' "$tmp/a/metrics.jsonl")
[[ $n == 3 ]] || { echo "FAIL: --steps 3 on the command line should override steps 2 in the file (got $n lines)"; exit 1; }
grep -q '"r": 2' "$tmp/a/adapter/adapter_config.json" || { echo "FAIL: lora-r from the file not applied"; exit 1; }
grep -q 'q_proj' "$tmp/a/adapter/adapter_config.json" && ! grep -q 'k_proj' "$tmp/a/adapter/adapter_config.json" \
  || { echo "FAIL: target list from the file not applied"; exit 1; }
# run.json logs the parameter counts the run printed (tiny-llama, r 2 on q_proj and v_proj)
printed=$(grep -o 'trainable params: [0-9]*' "$tmp/log" | grep -o '[0-9]*$')
[[ -n $printed && $printed != 0 ]] && grep -q "\"trainable_params\": $printed," "$tmp/a/run.json" \
  || { echo "FAIL: run.json should log trainable_params $printed"; cat "$tmp/a/run.json"; exit 1; }
echo '{"model": "x", "no_such_flag": 3}' > "$tmp/bad.json"
"$qtrain" train --config "$tmp/bad.json" --data x > "$tmp/err" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "bad.json: unknown option 'no_such_flag'" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: unknown key (rc $rc)"; exit 1; }
"$qtrain" train --config "$tmp/missing.json" > "$tmp/err" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "missing.json: cannot open" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: missing config (rc $rc)"; exit 1; }
mkdir -p "$tmp/cfg-dir"
"$qtrain" generate --config "$tmp/cfg-dir" > "$tmp/err" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "cfg-dir: is a directory" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: a directory as --config (rc $rc)"; exit 1; }
# A value of the wrong type names the file and the key (issue 21); so does a value CLI11 cannot
# convert or a range check refuses (they named only the flag, as if from the command line).
# Each case: the key=value line, then the text the error must hold after "bad.json: key 'KEY'".
while IFS='|' read -r kv expect; do
  key=$(sed 's/"\([a-z_]*\)".*/\1/' <<<"$kv")
  echo "{\"model\": \"x\", \"data\": \"y\", $kv}" > "$tmp/bad.json"
  "$qtrain" train --config "$tmp/bad.json" </dev/null > "$tmp/err" 2>&1; rc=$?
  [[ $rc == 2 ]] && grep -q "bad.json: key '$key'$expect" "$tmp/err" \
    || { cat "$tmp/err"; echo "FAIL: $kv (rc $rc) should name bad.json and '$key'$expect"; exit 1; }
done <<'CASES'
"lora_r": "sixteen"| must be
"steps": 1.7| must be
"rslora": "yes"| must be
"lr": "fast"| must be
"target": 3| must be
"seq_len": 1e10|
"lora_r": -3|
CASES
# The same flag from the command line is not blamed on the file.
echo '{"model": "x", "data": "y", "seq_len": 16}' > "$tmp/ok.json"
"$qtrain" train --config "$tmp/ok.json" --lora-r -3 > "$tmp/err" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q -- "--lora-r" "$tmp/err" && ! grep -q "ok.json" "$tmp/err" \
  || { cat "$tmp/err"; echo "FAIL: a command-line --lora-r -3 (rc $rc) should not name ok.json"; exit 1; }
# Whole numbers written as floats are fine for integer options.
echo "{\"steps\": 2.0, \"lora_r\": 4e0}" > "$tmp/whole.json"
"$qtrain" train --config "$tmp/whole.json" --help > /dev/null 2>&1 || { echo "FAIL: steps 2.0 refused"; exit 1; }
# The config a run records in run.json replays as a --config file (every key a flag, booleans
# of valued options such as bitnet_subln included), e.g. a recipe's phases.
python3 -c "import json, sys; c = json.load(open(sys.argv[1]))['config']; c['out'] = sys.argv[2]; json.dump(c, open(sys.argv[3], 'w'))" \
  "$tmp/a/run.json" "$tmp/replay" "$tmp/replay.json"
"$qtrain" train --config "$tmp/replay.json" > "$tmp/err" 2>&1 && [ -f "$tmp/replay/adapter/adapter_config.json" ] \
  || { cat "$tmp/err"; echo "FAIL: run.json's config does not replay with --config"; exit 1; }
# Relative paths in a config file are relative to the file's folder, not the working directory.
mkdir -p "$tmp/cfgdir/fx"
cp -r "$F/tiny-llama" "$tmp/cfgdir/fx/"; cp "$F/tiny-llama-eval.jsonl" "$tmp/cfgdir/fx/"
cat > "$tmp/cfgdir/rel.json" <<JSON
{"model": "fx/tiny-llama", "data": "./fx/tiny-llama-eval.jsonl", "format": "input_ids", "seq_len": 16,
 "batch_size": 1, "steps": 1, "out": "run", "device": "cpu"}
JSON
(cd / && "$qtrain" train --config "$tmp/cfgdir/rel.json") > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: relative paths in a config"; exit 1; }
[[ -f $tmp/cfgdir/run/adapter/adapter_model.safetensors ]] || { echo "FAIL: out not beside the config file"; exit 1; }
# peft-style pattern objects: entries in file order (the first matching key wins), as the flag's KEY=VALUE items.
cat > "$tmp/pat.json" <<JSON
{"model": "$F/tiny-llama", "data": "$F/tiny-llama-eval.jsonl", "format": "input_ids", "seq_len": 16,
 "batch_size": 1, "steps": 1, "device": "cpu", "out": "$tmp/pat", "lora_r": 4,
 "lora_rank_pattern": {"layers.1.mlp.down_proj": 2, "down_proj": 6}, "lora_alpha_pattern": ["v_proj=3"]}
JSON
"$qtrain" train --config "$tmp/pat.json" > "$tmp/log" 2>&1 || { cat "$tmp/log"; echo "FAIL: pattern objects in a config"; exit 1; }
tr -d ' \n' < "$tmp/pat/adapter/adapter_config.json" > "$tmp/pat.flat"
grep -q '"rank_pattern":{"model.layers.0.mlp.down_proj":6,"model.layers.1.mlp.down_proj":2}' "$tmp/pat.flat" &&
  grep -q '"model.layers.1.self_attn.v_proj":3.0' "$tmp/pat.flat" \
  || { cat "$tmp/pat/adapter/adapter_config.json"; echo "FAIL: lora_rank_pattern / lora_alpha_pattern from the file"; exit 1; }
echo '{"lora_rank_pattern": {"down_proj": "six"}}' > "$tmp/badpat.json"
"$qtrain" train --config "$tmp/badpat.json" --model x --data y > "$tmp/err" 2>&1; rc=$?
[[ $rc == 2 ]] && grep -q "down_proj=six': the rank must be a whole number" "$tmp/err" || { cat "$tmp/err"; echo "FAIL: bad pattern value (rc $rc)"; exit 1; }
echo "config_cli: ok"
