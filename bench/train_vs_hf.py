#!/usr/bin/env python3
"""qtrain train --device cuda against HF transformers + peft (bf16, sdpa) on the
same random-init model and the same synthetic tokens: median tok/s after warmup
and peak GPU memory.

Peak memory for both sides is the device's memory.used polled with nvidia-smi
every 50 ms (includes the CUDA context, ~0.5 GiB), so the two columns compare
like with like; the anchor's torch.cuda.max_memory_allocated is kept in the row too.

    train_vs_hf.py --qtrain build-cuda/qtrain --models DIR [--rows gpt2m-lora,gpt2m-full,smol-lora] \
        [--steps 30] [--warmup 10] [--out bench/results]
Model dirs are made with bench/make_random_model.py under --models (created if absent).
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

ROWS = {
    "gpt2m-lora": dict(shape="gpt2-medium", method="lora", batch=8, seq=1024, ckpt=False),
    "gpt2m-full": dict(shape="gpt2-medium", method="full", batch=8, seq=1024, ckpt=False),
    "smol-lora": dict(shape="smollm2-135m", method="lora", batch=16, seq=1024, ckpt=False),
    # QLoRA (NF4 + DQ base): against HF+peft bf16 LoRA, and against HF+peft+bitsandbytes QLoRA
    # (the wheel is carried to the GPU machine: bench/device_run.sh --pack).
    "smol-qlora": dict(shape="smollm2-135m", method="qlora", batch=16, seq=1024, ckpt=False, anchor_method="lora"),
    "smol-qlora-gc": dict(shape="smollm2-135m", method="qlora", batch=16, seq=1024, ckpt=True, anchor_method="qlora"),
    "llama7b-lora": dict(shape="llama-7b", method="lora", batch=4, seq=2048, ckpt=True),
    "llama7b-qlora": dict(shape="llama-7b", method="qlora", batch=4, seq=2048, ckpt=True, anchor_method="qlora"),
    "llama7b-qlora-b1": dict(shape="llama-7b", method="qlora", batch=1, seq=2048, ckpt=True, anchor_method="qlora"),
    # The PEFT family (issue: PEFT family): DoRA and IA3 on the QLoRA base against peft's on bitsandbytes'.
    # r 64 on LLaMA-7B as in the thesis; IA3 on peft's default modules (k, v, down).
    "smol-qdora": dict(shape="smollm2-135m", method="qlora", adapter="dora", batch=16, seq=1024, ckpt=False,
                       anchor_method="qlora"),
    "smol-qia3": dict(shape="smollm2-135m", method="qlora", adapter="ia3", batch=16, seq=1024, ckpt=False,
                      anchor_method="qlora"),
    "llama7b-qlora-r64": dict(shape="llama-7b", method="qlora", r=64, batch=4, seq=2048, ckpt=True, anchor_method="qlora"),
    "llama7b-qdora-r64": dict(shape="llama-7b", method="qlora", adapter="dora", r=64, batch=4, seq=2048, ckpt=True,
                              anchor_method="qlora"),
    "llama7b-qia3": dict(shape="llama-7b", method="qlora", adapter="ia3", batch=4, seq=2048, ckpt=True,
                         anchor_method="qlora"),
}


ANCHOR_NAMES = {"lora": " (anchor: HF+peft bf16 LoRA)", "qlora": " (anchor: HF+peft+bitsandbytes QLoRA)"}


class GpuMemPoller:
    """Peak nvidia-smi memory.used (GiB) of GPU `index` while active."""

    def __init__(self, index=0, period=0.05):
        self.index, self.period, self.peak, self._stop = index, period, 0.0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-i", str(self.index)], capture_output=True, text=True, timeout=5).stdout
                self.peak = max(self.peak, float(out.strip().splitlines()[0]) / 1024.0)
            except Exception:
                pass
            time.sleep(self.period)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join()


def write_shard(path, ntok, vocab, seed=0):
    """llm.c format: 256 x int32 header (magic 20240520, version 1, ntok), uint16 tokens."""
    rng = np.random.default_rng(seed)
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, ntok]
    toks = rng.integers(0, min(vocab, 65535), size=ntok, dtype=np.uint16)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(toks.tobytes())


def ensure_model(models_dir, shape):
    d = os.path.join(models_dir, shape)
    if not os.path.exists(os.path.join(d, "config.json")):
        subprocess.run([sys.executable, os.path.join(HERE, "make_random_model.py"), d, "--shape", shape], check=True)
    return d


def run_qtrain(qtrain, model_dir, shard, row, steps, warmup, out_dir, log):
    cmd = [qtrain, "train", "--model", model_dir, "--data", shard, "--format", "bin", "--device", "cuda",
           "--method", row["method"], "--batch-size", str(row["batch"]), "--seq-len", str(row["seq"]),
           "--steps", str(steps), "--lr", "1e-4", "--out", out_dir, "--overwrite", "--log-every", "1", "--save-every", "0"]
    if row["method"] != "full":
        r = row.get("r", 16)
        cmd += ["--lora-r", str(r), "--lora-alpha", str(2 * r), "--adapter-type", row.get("adapter", "lora")]
        if row.get("adapter") != "ia3":  # IA3 keeps peft's default modules, as the anchor does
            cmd += ["--target", "all-linear"]
    if row["ckpt"]:
        cmd.append("--grad-checkpoint")
    with GpuMemPoller() as mem, open(log, "w") as lf:
        rc = subprocess.run(cmd, stdout=lf, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"qtrain exited {rc}; see {log}")
    lines = [json.loads(l) for l in open(os.path.join(out_dir, "metrics.jsonl")) if l.strip()]
    tps = [l["tokens_per_s"] for l in lines if "tokens_per_s" in l and l.get("step", 0) > warmup]
    # nvidia-smi sees every process on the GPU: after an HF row, this Python process still
    # holds its CUDA context and cache. qtrain's own allocator peak is kept beside it.
    run_qtrain.alloc_peak = max((l.get("gpu_peak_gib", 0) for l in lines), default=None)
    return statistics.median(tps), mem.peak


def run_hf(model_dir, row, steps, warmup, vocab, liger=False):
    import torch
    import transformers

    if liger:  # Liger's Triton kernels: RoPE, RMSNorm, SwiGLU, fused linear + cross-entropy (patches transformers)
        from liger_kernel.transformers import apply_liger_kernel_to_llama
        apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                    fused_linear_cross_entropy=True)
    torch.manual_seed(0)
    anchor = row.get("anchor_method", row["method"])
    if anchor == "qlora":  # the QLoRA recipe: NF4 + double quant, bf16 compute, kbit preparation
        import peft
        bnb = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                              bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16,
                                                                  quantization_config=bnb, device_map={"": 0},
                                                                  attn_implementation="sdpa")
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=row["ckpt"])
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.bfloat16,
                                                                  attn_implementation="sdpa").cuda()
    if anchor in ("lora", "qlora"):
        import peft
        r = row.get("r", 16)
        if row.get("adapter") == "ia3":
            cfg = peft.IA3Config(task_type="CAUSAL_LM")
        else:
            cfg = peft.LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", lora_dropout=0.0,
                                  use_dora=row.get("adapter") == "dora", task_type="CAUSAL_LM")
        model = peft.get_peft_model(model, cfg)
    if row["ckpt"]:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
        # from_pretrained returns eval mode, in which transformers skips gradient
        # checkpointing altogether: without this the "ckpt" anchor rows ran without it.
        # (Only here: GPT-2's configs carry dropout 0.1, which eval mode keeps off, as qtrain has none.)
        model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
    B, T = row["batch"], row["seq"]
    gen = torch.Generator(device="cuda").manual_seed(0)
    tps = []
    torch.cuda.reset_peak_memory_stats()
    with GpuMemPoller() as mem:
        for step in range(steps):
            ids = torch.randint(0, min(vocab, 65535), (B, T), device="cuda", generator=gen)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            loss = model(input_ids=ids, labels=ids).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            torch.cuda.synchronize()
            if step >= warmup:
                tps.append(B * T / (time.perf_counter() - t0))
    alloc = torch.cuda.max_memory_allocated() / 2**30
    del model, opt
    torch.cuda.empty_cache()
    return statistics.median(tps), mem.peak, alloc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qtrain", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--rows", default="gpt2m-lora,gpt2m-full,smol-lora")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--work", default="/tmp/train_vs_hf")
    ap.add_argument("--skip-anchor", action="store_true")
    ap.add_argument("--liger", action="store_true",
                    help="also run HF+peft with Liger kernels on LLaMA-family rows (in a fresh process: Liger "
                         "patches transformers globally)")
    args = ap.parse_args()

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    try:
        device = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                                capture_output=True, text=True).stdout.strip().replace(" ", "-") or "unknown"
    except FileNotFoundError:
        device = "unknown"
    date = datetime.date.today().isoformat()
    rows = []
    for name in args.rows.split(","):
        row = ROWS[name]
        model_dir = ensure_model(args.models, row["shape"])
        vocab = json.load(open(os.path.join(model_dir, "config.json")))["vocab_size"]
        shard = os.path.join(args.work, f"{name}.bin")
        write_shard(shard, 2 * (args.steps + 2) * row["batch"] * (row["seq"] + 1), vocab)
        adapter = row.get("adapter", "lora")
        rank = "" if row["method"] == "full" or adapter == "ia3" else f' r{row.get("r", 16)}'
        config = f'{row["shape"]} {row["method"]}{"+" + adapter if adapter != "lora" else ""}{rank} ' \
                 f'bs {row["batch"]}x{row["seq"]}{" ckpt" if row["ckpt"] else ""}' \
                 f'{ANCHOR_NAMES[row["anchor_method"]] if "anchor_method" in row else ""}'
        q_tps = q_mem = a_tps = a_mem = a_alloc = None
        err = None
        try:
            q_tps, q_mem = run_qtrain(args.qtrain, model_dir, shard, row, args.steps, args.warmup,
                                      os.path.join(args.work, name + "-out"), os.path.join(args.out, f"qtrain_{name}.log"))
        except Exception as e:  # keep going: the other rows and the anchor still mean something
            err = f"qtrain: {e}"
        if not args.skip_anchor:
            try:
                a_tps, a_mem, a_alloc = run_hf(model_dir, row, args.steps, args.warmup, vocab)
            except Exception as e:
                err = (err + "; " if err else "") + f"anchor: {e}"
        l_tps = l_mem = None
        if args.liger and row["shape"] != "gpt2-medium" and not args.skip_anchor:
            import multiprocessing
            try:
                with multiprocessing.get_context("spawn").Pool(1) as pool:
                    l_tps, l_mem, _ = pool.apply(run_hf, (model_dir, row, args.steps, args.warmup, vocab, True))
            except Exception as e:
                err = (err + "; " if err else "") + f"liger anchor: {type(e).__name__}: {e}"
        ratio = lambda a, b: (a / b) if a and b else None
        fastest = max([(v, n) for v, n in ((a_tps, "HF+peft"), (l_tps, "HF+peft+Liger")) if v], default=(None, None))
        rows.append(dict(config=config, metric="tok/s", qtrain=q_tps, anchor=a_tps, ratio=ratio(q_tps, a_tps),
                         anchor_liger=l_tps, ratio_liger=ratio(q_tps, l_tps), fastest_anchor=fastest[1],
                         ratio_fastest=ratio(q_tps, fastest[0]), error=err))
        rows.append(dict(config=config, metric="peak GPU mem GiB (nvidia-smi)", qtrain=q_mem, anchor=a_mem,
                         ratio=ratio(q_mem, a_mem), anchor_torch_max_allocated_gib=a_alloc, anchor_liger=l_mem,
                         qtrain_allocator_peak_gib=getattr(run_qtrain, "alloc_peak", None)))
        print(json.dumps(rows[-2]), json.dumps(rows[-1]), flush=True)
    res = dict(device=device, date=date, steps=args.steps, warmup=args.warmup, rows=rows)
    path = os.path.join(args.out, f"train_vs_hf_{device}_{date}.json")
    json.dump(res, open(path, "w"), indent=1)
    fmt = lambda v: "-" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"
    print(f"\n{'config':44s} {'metric':30s} {'qtrain':>9s} {'HF+peft':>9s} {'ratio':>6s} {'+Liger':>9s} {'ratio':>6s}")
    for r in rows:
        print(f"{r['config']:44s} {r['metric']:30s} {fmt(r['qtrain']):>9s} {fmt(r['anchor']):>9s} {fmt(r['ratio']):>6s} "
              f"{fmt(r.get('anchor_liger')):>9s} {fmt(r.get('ratio_liger')):>6s}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
