#!/usr/bin/env python3
"""qtrain train --device cuda against the tools users train with, on the same random-init
model and the same synthetic tokens: median tok/s after warmup, peak GPU memory and the
trainable-parameter counts.

Anchors, each alone in a fresh process (bench/anchor_run.py), one after the other:
  HF+peft (bf16 base), HF+peft+bnb (bitsandbytes NF4 + double quant, the QLoRA recipe),
  HF+peft+hqq (transformers' HqqConfig) -- always, unless --skip-anchor;
  ...+Liger (--liger: Liger's Triton kernels, fused linear cross-entropy) on LLaMA-family rows;
  Unsloth (--unsloth: FastLanguageModel, load_in_4bit for NF4 rows, its own gradient
  checkpointing) on LLaMA-family LoRA rows (its recipe is LoRA/QLoRA);
  llm.c (--llmc BIN: karpathy/llm.c's train_gpt2cu, built beside as bench/llmc_anchor.sh says) on the
  GPT-2 full fine-tune rows: random init of the same depth, the same shard (llm.c's token format).
An anchor whose spec (model, batch, sequence, checkpointing, steps...) was measured already in this run
is not run again: its numbers are reused and the row names the row it ran for (the 7B plan rows keep the
GC rows' anchors). A run is this invocation, or every invocation given the same --run-id (several calls
on one machine: bench/device_run.sh passes the machine's boot id). --no-reuse-anchors measures every
row's anchors afresh.
An anchor that fails is recorded as {"anchor": NAME, "error": REASON} in the row and the row goes
on. Every row says which anchor was fastest ("fastest_anchor") and qtrain's ratio to it.

Peak memory for every process is the device's memory.used polled with nvidia-smi every 50 ms
(includes the CUDA context, ~0.5 GiB); qtrain's allocator peak and the anchors'
torch.cuda.max_memory_allocated are kept beside it.

    train_vs_hf.py --qtrain build-cuda/qtrain --models DIR [--rows gpt2m-lora,gpt2m-full,smol-lora] \
        [--steps 30] [--warmup 10] [--liger] [--unsloth] [--out bench/results]
    train_vs_hf.py ... --table peft7b|peft_smol [--rows SUBSET] [--budget-s 260]   # the PEFT family table
    train_vs_hf.py ... --dry-run                                                    # print the commands only
Model dirs are made with bench/make_random_model.py under --models (created if absent).
Writes train_vs_hf_<device>_<date>.{json,md} (with --table: peft_family_<device>_<date>.{json,md},
merged into the file of that name already in --out, so that two steps fill one table).
"""
import argparse
import datetime
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_table  # noqa: E402

ROWS = {
    "gpt2m-lora": dict(shape="gpt2-medium", method="lora", batch=8, seq=1024, ckpt=False),
    "gpt2m-full": dict(shape="gpt2-medium", method="full", batch=8, seq=1024, ckpt=False),
    "smol-lora": dict(shape="smollm2-135m", method="lora", batch=16, seq=1024, ckpt=False, label="LoRA (bf16 base)"),
    # QLoRA (NF4 + DQ base): against HF+peft bf16 LoRA, and against HF+peft+bitsandbytes QLoRA
    # (the wheel is carried to the GPU machine: bench/device_run.sh --pack).
    "smol-qlora": dict(shape="smollm2-135m", method="qlora", batch=16, seq=1024, ckpt=False, anchor_method="lora"),
    "smol-qlora-gc": dict(shape="smollm2-135m", method="qlora", batch=16, seq=1024, ckpt=True, anchor_method="qlora"),
    "llama7b-lora": dict(shape="llama-7b", method="lora", batch=4, seq=2048, ckpt=True),
    "llama7b-qlora": dict(shape="llama-7b", method="qlora", batch=4, seq=2048, ckpt=True, anchor_method="qlora"),
    "llama7b-qlora-b1": dict(shape="llama-7b", method="qlora", batch=1, seq=2048, ckpt=True, anchor_method="qlora"),
    # Issue speed II's batch-1 memory target (<= 5.5 GiB as nvidia-smi sees it) with the recomputed layers' inputs
    # parked in host memory (--offload-checkpoints); the anchors are llama7b-qlora-b1's.
    "llama7b-qlora-b1-offload": dict(shape="llama-7b", method="qlora", batch=1, seq=2048, ckpt=True, offload=True,
                                     anchor_method="qlora"),
    # Issue speed II's "with the memory the GPU has": qtrain without --grad-checkpoint, so its activation
    # plan keeps what the free memory holds (trainer/memory_plan.h); the anchors keep their checkpointing
    # (HF+peft+bnb's QLoRA recipe, Unsloth's own), as in llama7b-qlora. The peak memory column says what it cost.
    "llama7b-qlora-plan": dict(shape="llama-7b", method="qlora", batch=4, seq=2048, ckpt=False, anchor_ckpt=True,
                               anchor_method="qlora"),
    # Issue speed II's "with checkpointing, at no more peak memory than the anchor": qtrain's activation plan under
    # a budget that keeps its nvidia-smi peak below HF+peft+bnb's (15.5 GiB on 2026-12-05; the budget counts
    # qtrain's estimate, the CUDA context comes on top), the recomputed layers' inputs parked in host memory
    # as Unsloth's checkpointing parks its own. The anchors checkpoint, as in llama7b-qlora.
    "llama7b-qlora-budget": dict(shape="llama-7b", method="qlora", batch=4, seq=2048, ckpt=False, anchor_ckpt=True,
                                 anchor_method="qlora", memory_budget=14.5, offload=True),
    # The same for the BF16 LoRA row, and with the anchors' checkpointing off too (each tool with the memory
    # the GPU has: the fairest reading of "with the memory the GPU has" for LoRA, where nothing is quantized).
    "llama7b-lora-plan": dict(shape="llama-7b", method="lora", batch=4, seq=2048, ckpt=False, anchor_ckpt=True),
    "llama7b-lora-nogc": dict(shape="llama-7b", method="lora", batch=4, seq=2048, ckpt=False),
    # The PEFT family (issue: PEFT family): every method of the thesis beside peft's own, on the
    # same base (NF4 for QLoRA/LoftQ/DoRA/IA3, bf16 for LoRA, HQQ through transformers' HqqConfig).
    # r 64 on LLaMA-7B as in the thesis, r 16 on SmolLM2 as its other rows; IA3 on peft's default
    # modules (k, v, down). LoftQ rows use alpha = r (scale 1: the exact LoftQ start, as peft's).
    "smol-qlora-nf4": dict(shape="smollm2-135m", method="qlora", batch=16, seq=1024, ckpt=False,
                           anchor_method="qlora", label="QLoRA (NF4 + DQ)"),
    "smol-qlora-loftq": dict(shape="smollm2-135m", method="qlora", loftq_iters=1, alpha=16, batch=16, seq=1024,
                             ckpt=False, anchor_method="qlora", label="QLoRA + LoftQ init (1 round)", show_setup=True),
    "smol-hqq4": dict(shape="smollm2-135m", method="hqq-lora", hqq_bits=4, batch=16, seq=1024, ckpt=False,
                      anchor_method="hqq", label="HQQ 4-bit + LoRA"),
    "smol-hqq2": dict(shape="smollm2-135m", method="hqq-lora", hqq_bits=2, batch=16, seq=1024, ckpt=False,
                      anchor_method="hqq", label="HQQ 2-bit + LoRA"),
    "smol-qdora": dict(shape="smollm2-135m", method="qlora", adapter="dora", batch=16, seq=1024, ckpt=False,
                       anchor_method="qlora", label="DoRA (NF4 base)"),
    "smol-qia3": dict(shape="smollm2-135m", method="qlora", adapter="ia3", batch=16, seq=1024, ckpt=False,
                      anchor_method="qlora", label="IA3 (NF4 base)"),
    "llama7b-lora-r64": dict(shape="llama-7b", method="lora", r=64, batch=4, seq=2048, ckpt=True,
                             label="LoRA (bf16 base)"),
    "llama7b-qlora-r64": dict(shape="llama-7b", method="qlora", r=64, batch=4, seq=2048, ckpt=True, anchor_method="qlora",
                              label="QLoRA (NF4 + DQ)"),
    # qtrain's HQQ solver runs on the CPU while the model loads: 76 ns per weight on one core since
    # 2026-12-04 (was 302), about 30 s for LLaMA-7B's 6.5B weights on 16 cores (estimated), so its rows
    # run. LoftQ's SVDs run on the model's device (on the GPU: cuSOLVER, kernels/cuda/svd.cu): 28
    # LLaMA-7B modules took 3.7 s more than plain QLoRA on an H200 (device_run.sh's loftq step,
    # 2026-12-04), ~30 s for all 224. `slow` (with --run-slow to run anyway) marks rows whose setup
    # would not fit a device call; none does now.
    "llama7b-qlora-loftq-r64": dict(
        shape="llama-7b", method="qlora", loftq_iters=1, r=64, alpha=64, batch=4, seq=2048, ckpt=True,
        anchor_method="qlora", label="QLoRA + LoftQ init (1 round)", show_setup=True),
    "llama7b-hqq4-r64": dict(
        shape="llama-7b", method="hqq-lora", hqq_bits=4, r=64, batch=4, seq=2048, ckpt=True, anchor_method="hqq",
        label="HQQ 4-bit + LoRA", show_setup=True),
    "llama7b-hqq2-r64": dict(
        shape="llama-7b", method="hqq-lora", hqq_bits=2, r=64, batch=4, seq=2048, ckpt=True, anchor_method="hqq",
        label="HQQ 2-bit + LoRA", show_setup=True),
    "llama7b-qdora-r64": dict(shape="llama-7b", method="qlora", adapter="dora", r=64, batch=4, seq=2048, ckpt=True,
                              anchor_method="qlora", label="DoRA (NF4 base)"),
    "llama7b-qia3": dict(shape="llama-7b", method="qlora", adapter="ia3", batch=4, seq=2048, ckpt=True,
                         anchor_method="qlora", label="IA3 (NF4 base)"),
}

# The PEFT family tables (issue: PEFT family, Benchmark): one JSON + markdown, peft_family_<device>_<date>.
TABLES = {
    "peft7b": dict(title="LLaMA-7B shape, r 64 (IA3: peft's modules), 4×2048, gradient checkpointing",
                   rows=["llama7b-lora-r64", "llama7b-qlora-r64", "llama7b-qlora-loftq-r64", "llama7b-hqq4-r64",
                         "llama7b-hqq2-r64", "llama7b-qdora-r64", "llama7b-qia3"]),
    "peft_smol": dict(title="SmolLM2-135M shape, r 16 (IA3: peft's modules), 16×1024, no checkpointing",
                      rows=["smol-lora", "smol-qlora-nf4", "smol-qlora-loftq", "smol-hqq4", "smol-hqq2", "smol-qdora",
                            "smol-qia3"]),
}

LLAMA_SHAPES = ("smollm2-135m", "llama-7b", "tiny-llama")
BASE_OF = {"lora": "bf16", "qlora": "nf4", "hqq": "hqq", "full": "bf16"}
HF_LABEL = {"bf16": "HF+peft", "nf4": "HF+peft+bnb", "hqq": "HF+peft+hqq"}


class GpuMemPoller:
    """Peak nvidia-smi memory.used (GiB) of GPU `index` while active."""

    def __init__(self, index=0, period=0.05):
        self.index, self.period, self.peak, self._stop = index, period, None, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                      "-i", str(self.index)], capture_output=True, text=True, timeout=5).stdout
                self.peak = max(self.peak or 0.0, float(out.strip().splitlines()[0]) / 1024.0)
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
    import numpy as np
    rng = np.random.default_rng(seed)
    header = np.zeros(256, dtype=np.int32)
    header[:3] = [20240520, 1, ntok]
    toks = rng.integers(0, min(vocab, 65535), size=ntok, dtype=np.uint16)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(toks.tobytes())


def load_json(path):
    with open(path) as f:
        return json.load(f)


def ensure_model(models_dir, shape):
    d = os.path.join(models_dir, shape)
    if not os.path.exists(os.path.join(d, "config.json")):
        subprocess.run([sys.executable, os.path.join(HERE, "make_random_model.py"), d, "--shape", shape], check=True)
    return d


def rank(row):
    return row.get("r", 16)


def alpha(row):
    return row.get("alpha", 2 * rank(row))


def adapter(row):
    return "full" if row["method"] == "full" else row.get("adapter", "lora")


def describe(row):
    ad = adapter(row)
    plan = anchor_ckpt(row) and not row["ckpt"]  # qtrain's activation plan beside checkpointing anchors
    r = "" if ad in ("full", "ia3") else f" r{rank(row)}"
    extra = (f" loftq{row['loftq_iters']}" if row.get("loftq_iters") else "") + \
            (f" {row['hqq_bits']}-bit" if row.get("hqq_bits") else "")
    return (f'{row["shape"]} {row["method"]}{"+" + ad if ad not in ("lora", "full") else ""}{extra}{r} '
            f'bs {row["batch"]}x{row["seq"]}{" ckpt" if row["ckpt"] else ""}'
            f'{" (activation plan" if plan else ""}'
            f'{" within " + format(row["memory_budget"], "g") + " GiB" if row.get("memory_budget") else ""}'
            f'{", checkpoints offloaded" if row.get("offload") else ""}'
            f'{"; anchors ckpt)" if plan else ""}')


def anchor_ckpt(row):
    """Whether the anchors checkpoint: as qtrain does, unless the row says otherwise."""
    return row.get("anchor_ckpt", row["ckpt"])


def qtrain_cmd(qtrain, model_dir, shard, row, steps, out_dir, device="cuda"):
    cmd = [qtrain, "train", "--model", model_dir, "--data", shard, "--format", "bin", "--device", device,
           "--method", row["method"], "--batch-size", str(row["batch"]), "--seq-len", str(row["seq"]),
           "--steps", str(steps), "--lr", "1e-4", "--out", out_dir, "--overwrite", "--log-every", "1", "--save-every", "0"]
    if row["method"] != "full":
        cmd += ["--lora-r", str(rank(row)), "--lora-alpha", f"{alpha(row):g}", "--adapter-type", adapter(row)]
        if adapter(row) != "ia3":  # IA3 keeps peft's default modules, as the anchor does
            cmd += ["--target", "all-linear"]
    if row.get("loftq_iters"):
        cmd += ["--loftq-iters", str(row["loftq_iters"])]
    if row.get("hqq_bits"):
        cmd += ["--hqq-bits", str(row["hqq_bits"])]
    if row["ckpt"]:
        cmd.append("--grad-checkpoint")
    if row.get("memory_budget"):
        cmd += ["--memory-budget", f"{row['memory_budget']:g}"]
    if row.get("offload"):
        cmd.append("--offload-checkpoints")
    return cmd


def anchor_spec(row, steps, warmup, vocab):
    am = row.get("anchor_method", row["method"])
    return dict(base=BASE_OF[am], hqq_bits=row.get("hqq_bits", 4), adapter=adapter(row), r=rank(row), alpha=alpha(row),
                loftq=bool(row.get("loftq_iters")), batch=row["batch"], seq=row["seq"], ckpt=anchor_ckpt(row),
                steps=steps, warmup=warmup, vocab=vocab)


def anchors_for(row, args):
    """[(key, label)] of the anchors this row runs, and {key: why not} for those it does not."""
    if args.skip_anchor:
        return [], {}
    base = BASE_OF[row.get("anchor_method", row["method"])]
    hf = "HF" if row["method"] == "full" else HF_LABEL[base]  # a full fine-tune has no peft in it
    out, not_run = [("hf", hf)], {}
    llama = row["shape"] in LLAMA_SHAPES
    if args.liger:
        if llama:
            out.append(("liger", hf + "+Liger"))
        else:
            not_run["liger"] = "Liger patches LLaMA-family models only"
    if args.unsloth:
        if not llama:
            not_run["unsloth"] = "Unsloth has no GPT-2 support"
        elif adapter(row) != "lora" or base == "hqq" or row.get("loftq_iters"):
            not_run["unsloth"] = "Unsloth's recipe is LoRA/QLoRA (its DoRA/IA3/HQQ/LoftQ paths are peft's)"
        else:
            out.append(("unsloth", "Unsloth"))
    if getattr(args, "llmc", None) and row["method"] == "full":
        if row["shape"] == "gpt2-medium":
            out.append(("llmc", getattr(args, "llmc_label", None) or "llm.c"))
        else:
            not_run["llmc"] = "llm.c trains GPT-2 shapes only"
    return out, not_run


class Budget:
    """The step's wall-clock budget: each process gets what is left (less a reserve for writing the
    results) and nothing starts with less than `min_s`, so the table is written before the step's
    `timeout` would kill this script."""

    def __init__(self, total_s, reserve_s=8.0, min_s=20.0, cap_s=420.0):
        self.t0, self.total, self.reserve, self.min, self.cap = time.monotonic(), total_s, reserve_s, min_s, cap_s

    def timeout(self, min_s=None):
        """Seconds the next process may take, or None when less than min_s is left."""
        if not self.total:
            return self.cap
        left = self.total - (time.monotonic() - self.t0) - self.reserve
        return min(left, self.cap) if left >= (min_s or self.min) else None


def tail(path, n=12):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.rstrip() for l in f.readlines()[-n:])
    except OSError:
        return ""


def run_logged(cmd, log, timeout, cwd=None):
    """cmd's exit status, its output in log; past timeout its whole process group (compile
    workers included) is killed and TimeoutError raised with the log's last lines."""
    with open(log, "w") as lf:
        p = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise TimeoutError(f"timed out after {timeout:.0f} s (the step's budget); log: {tail(log, 4)}")


def run_qtrain(cmd, out_dir, log, warmup, timeout, keep=False):
    t0 = time.monotonic()
    with GpuMemPoller() as mem:
        rc = run_logged(cmd, log, timeout)
    wall = time.monotonic() - t0
    if rc != 0:
        raise RuntimeError(f"qtrain exited {rc}: {tail(log)}")
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        lines = [json.loads(l) for l in f if l.strip()]
    tps = [l["tokens_per_s"] for l in lines if "tokens_per_s" in l and l.get("step", 0) > warmup]
    with open(os.path.join(out_dir, "run.json")) as f:
        run = json.load(f)
    train_s = max((l.get("elapsed_s", 0) for l in lines), default=0)
    if not keep:  # what was trained is not the benchmark's: a full fine-tune's checkpoint is gigabytes
        for sub in ("checkpoint", "model", "adapter"):
            shutil.rmtree(os.path.join(out_dir, sub), ignore_errors=True)
    return dict(tok_s=statistics.median(tps), peak_gib=mem.peak,
                alloc_peak_gib=max((l.get("gpu_peak_gib", 0) for l in lines), default=None),
                trainable_params=run.get("trainable_params"), total_params=run.get("total_params"),
                # Start to first step, as the anchors' setup_s (bench/anchor_run.py); the wall time past the
                # training (which also holds the final checkpoint and adapter write) where run.json lacks it.
                setup_s=run.get("setup_s", wall - train_s), wall_s=wall)


def llmc_cmd(llmc, shard, row, steps, work):
    """train_gpt2cu at GPT-2-medium's depth (-e d24: random init) on the row's batch and sequence; no eval,
    sampling or checkpoints."""
    B, T = row["batch"], row["seq"]
    return [llmc, "-i", shard, "-j", shard, "-e", "d24", "-b", str(B), "-t", str(T), "-d", str(B * T), "-x", str(steps),
            "-v", "100000", "-s", "0", "-h", "0", "-o", os.path.join(work, "llmc_log")]


def run_llmc(llmc, shard, row, steps, warmup, work, timeout):
    """llm.c's train_gpt2cu on the row's shard: random init of GPT-2-medium's depth (-e d24), the row's
    batch and sequence, no eval or sampling; (numbers, None) or (None, reason). tok/s is the median of its
    per-step lines after warmup, as qtrain's; peak memory polled as every process's."""
    if row["shape"] != "gpt2-medium":
        return None, f"no llm.c depth for the {row['shape']} shape"
    log = os.path.join(work, "llmc.log")
    cmd = llmc_cmd(llmc, shard, row, steps, work)
    t0 = time.monotonic()
    with GpuMemPoller() as mem:
        try:
            rc = run_logged(cmd, log, timeout, cwd=work)
        except TimeoutError as e:
            return None, str(e)
    with open(log, errors="replace") as f:
        text = f.read()
    tps = [float(m.group(1)) for m in re.finditer(r"\|\s*([0-9.]+) tok/s", text)]
    if rc != 0 or len(tps) <= warmup:
        return None, f"exited {rc} with {len(tps)} step lines: {tail(log, 4)}"
    m = re.search(r"num_parameters: (\d+)", text)
    n = int(m.group(1)) if m else None
    return dict(tok_s=statistics.median(tps[warmup:]), peak_gib=mem.peak, trainable_params=n, total_params=n,
                wall_s=time.monotonic() - t0), None


def anchor_cache_path(work, run_id, key, model_dir, spec):
    """Where a measured anchor is kept for reuse within one run: by its key, model and whole spec."""
    h = hashlib.sha1(json.dumps([key, os.path.realpath(model_dir), spec], sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(work, "anchor_cache", run_id, f"{key}-{h}.json")


def run_anchor(key, model_dir, spec, work, timeout, device="cuda"):
    """bench/anchor_run.py in a fresh process: (numbers, None, versions) or (None, reason, versions)."""
    res_path = os.path.join(work, f"anchor_{key}.json")
    log = os.path.join(work, f"anchor_{key}.log")
    if os.path.exists(res_path):
        os.remove(res_path)
    cmd = anchor_cmd(key, model_dir, spec, res_path) + ["--device", device]
    with GpuMemPoller() as mem:
        try:
            rc = run_logged(cmd, log, timeout, cwd=work)
        except TimeoutError as e:
            return None, str(e), None
    try:
        res = load_json(res_path)
    except (OSError, ValueError):
        return None, f"exited {rc} without a result (crash?): {tail(log)}", None
    if res.get("error"):  # the exception, and where it was raised (the traceback's last lines)
        where = res.get("traceback", "").strip().splitlines()[-13:-1]
        return None, res["error"] + ("\n" + "\n".join(where) if where else ""), res.get("versions")
    res["peak_gib"] = mem.peak
    return res, None, res.get("versions")


def anchor_cmd(key, model_dir, spec, res_path):
    return [sys.executable, os.path.join(HERE, "anchor_run.py"), "--anchor", key, "--model", model_dir,
            "--spec", json.dumps(spec, separators=(",", ":")), "--out", res_path]


def gpu_name():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                              capture_output=True, text=True).stdout.strip().splitlines()[0].replace(" ", "-")
    except (FileNotFoundError, IndexError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qtrain", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--rows", help="comma-separated row names (default: gpt2m-lora,gpt2m-full,smol-lora, or the --table's)")
    ap.add_argument("--table", choices=sorted(TABLES), help="a PEFT-family table: its rows, written as peft_family_*")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--work", default="/tmp/train_vs_hf")
    ap.add_argument("--skip-anchor", action="store_true", help="qtrain only")
    ap.add_argument("--liger", action="store_true", help="also HF+peft with Liger kernels on LLaMA-family rows")
    ap.add_argument("--unsloth", action="store_true", help="also Unsloth on LLaMA-family LoRA/QLoRA rows")
    ap.add_argument("--llmc", metavar="BIN", help="llm.c's train_gpt2cu: the anchor of the GPT-2 full fine-tune rows")
    ap.add_argument("--llmc-label", default="llm.c",
                    help="its name in the table, e.g. 'llm.c+cuDNN' for a LLMC_CUDNN=1 build (bench/build_llmc.sh)")
    ap.add_argument("--keep-outputs", action="store_true",
                    help="keep what each qtrain row wrote (checkpoint, adapter or model) in --work; by default only "
                         "its metrics.jsonl, run.json and log stay")
    ap.add_argument("--run-id", help="invocations with the same id are one run: an anchor spec measured by one is "
                                      "reused by the next (default: this invocation alone)")
    ap.add_argument("--no-reuse-anchors", action="store_true",
                    help="measure every row's anchors, even where an identical spec ran earlier in this run")
    ap.add_argument("--run-slow", action="store_true", help="run rows marked slow (7B LoftQ/HQQ: qtrain's CPU setup)")
    ap.add_argument("--budget-s", type=float, default=0,
                    help="wall-clock seconds for the whole run: later processes are skipped (and recorded so) rather "
                         "than killed with the results unwritten (0 = no limit)")
    ap.add_argument("--dry-run", action="store_true", help="print each row's commands and exit")
    ap.add_argument("--smoke", action="store_true",
                    help="the rows' methods on the tiny-llama shape on the CPU, batch 2 x 32: a check of this script "
                         "and its anchors, not a benchmark")
    args = ap.parse_args()

    names = args.rows.split(",") if args.rows else TABLES[args.table]["rows"] if args.table else \
        ["gpt2m-lora", "gpt2m-full", "smol-lora"]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        ap.error(f"--rows: unknown row(s) {', '.join(unknown)}; known: {', '.join(ROWS)}")
    if args.warmup >= args.steps:
        ap.error(f"--warmup {args.warmup} leaves no timed step of --steps {args.steps}")
    device, date = gpu_name(), datetime.date.today().isoformat()
    stem = ("smoke_" if args.smoke else "") + (f"peft_family_{device}_{date}" if args.table else f"train_vs_hf_{device}_{date}")
    path = os.path.join(args.out, stem + ".json")
    titles = {t: TABLES[t]["title"] + (" -- smoke run: tiny-llama on the CPU, batch 2x32, not a benchmark"
                                       if args.smoke else "") for t in TABLES}
    budget = Budget(args.budget_s)
    run_id = args.run_id or f"invocation-{os.getpid()}-{time.time_ns()}"

    if args.dry_run:
        for name in names:
            row = ROWS[name]
            model_dir = os.path.join(args.models, row["shape"])
            shard = os.path.join(args.work, f"{name}.bin")
            print(f"# {name}: {describe(row)}" + (f"  [slow, skipped without --run-slow: {row['slow']}]"
                                                  if row.get("slow") and not args.run_slow else ""))
            print("  " + shlex.join(qtrain_cmd(args.qtrain, model_dir, shard, row, args.steps, os.path.join(args.work, name + "-out"))))
            runs, not_run = anchors_for(row, args)
            for key, label in runs:
                spec = anchor_spec(row, args.steps, args.warmup, vocab=0)
                cmd = llmc_cmd(args.llmc, shard, row, args.steps, args.work) if key == "llmc" else \
                    anchor_cmd(key, model_dir, spec, os.path.join(args.work, f"anchor_{key}.json"))
                print(f"  [{label}] " + shlex.join(cmd))
            for key, why in not_run.items():
                print(f"  [{key}: not run: {why}]")
        print(f"# would write {path} and {stem}.md")
        return

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.work, exist_ok=True)
    # --table merges into the file already there (two steps of one call fill one table).
    earlier = load_json(path) if args.table and os.path.exists(path) else None
    versions = dict((earlier or {}).get("versions") or {})
    results = []

    def save():
        doc = bench_table.document(results, device=device, date=date, steps=args.steps, warmup=args.warmup,
                                   title=("PEFT family: qtrain against peft on the same base" if args.table
                                          else "qtrain against HF anchors"),
                                   table_titles=titles, versions=versions)
        if earlier:
            doc = bench_table.merge([earlier, doc])
        bench_table.write(doc, path)

    for name in names:
        row = dict(ROWS[name], shape="tiny-llama", batch=2, seq=32) if args.smoke else ROWS[name]
        res = dict(name=name, config=describe(row), table=args.table or row["shape"], method=row.get("label", name),
                   show_setup=row.get("show_setup", False), anchors={}, anchor_errors=[])
        runs, not_run = anchors_for(row, args)
        if not_run:
            res["anchors_not_run"] = not_run
        if row.get("slow") and not args.run_slow and not args.smoke:
            res["skipped"] = row["slow"]
            results.append(res)
            save()
            print(json.dumps({"row": name, "skipped": row["slow"]}), flush=True)
            continue
        model_dir = ensure_model(args.models, row["shape"])
        vocab = load_json(os.path.join(model_dir, "config.json"))["vocab_size"]
        shard = os.path.join(args.work, f"{name}.bin")
        write_shard(shard, 2 * (args.steps + 2) * row["batch"] * (row["seq"] + 1), vocab)
        # A 7B process loads 13.5 GB and quantizes before its first step: not started with less than this.
        min_s = 45 if row["shape"] == "llama-7b" else None
        t = budget.timeout(min_s)
        if t is None:  # and its anchors: a row is measured whole or not at all
            res["skipped"] = "out of the step's time budget (--budget-s)"
            results.append(res)
            save()
            print(json.dumps({"row": name, "skipped": res["skipped"]}), flush=True)
            continue
        try:  # keep going: the other rows and the anchors still mean something
            out_dir = os.path.join(args.work, name + "-out")
            res["qtrain"] = run_qtrain(qtrain_cmd(args.qtrain, model_dir, shard, row, args.steps, out_dir,
                                                  "cpu" if args.smoke else "cuda"), out_dir,
                                       os.path.join(args.work, f"qtrain_{name}.log"), args.warmup, t,
                                       keep=args.keep_outputs)
        except Exception as e:
            res["error"] = f"{type(e).__name__}: {e}"
        spec = anchor_spec(row, args.steps, args.warmup, vocab)
        for key, label in runs:
            t = budget.timeout(min_s)
            if t is None:
                res["anchor_errors"].append(dict(anchor=key, error="not run: out of the step's time budget (--budget-s)"))
                continue
            # (the label is part of the key: two llm.c builds are two anchors)
            cache = anchor_cache_path(args.work, run_id, key, model_dir, dict(spec, label=label))
            if not args.no_reuse_anchors and os.path.exists(cache):
                kept = load_json(cache)
                numbers, err, vers = dict(kept["numbers"], reused_from=kept["row"]), None, kept.get("versions")
            elif key == "llmc":
                numbers, err = run_llmc(args.llmc, shard, row, args.steps, args.warmup, args.work, t)
                vers = None
            else:
                numbers, err, vers = run_anchor(key, model_dir, spec, args.work, t, "cpu" if args.smoke else "cuda")
            if numbers is not None and "reused_from" not in numbers:
                os.makedirs(os.path.dirname(cache), exist_ok=True)
                with open(cache, "w") as f:
                    json.dump(dict(row=name, numbers={k: v for k, v in numbers.items() if k != "versions"},
                                   versions=vers), f)
            versions.update(vers or {})
            if numbers is not None:
                numbers.pop("versions", None)
                res["anchors"][label] = numbers
            else:
                res["anchor_errors"].append(dict(anchor=key, error=err))
        results.append(res)
        save()  # after every row: a step killed later still leaves what it measured
        for r in bench_table.json_rows(res):
            print(json.dumps({k: v for k, v in r.items() if k not in ("anchor_errors",)}), flush=True)
        for e in res["anchor_errors"]:
            print(json.dumps(e), flush=True)
    save()
    fmt = lambda v: "-" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"
    print(f"\n{'config':44s} {'metric':30s} {'qtrain':>9s} {'baseline':>9s} {'ratio':>6s} {'fastest':>16s} {'ratio':>6s}")
    for r in bench_table.document(results)["rows"]:
        fa = r.get("fastest_anchor")
        fv = (r.get("anchors") or {}).get(fa) if fa else None
        print(f"{r['config']:44s} {r['metric']:30s} {fmt(r['qtrain']):>9s} {fmt(r['anchor']):>9s} {fmt(r['ratio']):>6s} "
              f"{(fa or '-')[:16]:>16s} {fmt(r.get('ratio_fastest')):>6s}  {fmt(fv)}")
    print(f"wrote {path} and {stem}.md")


if __name__ == "__main__":
    main()
