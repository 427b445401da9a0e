#!/usr/bin/env python3
"""HF anchors for bench_decode, on the same GPU in the same call: ms per new
token of greedy `generate` at batch 1 and 8 after a prompt, for
  - hf:          transformers' default (dynamic) cache, eager;
  - hf-static:   static cache + torch.compile (the fastest pure-PyTorch path);
  - hf-bnb-nf4:  bitsandbytes 4-bit NF4 + double quant base (when bitsandbytes imports).
MODEL is an HF dir (bench/make_random_model.py writes one of random weights),
or random:SHAPE (a shape of make_random_model.py, e.g. random:llama-7b): the
random model made in GPU memory for each mode, with no file written or read
(13.5 GB at LLaMA-7B), and for hf-bnb-nf4 its Linears quantized in memory as
transformers' BitsAndBytesConfig loads a checkpoint. The prompt ids and the
token counts are bench_decode's (bench/decode.cu), so the rows compare.

    decode_hf.py MODEL OUT.json [--batch 1,8] [--prompt 128] [--new 64] [--modes hf,hf-static,hf-bnb-nf4]
"""
import argparse
import json
import os
import sys
import time

import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_random_model  # noqa: E402

BNB_NF4 = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
               bnb_4bit_compute_dtype=torch.bfloat16)


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


def quantize_nf4(model):
    """Every Linear but lm_head replaced by bitsandbytes' NF4 Linear4bit with
    double quant and BF16 compute: what from_pretrained(quantization_config=
    BitsAndBytesConfig(**BNB_NF4)) builds (it keeps lm_head in BF16 too)."""
    import bitsandbytes as bnb

    for parent in list(model.modules()):
        for name, lin in list(parent.named_children()):
            if type(lin) is not torch.nn.Linear or name == "lm_head":
                continue
            q = bnb.nn.Linear4bit(lin.in_features, lin.out_features, bias=lin.bias is not None,
                                  compute_dtype=torch.bfloat16, compress_statistics=True, quant_type="nf4",
                                  device="meta")
            # Params4bit quantizes when moved to a device (bitsandbytes' documented path).
            q.weight = bnb.nn.Params4bit(lin.weight.data, requires_grad=False, compress_statistics=True,
                                         quant_type="nf4", module=q).to(lin.weight.device)
            if lin.bias is not None:
                q.bias = lin.bias
            setattr(parent, name, q)
    torch.cuda.empty_cache()
    return model


def load(model_arg, mode):
    """The model for one mode: from its dir, or made at random in GPU memory."""
    if model_arg.startswith("random:"):
        model = make_random_model.random_model(model_arg[len("random:"):])
        if mode == "hf-bnb-nf4":
            model = quantize_nf4(model)
        return model.eval()
    kw = dict(torch_dtype=torch.bfloat16, device_map="cuda")
    if mode == "hf-bnb-nf4":
        kw["quantization_config"] = transformers.BitsAndBytesConfig(**BNB_NF4)
    return transformers.AutoModelForCausalLM.from_pretrained(model_arg, **kw).eval()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=64)
    # In the order given: put the slow-to-warm hf-static last under a time limit
    # (each row is written as it comes, so a cut run keeps the rows before).
    ap.add_argument("--modes", default="hf,hf-static,hf-bnb-nf4")
    a = ap.parse_args()
    rows = []
    for mode in a.modes.split(","):
        if mode == "hf-bnb-nf4":
            try:
                import bitsandbytes  # noqa: F401
            except Exception as e:  # noqa: BLE001
                print(f"{mode}: skipped ({e})")
                continue
        t_load = time.perf_counter()
        try:
            model = load(a.model, mode)
        except Exception as e:  # noqa: BLE001
            print(f"{mode}: could not build the model ({type(e).__name__}: {e})")
            continue
        print(f"{mode}: model ready in {time.perf_counter() - t_load:.1f} s", flush=True)
        gen_kw = {}
        if mode == "hf-static":  # generate compiles the forward itself when the cache is static
            model.generation_config.cache_implementation = "static"
        vocab = model.config.vocab_size
        for b in [int(x) for x in a.batch.split(",")]:
            ids = (torch.arange(b * a.prompt, device="cuda").view(b, a.prompt) * 7919) % vocab
            try:
                t_warm = time.perf_counter()
                if mode == "hf-static":  # compile warm-up with the timed call's shapes (a new length recompiles)
                    for _ in range(3):
                        timed_generate(model, ids, a.new, **gen_kw)
                else:  # eager: a short call warms cuBLAS and the allocator
                    timed_generate(model, ids, min(a.new, 8), **gen_kw)
                warm = time.perf_counter() - t_warm
                prefill, per_token = timed_generate(model, ids, a.new, **gen_kw)
            except Exception as e:  # noqa: BLE001
                print(f"{mode} batch {b}: failed ({type(e).__name__}: {e})")
                continue
            print(f"{mode:12s} batch {b}: prefill {prefill:8.2f} ms, {per_token:8.3f} ms/token "
                  f"(warm-up {warm:.1f} s)", flush=True)
            rows.append(dict(mode=mode, batch=b, prompt=a.prompt, new_tokens=a.new, prefill_ms=prefill,
                             ms_per_token=per_token, warmup_s=warm))
            write(a, rows)  # each row as it comes: a time limit keeps what was measured
        del model
        torch.cuda.empty_cache()
    write(a, rows)


def write(a, rows):
    model = a.model + (" (in memory, bench/make_random_model.py)" if a.model.startswith("random:") else "")
    json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
               "transformers": transformers.__version__, "model": model, "rows": rows}, open(a.out, "w"), indent=1)


if __name__ == "__main__":
    main()
