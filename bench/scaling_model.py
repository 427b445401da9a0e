#!/usr/bin/env python3
"""Predicts data-parallel efficiency of qtrain at 1..512 GPUs from one GPU's step time.

Model (weak scaling: fixed per-rank batch, so compute per step is constant):
  * the trainable gradients (G bytes, fp32) are cut into buckets of --bucket-mb, reduced
    in reverse layer order; bucket i becomes ready at (i+1)/n of the backward pass
    (backward = --backward-fraction of the step; buckets fill uniformly);
  * one bucket's ring all-reduce over N GPUs takes
        2 (N-1)/N * bytes / busbw(N)  +  latency(N)
    busbw(N) = NVLink bus bandwidth inside one node (N <= gpus per node), else the node's
    NIC bandwidth times an efficiency (every ring crosses each node boundary once, and the
    rings of all channels together use all of the node's NICs);
    latency(N) = --latency-us * (1 + log2 N)  (NCCL switches to trees for small buckets);
  * buckets are reduced one after another on the communication stream, overlapped with the
    rest of backward; only what runs past the end of backward is exposed:
        step(N) = step(1) + exposed(N),   efficiency(N) = step(1) / step(N).
  * with --grad-accum K the all-reduce happens once per K micro-steps (compute K x step).

Step time and gradient bytes come from a measured run (--metrics DIR/metrics.jsonl and
--adapter DIR/adapter/adapter_model.safetensors) or from the flags; the JSON says which.
Writes bench/results/scaling_model.json and bench/results/scaling_model.png.
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
GPUS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]

# Parameter counts for the built-in scenarios (LoRA on all 7 projections of a LLaMA block:
# r * (in + out) per projection).
def lora_params(hidden, inter, kv_dim, layers, r):
    per_layer = r * ((hidden + hidden) * 2 + (hidden + kv_dim) * 2 + (hidden + inter) * 3)
    return per_layer * layers

SCENARIOS = {
    # SmolLM2-135M: hidden 576, intermediate 1536, kv 3 heads x 64, 30 layers. Step: 8 x 512
    # tokens per GPU; ~4 * 135M * 4096 FLOP at ~40% of an H100's bf16 peak -> ~15 ms.
    "smollm2-135m lora r8": dict(step_time_s=0.015, grad_bytes=4 * lora_params(576, 1536, 192, 30, 8),
                                 full_grad_bytes=4 * 134_515_008),
    # Llama-3-8B: hidden 4096, intermediate 14336, kv 8 heads x 128, 32 layers; full FT in bf16 grads.
    # Step: 8 x 2048 tokens per GPU, ~4 * 8B * 16k FLOP at ~40% of peak -> ~1.3 s.
    "llama3-8b lora r16": dict(step_time_s=1.3, grad_bytes=4 * lora_params(4096, 14336, 1024, 32, 16),
                               full_grad_bytes=2 * 8_030_261_248),
}


def allreduce_time(nbytes, n, a):
    if n == 1:
        return 0.0
    intra = n <= a.gpus_per_node
    busbw = a.nvlink_gbs * 1e9 if intra else min(a.nvlink_gbs * 1e9, a.nic_gbits / 8 * 1e9 * a.nic_efficiency)
    return 2 * (n - 1) / n * nbytes / busbw + a.latency_us * 1e-6 * (1 + math.log2(n))


def exposed_comm(step_s, grad_bytes, n, a):
    """Seconds of all-reduce left after backward ends, buckets overlapped with backward."""
    bucket = a.bucket_mb * 1e6
    nb = max(1, math.ceil(grad_bytes / bucket))
    # With accumulation the reduction overlaps only the last micro-step's backward.
    backward_last = a.backward_fraction * step_s
    finish = 0.0
    for i in range(nb):
        ready = backward_last * (i + 1) / nb
        size = min(bucket, grad_bytes - i * bucket)
        finish = max(finish, ready) + allreduce_time(size, n, a)
    return max(0.0, finish - backward_last), nb


def predict(step_s, grad_bytes, a):
    rows = []
    for n in GPUS:
        exposed, nb = exposed_comm(step_s, grad_bytes, n, a)
        compute = step_s * a.grad_accum
        total_comm = sum(allreduce_time(min(a.bucket_mb * 1e6, grad_bytes - i * a.bucket_mb * 1e6), n, a)
                         for i in range(nb))
        rows.append(dict(gpus=n, step_time_s=compute + exposed, comm_total_s=total_comm, comm_exposed_s=exposed,
                         comm_hidden_s=total_comm - exposed, buckets=nb, efficiency=compute / (compute + exposed)))
    return rows


def measured_step_time(metrics_path):
    """Median step time from a run's metrics.jsonl (elapsed_s differences, first step skipped)."""
    elapsed = []
    with open(metrics_path) as f:
        for line in f:
            if line.strip():
                elapsed.append(json.loads(line)["elapsed_s"])
    diffs = [b - a for a, b in zip(elapsed[1:], elapsed[2:])]
    if not diffs:
        sys.exit(f"{metrics_path}: need at least 3 steps to measure a step time")
    return statistics.median(diffs)


def safetensors_numel(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--metrics", help="metrics.jsonl of a 1-GPU run: its median step time is used")
    p.add_argument("--adapter", help="adapter_model.safetensors of that run: gradient bytes = 4 * its numel")
    p.add_argument("--step-time", type=float, help="1-GPU step time in seconds (instead of --metrics)")
    p.add_argument("--grad-bytes", type=float, help="trainable gradient bytes (instead of --adapter)")
    p.add_argument("--full-grad-bytes", type=float, help="gradient bytes of full fine-tuning, for comparison")
    p.add_argument("--name", default="measured run")
    p.add_argument("--backward-fraction", type=float, default=0.65, help="share of the step spent in backward")
    p.add_argument("--bucket-mb", type=float, default=25.0)
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--gpus-per-node", type=int, default=8)
    p.add_argument("--nvlink-gbs", type=float, default=360.0, help="NCCL all-reduce bus bandwidth in a node, GB/s")
    p.add_argument("--nic-gbits", type=float, default=800.0, help="network bandwidth per node, Gb/s (4 x 200 Gb/s IB)")
    p.add_argument("--nic-efficiency", type=float, default=0.85, help="share of NIC bandwidth NCCL reaches")
    p.add_argument("--latency-us", type=float, default=8.0, help="per-collective latency at 1 hop, microseconds")
    p.add_argument("--out", default=os.path.join(HERE, "results", "scaling_model"))
    a = p.parse_args()

    scenarios = {}
    if a.metrics or a.step_time:
        step = measured_step_time(a.metrics) if a.metrics else a.step_time
        gb = 4 * safetensors_numel(a.adapter) if a.adapter else a.grad_bytes
        if gb is None:
            sys.exit("give --adapter or --grad-bytes with --metrics/--step-time")
        src = f"measured: {a.metrics}" if a.metrics else "given: --step-time"
        scenarios[a.name] = dict(step_time_s=step, grad_bytes=gb, full_grad_bytes=a.full_grad_bytes, source=src)
    else:
        for k, v in SCENARIOS.items():
            scenarios[k] = dict(v, source="assumed step time (no --metrics given)")

    result = {
        "model": "weak scaling, ring all-reduce of fp32 trainable gradients in buckets overlapped with backward",
        "assumptions": {k: getattr(a, k) for k in ("backward_fraction", "bucket_mb", "grad_accum", "gpus_per_node",
                                                   "nvlink_gbs", "nic_gbits", "nic_efficiency", "latency_us")},
        "scenarios": {},
    }
    print(f"{'scenario':<34} {'grads':>10} " + " ".join(f"{n:>6}" for n in GPUS))
    for name, s in scenarios.items():
        entry = {"source": s["source"], "step_time_1gpu_s": s["step_time_s"], "grad_bytes": s["grad_bytes"],
                 "adapter_only": predict(s["step_time_s"], s["grad_bytes"], a)}
        if s.get("full_grad_bytes"):
            entry["full_grad_bytes"] = s["full_grad_bytes"]
            entry["full_finetune"] = predict(s["step_time_s"], s["full_grad_bytes"], a)
        result["scenarios"][name] = entry
        for kind in ("adapter_only", "full_finetune"):
            if kind in entry:
                gbytes = s["grad_bytes"] if kind == "adapter_only" else s["full_grad_bytes"]
                effs = " ".join(f"{r['efficiency']*100:5.1f}%" for r in entry[kind])
                print(f"{name + ' ' + kind:<34} {gbytes/1e6:8.1f}MB {effs}")

    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out + ".json", "w") as f:
        json.dump(result, f, indent=2)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, e in result["scenarios"].items():
        for kind, style in (("adapter_only", "-o"), ("full_finetune", "--x")):
            if kind in e:
                ax.plot([r["gpus"] for r in e[kind]], [100 * r["efficiency"] for r in e[kind]], style,
                        label=f"{name}, {'adapter grads' if kind == 'adapter_only' else 'full grads'}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(GPUS, [str(n) for n in GPUS])
    ax.set_ylim(0, 105)
    ax.axvline(a.gpus_per_node + 0.5, color="grey", lw=0.5)
    ax.set_xlabel("GPUs (weak scaling)")
    ax.set_ylabel("efficiency %")
    ax.set_title(f"predicted DDP efficiency ({a.nic_gbits:.0f} Gb/s per node, {a.gpus_per_node} GPUs/node)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(a.out + ".png", dpi=120)
    print(f"wrote {a.out}.json and {a.out}.png")


if __name__ == "__main__":
    main()
