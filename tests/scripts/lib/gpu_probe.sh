# Sourced by the scripts that need a GPU (exit 77 is CTest's "skipped").
# Needs $qtrain and, for gpu_probe, $tmp.

# require_gpu: skip where nvidia-smi lists no GPU.
require_gpu() { nvidia-smi -L >/dev/null 2>&1 || { echo "skipped: no GPU"; exit 77; }; }

# gpu_probe ARGS...: one step of SmolLM2's shape with the script's data and device flags (ARGS), so that
# a build without CUDA or an unusable GPU skips here and any other failure stops the script at once.
gpu_probe() {
  if ! "$qtrain" train --model random:smollm2-135m "$@" --seq-len 64 --batch-size 1 --steps 1 --out "$tmp/probe" \
      > "$tmp/log" 2>&1; then
    grep -q "without CUDA\|no usable GPU" "$tmp/log" && { echo "skipped: $(tail -1 "$tmp/log")"; exit 77; }
    echo "FAIL a one-step GPU run failed:"; tail -5 "$tmp/log"; exit 1
  fi
}
