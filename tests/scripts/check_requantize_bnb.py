"""qtrain's --requantize nf4 output vs bitsandbytes (CPU): the model loads with
from_pretrained, every 4-bit weight dequantizes (bnb's dequantize_4bit) to what bnb's own
quantize_4bit of the merged F32 weight dequantizes to, and the logits match.
  check_requantize_bnb.py NF4_DIR F32_MERGED_DIR"""
import sys

import bitsandbytes.functional as F
import torch
import transformers
from safetensors.torch import load_file

nf4_dir, f32_dir = sys.argv[1], sys.argv[2]
m = transformers.AutoModelForCausalLM.from_pretrained(nf4_dir, device_map={"": "cpu"})
ref = load_file(f32_dir + "/model.safetensors")
n4 = 0
worst = 0.0
for name, mod in m.named_modules():
    w = getattr(mod, "weight", None)
    if w is None or not hasattr(w, "quant_state") or w.quant_state is None:
        continue
    ours = F.dequantize_4bit(w.data, w.quant_state).float()
    q, st = F.quantize_4bit(ref[name + ".weight"].float(), quant_type="nf4", compress_statistics=True, blocksize=64)
    # the quant state says bfloat16 (as bnb writes it for a bf16 model): dequantized values are rounded to it
    theirs = F.dequantize_4bit(q, st).to(w.quant_state.dtype).float()
    # Same 4-bit codes. The 8-bit absmax codes may differ where bnb's approximate native
    # search picks the other neighbour next to a midpoint (kernels/quant/dynamic_map.h),
    # which moves that block's scale by one map step.
    assert (q.view(-1) == w.data.view(-1)).float().mean().item() > 0.999, name + ": packed codes differ from bnb's"
    same_absmax = (st.state2 is not None and w.quant_state.absmax.shape == st.absmax.shape and
                   (w.quant_state.absmax == st.absmax).float().mean().item())
    assert same_absmax >= 0.98, f"{name}: only {same_absmax} of the 8-bit absmax codes are bnb's"
    # the offset (a float mean) may differ in the last bit: every value then moves by ~1e-7 relative
    differs = ((ours - theirs).abs() > 1e-5 * theirs.abs() + 1e-12).float().mean().item()
    worst = max(worst, differs)
    n4 += 1
assert n4 > 0, "no 4-bit weights were loaded"
assert worst < 0.03, f"{worst:.3f} of the dequantized weights differ from bnb's"
# bnb 0.50's CPU forward reshapes absmax per row and fails when a row is not a whole number of
# 64-blocks (tiny-llama's down_proj has 160 columns): compare logits only where it can run.
rows_whole = all(mod.weight.quant_state.shape[1] % 64 == 0 for _, mod in m.named_modules()
                 if getattr(getattr(mod, "weight", None), "quant_state", None) is not None)
msg = f"ok: {n4} 4-bit weights are bnb's quantization (at most {100 * worst:.2f}% of values in blocks whose 8-bit absmax code differs)"
if rows_whole:
    ids = torch.arange(1, 33).view(1, -1) % m.config.vocab_size
    dense = transformers.AutoModelForCausalLM.from_pretrained(f32_dir, torch_dtype=torch.float32)
    with torch.no_grad():
        a = m(input_ids=ids).logits.float()
        b = dense(input_ids=ids).logits.float()
    rel = ((a - b).norm() / b.norm()).item()
    assert 0 < rel < 0.2, f"4-bit logits vs merged F32 logits: rel diff {rel}"
    msg += f"; logits vs the F32 merge: rel {rel:.3f}"
else:
    msg += "; logits not compared (bnb's CPU forward needs rows of whole 64-blocks)"
print(msg)
