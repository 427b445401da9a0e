"""Anchor timings for bench_kernels: the same shapes through PyTorch on the GPU
(bf16, SDPA flash attention, fused AdamW). Writes {config: ms} as JSON.
Run on the GPU machine: python3 bench/kernels_torch.py out.json"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def timed(fn, iters=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / iters * 1e3


def main(path):
    dev, bf = "cuda", torch.bfloat16
    r = {}
    # gemm: GPT-2-medium MLP up-projection, 8192 tokens
    a = torch.randn(8192, 1024, device=dev, dtype=bf)
    b = torch.randn(1024, 4096, device=dev, dtype=bf)
    r["gemm bf16 8192x4096x1024"] = timed(lambda: a @ b)

    x = torch.randn(8192, 1024, device=dev, dtype=bf, requires_grad=True)
    w = torch.randn(1024, device=dev, dtype=torch.float32, requires_grad=True)
    bias = torch.zeros(1024, device=dev, dtype=torch.float32, requires_grad=True)
    g = torch.randn(8192, 1024, device=dev, dtype=bf)

    def ln():
        y = F.layer_norm(x.float(), (1024,), w, bias).to(bf)
        y.backward(g)
    r["layernorm fwd+bwd 8192x1024"] = timed(ln)

    xr = torch.randn(16384, 576, device=dev, dtype=bf, requires_grad=True)
    wr = torch.ones(576, device=dev, dtype=bf)
    gr = torch.randn(16384, 576, device=dev, dtype=bf)

    def rms():
        h = xr.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-5)
        (wr * h.to(bf)).backward(gr)
    r["rmsnorm fwd+bwd 16384x576"] = timed(rms)

    gate = torch.randn(16384, 1536, device=dev, dtype=bf, requires_grad=True)
    up = torch.randn(16384, 1536, device=dev, dtype=bf, requires_grad=True)
    gs = torch.randn(16384, 1536, device=dev, dtype=bf)
    r["swiglu fwd+bwd 16384x1536"] = timed(lambda: (F.silu(gate) * up).backward(gs))

    for name, (B, T, Hq, Hkv, D) in {"gpt2-medium": (8, 1024, 16, 16, 64), "smollm2-135m": (16, 1024, 9, 3, 64),
                                      "llama-7b": (4, 2048, 32, 32, 128)}.items():
        q = torch.randn(B, Hq, T, D, device=dev, dtype=bf, requires_grad=True)
        k = torch.randn(B, Hkv, T, D, device=dev, dtype=bf, requires_grad=True)
        v = torch.randn(B, Hkv, T, D, device=dev, dtype=bf, requires_grad=True)
        do = torch.randn(B, Hq, T, D, device=dev, dtype=bf)
        gqa = Hq != Hkv
        with torch.no_grad():
            r[f"attention fwd {name}"] = timed(
                lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa))
        r[f"attention fwd+bwd {name}"] = timed(
            lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa).backward(do))

    xh = torch.randn(8192, 1024, device=dev, dtype=bf, requires_grad=True)
    wh = torch.randn(50257, 1024, device=dev, dtype=bf) * 0.02
    tg = torch.randint(0, 50257, (8192,), device=dev)

    def ce():
        logits = xh @ wh.t()
        F.cross_entropy(logits.float(), tg).backward()
    r["lm_head+CE fwd+bwd 8192x1024 V=50257"] = timed(ce, iters=10)

    p = torch.nn.Parameter(torch.randn(16 * 1024 * 1024, device=dev))
    p.grad = torch.randn_like(p)
    opt = torch.optim.AdamW([p], lr=1e-3, weight_decay=0.1, fused=True)
    r["adamw 16M params"] = timed(opt.step)
    r["_device"] = torch.cuda.get_device_name()
    r["_torch"] = torch.__version__
    json.dump(r, open(path, "w"), indent=1)
    for k_, v_ in r.items():
        print(f"{k_:45s} {v_}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "kernels_torch.json")
