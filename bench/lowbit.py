#!/usr/bin/env python3
"""Low-bit bases in one run (issue Q-BLoRA/LowRA): every row trains the same
LoRA budget (r 8, alpha 8: scale 1, so LowRA's LoftQ start is Q + B A; all linear layers) on the same data and token
budget, then is scored on the same test batches.

    python3 bench/lowbit.py --model smollm2-135m --data ../shared/data/codesearchnet-format/python/final/jsonl

Rows:
  qlora             NF4 + double quantization, 4 bits (the anchor)
  hqq-2bit          HQQ at 2 bits (groups of 64, zero point from its proximal solver): the naive 2-bit option
  lowra-B           LowRA at B average bits (B in --lowra-bits, default 4,3,2.5,2,1.75,1.5): per-channel 1/2/4
                    bits with Lloyd-Max tables, exact precision assignment, LoftQ init (5 rounds)
  qblora            Q-BLoRA (lambda 2) on the NF4 base: as many trainable parameters as LoRA at the same r
  qablora           QA-BLoRA on the asymmetric 4-bit base, then merged into a pure 4-bit model
  qlora merged->nf4 the QLoRA adapter merged into the float weights and re-quantized to NF4 (what a
                    user does without QA-BLoRA), scored on the same batches
  qablora merged    the QA-BLoRA merge (pure 4-bit), scored on the same batches

Columns: base code bits per weight, peak GPU memory, train time, ms/step, tok/s,
test perplexity, trainable / total parameters.

Writes OUT_DIR/lowbit-<label>-<device>.{json,md} and, with matplotlib, two PNGs:
perplexity against bits and perplexity against memory. --plot FILE.json redraws them.
"""
import argparse
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from table3 import Runner, device_name, log, md_table, pyplot, run_args, save_plot  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_args(ap, tokens=1_000_000, per="row")
    ap.add_argument("--lowra-bits", default="4,3,2.5,2,1.75,1.5")
    ap.add_argument("--rows", default="qlora,hqq-2bit,lowra,qblora,qablora,merges")
    ap.add_argument("--loftq-iters", type=int, default=-1, help="lowra rows: LoftQ rounds (-1: the method's 5)")
    ap.add_argument("--label", default="")
    ap.add_argument("--work", default="/tmp/lowbit")
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--plot", help="only redraw the PNGs of this result JSON")
    a = ap.parse_args()
    a.no_ppl = False
    if a.plot:
        plot(json.load(open(a.plot)), os.path.splitext(a.plot)[0])
        return
    if not a.model or not a.data:
        ap.error("--model and --data are required")
    label = a.label or os.path.basename(a.model.rstrip("/")).replace(".gguf", "")
    steps = max(1, a.tokens // (a.seq_len * a.batch_size))
    rows = set(a.rows.split(","))
    r = Runner(a)
    res = {}
    lora = ["--lora-r", "8", "--lora-alpha", "8", "--target", "all-linear"]  # scale 1: LoftQ's start is exact
    log(f"{label}: {steps} steps x {a.batch_size} x {a.seq_len} tokens per row on {a.device}")

    def row(name, bits, fn):
        try:
            t = fn()
            t["bits"] = bits
            t["ms_per_step"] = 1000.0 * t["train_s"] / steps
            res[name] = t
        except Exception as e:  # one failing row is reported, the table still gets written
            log(f"{name}: FAILED: {e}")
            res[name] = {"error": str(e), "bits": bits}

    def train(name, method, extra=()):
        return lambda: r.train(name, a.model, method, steps, 3e-4, lora + list(extra))

    if "qlora" in rows or "merges" in rows:
        row("qlora", 4.0, train("qlora", "qlora"))
    if "hqq-2bit" in rows:
        row("hqq-2bit", 2.0, train("hqq-2bit", "hqq-lora", ["--hqq-bits", "2"]))
    if "lowra" in rows:
        for b in a.lowra_bits.split(","):
            row(f"lowra-{b}", float(b), train(f"lowra-{b}", "lowra",
                                               ["--lowra-bits", b, "--loftq-iters", str(a.loftq_iters)]))
    if "qblora" in rows:
        row("qblora", 4.0, train("qblora", "qblora", ["--blora-lambda", "2"]))
    if "qablora" in rows or "merges" in rows:
        row("qablora", 4.0, train("qablora", "qablora"))
    if "merges" in rows:
        if "error" not in res.get("qlora", {"error": 1}):
            def qlora_nf4():
                q = res["qlora"]
                merged = os.path.join(r.work, "qlora-merged")
                r.export("qlora-merge", ["--model", a.model, "--adapter", os.path.join(q["out"], "adapter"),
                                         "--method", "qlora", "--merge", "--dtype", "f32", "--out", merged])
                t = {k: q.get(k) for k in ("train_s", "tokens", "tok_s", "peak_gib", "trainable", "total")}
                t["ppl"] = r.evaluate("qlora-merged-nf4", merged, "qlora")
                return t
            row("qlora merged->nf4", 4.0, qlora_nf4)
        if "error" not in res.get("qablora", {"error": 1}):
            def qablora_merged():
                q = res["qablora"]
                merged = os.path.join(r.work, "qablora-merged")
                r.export("qablora-merge", ["--model", a.model, "--adapter", os.path.join(q["out"], "adapter"),
                                           "--method", "qablora", "--merge", "--out", merged])
                t = {k: q.get(k) for k in ("train_s", "tokens", "tok_s", "peak_gib", "trainable", "total")}
                t["ppl"] = r.evaluate("qablora-merged", merged, "qablora")
                t["adapter_ppl"] = q.get("ppl")
                return t
            row("qablora merged", 4.0, qablora_merged)

    dev = device_name(a.device)
    doc = {"model": a.model, "label": label, "device": dev, "date": datetime.date.today().isoformat(), "data": a.data,
           "steps": steps, "batch_size": a.batch_size, "seq_len": a.seq_len,
           "tokens_per_row": steps * a.batch_size * a.seq_len,
           "eval": f"test split, {a.eval_batches} batches of {a.batch_size} x {a.seq_len}",
           "paper_llama2_7b_wikitext2": {"4": 5.25, "2": 6.60, "1.75": 7.76, "1.5": 9.38}, "rows": res}
    ql = res.get("qlora", {})
    s = {}
    for n, t in res.items():
        if n != "qlora" and t.get("ppl") and ql.get("ppl"):
            s[f"{n}_ppl_over_qlora"] = t["ppl"] / ql["ppl"]
        if n.startswith("lowra") and t.get("ms_per_step") and ql.get("ms_per_step"):
            s[f"{n}_step_time_over_qlora"] = t["ms_per_step"] / ql["ms_per_step"]
    doc["summary"] = s
    os.makedirs(a.out_dir, exist_ok=True)
    base = os.path.join(a.out_dir, f"lowbit-{label}-{dev}")
    json.dump(doc, open(base + ".json", "w"), indent=1)
    open(base + ".md", "w").write(markdown(doc))
    plot(doc, base)
    log(f"wrote {base}.json / .md")
    sys.stdout.write(markdown(doc))


def markdown(doc):
    head = [f"### Low-bit bases on {doc['label']} ({doc['device']}, {doc['date']})", "",
            f"{doc['tokens_per_row']:,} training tokens per row ({doc['steps']} steps x {doc['batch_size']} x "
            f"{doc['seq_len']}), LoRA r 8 alpha 8 on every linear layer; perplexity: {doc['eval']}.", ""]
    return md_table(head, "row", [("base bits", "bits", "{:g}"), ("peak GPU memory (GiB)", "peak_gib", "{:.2f}"),
                                  ("train time (s)", "train_s", "{:.1f}"), ("ms/step", "ms_per_step", "{:.1f}"),
                                  ("tok/s", "tok_s", "{:,.0f}"), ("perplexity", "ppl", "{:.3f}"),
                                  ("trainable / total params", ("trainable", "total"), "{:,}")], doc)


def plot(doc, base):
    plt = pyplot("PNGs skipped (bench/lowbit.py --plot FILE.json redraws them)")
    if plt is None:
        return
    rows = {n: t for n, t in doc["rows"].items() if t.get("ppl") and "merged" not in n}
    for key, xlabel, suffix in (("bits", "base code bits per weight", "bits"),
                                ("peak_gib", "peak GPU memory (GiB)", "memory")):
        pts = [(n, t[key], t["ppl"]) for n, t in rows.items() if t.get(key)]
        if not pts:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        lw = sorted((x, p) for n, x, p in pts if n.startswith("lowra"))
        if lw:
            ax.plot([x for x, _ in lw], [p for _, p in lw], "-o", label="LowRA")
        for n, x, p in pts:
            if not n.startswith("lowra"):
                ax.scatter(x, p, marker="s")
            ax.annotate(n, (x, p), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test perplexity")
        if lw:
            ax.legend(fontsize=8)
        save_plot(fig, ax, f"Low-bit bases on {doc['label']} ({doc['device']}, {doc['date']})", f"{base}-{suffix}.png")


if __name__ == "__main__":
    main()
