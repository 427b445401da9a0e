#!/usr/bin/env python3
"""HF anchors for bench_decode, on the same GPU in the same call: ms per new
token of greedy `generate` at batch 1 and 8 after a prompt, for
  - hf:          transformers' default (dynamic) cache, eager;
  - hf-static:   static cache + torch.compile (the fastest pure-PyTorch path);
  - hf-bnb-nf4:  bitsandbytes 4-bit NF4 + double quant base (when bitsandbytes imports).
The model is an HF dir of random weights (bench/make_random_model.py).

    decode_hf.py MODEL_DIR OUT.json [--batch 1,8] [--prompt 128] [--new 64] [--modes hf,hf-static,hf-bnb-nf4]
"""
import argparse
import json
import time

import torch
import transformers


class StepClock:
    """A generate streamer that notes when each new token is handed out: the
    first put() is the prompt, the second the first new token (end of prefill),
    later ones one decode step each. One generate call then gives both numbers,
    with the same shapes as its warm-up (a static cache recompiles for a new
    max_new_tokens, so timing two calls of different lengths measured compiles)."""

    def __init__(self):
        self.times = []

    def put(self, value):
        torch.cuda.synchronize()
        self.times.append(time.perf_counter())

    def end(self):
        pass


def timed_generate(model, ids, new, **kw):
    clock = StepClock()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, streamer=clock, **kw)
    torch.cuda.synchronize()
    t = clock.times
    prefill = (t[1] - t0) * 1e3
    return prefill, (t[-1] - t[1]) * 1e3 / (len(t) - 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--modes", default="hf,hf-static,hf-bnb-nf4")
    a = ap.parse_args()
    rows = []
    for mode in a.modes.split(","):
        kw = dict(torch_dtype=torch.bfloat16, device_map="cuda")
        if mode == "hf-bnb-nf4":
            try:
                import bitsandbytes  # noqa: F401
            except Exception as e:  # noqa: BLE001
                print(f"{mode}: skipped ({e})")
                continue
            kw["quantization_config"] = transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=torch.bfloat16)
        model = transformers.AutoModelForCausalLM.from_pretrained(a.model, **kw).eval()
        gen_kw = {}
        if mode == "hf-static":  # generate compiles the forward itself when the cache is static
            model.generation_config.cache_implementation = "static"
        vocab = model.config.vocab_size
        for b in [int(x) for x in a.batch.split(",")]:
            ids = (torch.arange(b * a.prompt, device="cuda").view(b, a.prompt) * 7919) % vocab
            try:
                for _ in range(3 if mode == "hf-static" else 1):  # compile warm-up, the timed call's shapes
                    timed_generate(model, ids, a.new, **gen_kw)
                prefill, per_token = timed_generate(model, ids, a.new, **gen_kw)
            except Exception as e:  # noqa: BLE001
                print(f"{mode} batch {b}: failed ({type(e).__name__}: {e})")
                continue
            print(f"{mode:12s} batch {b}: prefill {prefill:8.2f} ms, {per_token:8.3f} ms/token", flush=True)
            rows.append(dict(mode=mode, batch=b, prompt=a.prompt, new_tokens=a.new, prefill_ms=prefill,
                             ms_per_token=per_token))
            write(a.out, rows)  # each row as it comes: a time limit keeps what was measured
        del model
        torch.cuda.empty_cache()
    write(a.out, rows)


def write(path, rows):
    json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "transformers": transformers.__version__, "rows": rows}, open(path, "w"), indent=1)


if __name__ == "__main__":
    main()
