#!/usr/bin/env python3
"""Run reports and bench plots for qtrain (run by `qtrain report`, which
carries this file inside its binary; it also runs on its own).

    report.py RUN_DIR                      -> RUN_DIR/report.md + RUN_DIR/plots/*.png
    report.py --bench FILE.json [--out P]  -> P (default FILE.png)

RUN_DIR is a `qtrain train --out` directory: metrics.jsonl (one line per step;
eval rows carry "kind": "eval") and run.json (model, method, parameter counts,
device, config). A bench file is one of bench/results/*.json: rows of
{config, metric, qtrain, anchor, ratio} become bars of qtrain against its
anchor, one panel per metric; any other list of rows becomes a table.

Needs matplotlib (Debian: apt-get install python3-matplotlib). Exit 2 on bad
input, with one line naming the file.
"""
import json
import math
import os
import statistics
import sys
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import matplotlib.transforms  # noqa: E402

QTRAIN_BLUE, ANCHOR_GREY, EVAL_ORANGE, FASTEST_TAN = "#1f5fa8", "#9a9a9a", "#e07b00", "#d9a441"


class BadInput(Exception):
    pass


# ------------------------------------------------------------ run reports

def read_metrics(path):
    steps, evals = [], []
    if not os.path.exists(path):
        raise BadInput(f"{path}: not found (is this a `qtrain train --out` directory?)")
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                # The last line of a run killed mid-write may be torn: skip it, say so.
                print(f"report: {path}:{n}: not JSON, skipped", file=sys.stderr)
                continue
            if not isinstance(row, dict) or "step" not in row:
                raise BadInput(f"{path}:{n}: field 'step' is missing")
            (evals if row.get("kind") == "eval" else steps).append(row)
    if not steps and not evals:
        raise BadInput(f"{path}: no metrics rows")
    return steps, evals


def series(rows, key):
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
    return [p[0] for p in pts], [p[1] for p in pts]


def ema(ys, span):
    out, m, a = [], None, 2.0 / (span + 1)
    for y in ys:
        m = y if m is None else a * y + (1 - a) * m
        out.append(m)
    return out


def new_axes(title, ylabel):
    fig, ax = plt.subplots(figsize=(7.5, 3.6), dpi=110)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_loss(steps, evals, path):
    fig, ax = new_axes("Loss", "loss (nats / token)")
    x, y = series(steps, "loss")
    if x:
        smooth = len(y) >= 30
        ax.plot(x, y, color=QTRAIN_BLUE, lw=1, alpha=0.35 if smooth else 1, label="train")
        if smooth:
            ax.plot(x, ema(y, max(5, len(y) // 20)), color=QTRAIN_BLUE, lw=1.8, label="train (EMA)")
    ex, ey = series(evals, "eval_loss")
    if ex:
        ax.plot(ex, ey, "o-", color=EVAL_ORANGE, lw=1.5, ms=5, label="eval")
    ax.legend(frameon=False)
    save(fig, path)


def plot_simple(steps, key, title, ylabel, path, logy=False):
    x, y = series(steps, key)
    if not x:
        return False
    fig, ax = new_axes(title, ylabel)
    ax.plot(x, y, color=QTRAIN_BLUE, lw=1.2, marker="o" if len(x) <= 20 else None, ms=3)
    if logy and min(y) > 0 and max(y) / min(y) > 50:
        ax.set_yscale("log")
    save(fig, path)
    return True


def plot_throughput(steps, path):
    x, y = series(steps, "tokens_per_s")
    if not x:
        return False
    fig, ax = new_axes("Throughput", "tokens / s")
    ax.plot(x, y, color=QTRAIN_BLUE, lw=1.2, marker="o" if len(x) <= 20 else None, ms=3)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    # MFU is tokens/s times a constant (FLOPs per token / peak): a second scale on the same line.
    ratios = [r["mfu"] / r["tokens_per_s"] for r in steps
              if isinstance(r.get("mfu"), (int, float)) and isinstance(r.get("tokens_per_s"), (int, float))
              and r["tokens_per_s"] > 0]
    if ratios:
        k = 100 * statistics.median(ratios)
        ax.secondary_yaxis("right", functions=(lambda t: t * k, lambda m: m / k)).set_ylabel("MFU (%)")
    save(fig, path)
    return True


def plot_memory(steps, path):
    px, py = series(steps, "gpu_peak_gib")
    rx, ry = series(steps, "gpu_reserved_gib")
    if not px and not rx:
        return False
    fig, ax = new_axes("GPU memory", "GiB")
    if px:
        ax.plot(px, py, color=QTRAIN_BLUE, lw=1.5, label="allocator peak")
    if rx:
        ax.plot(rx, ry, color=ANCHOR_GREY, lw=1.5, ls="--", label="reserved")
    ax.set_ylim(0, 1.15 * max(py + ry))
    ax.legend(frameon=False, loc="lower right")
    save(fig, path)
    return True


def fmt_count(n):
    for unit, div in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}"
    return str(n)


def num(v, spec):
    """v formatted with spec when it is a number; a hand-edited metrics row may hold anything ("?" then)."""
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "?"


def summary_rows(run, steps, evals):
    rows = []
    if run:
        rows.append(("model", run.get("model", "?")))
        rows.append(("method", run.get("method", "?")))
        tp, total = run.get("trainable_params"), run.get("total_params")
        if isinstance(tp, int) and isinstance(total, int) and total > 0:
            rows.append(("parameters", f"{fmt_count(tp)} trainable of {fmt_count(total)} ({100 * tp / total:.3f}%)"))
        rows.append(("device", f"{run.get('device', '?')} x {run.get('world_size', 1)}"))
        cfg = run.get("config", {})
        keys = ["seq_len", "batch_size", "grad_accum", "lr", "schedule", "lora_r", "lora_alpha", "data"]
        got = [f"{k} {cfg[k]}" for k in keys if k in cfg]
        if got:
            rows.append(("config", ", ".join(got)))
    if steps:
        last = steps[-1]
        rows.append(("steps", str(last["step"])))
        rows.append(("final train loss", num(last.get("loss"), ".4f")))
        tps = [r["tokens_per_s"] for r in steps[1:] or steps if isinstance(r.get("tokens_per_s"), (int, float))]
        if tps:
            rows.append(("tokens/s (median, first step left out)", f"{statistics.median(tps):,.0f}"))
        mfu = [r["mfu"] for r in steps[1:] or steps if isinstance(r.get("mfu"), (int, float))]
        if mfu:
            rows.append(("MFU (median)", f"{100 * statistics.median(mfu):.1f}%"))
        if isinstance(last.get("elapsed_s"), (int, float)):
            rows.append(("wall time", f"{last['elapsed_s']:.1f} s"))
        peak = [r["gpu_peak_gib"] for r in steps if isinstance(r.get("gpu_peak_gib"), (int, float))]
        if peak:
            rows.append(("GPU peak (allocator)", f"{max(peak):.2f} GiB"))
    if evals:
        e = evals[-1]
        rows.append(("final eval loss / ppl", f"{num(e.get('eval_loss'), '.4f')} / {num(e.get('eval_ppl'), '.3f')}"
                     f" (step {e['step']}, {e.get('eval_tokens', '?')} tokens)"))
    return rows


def md_escape(s):
    return str(s).replace("|", "\\|")


def run_report(run_dir):
    if not os.path.isdir(run_dir):
        raise BadInput(f"{run_dir}: not a directory")
    steps, evals = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    run = None
    run_path = os.path.join(run_dir, "run.json")
    if os.path.exists(run_path):
        try:
            with open(run_path) as f:
                run = json.load(f)
        except json.JSONDecodeError as e:
            raise BadInput(f"{run_path}: not valid JSON ({e})")
    plots = os.path.join(run_dir, "plots")
    os.makedirs(plots, exist_ok=True)
    made = []  # (title, file name)

    plot_loss(steps, evals, os.path.join(plots, "loss.png"))
    made.append(("Loss and eval loss", "loss.png"))
    for ok, title, name in (
            (plot_throughput(steps, os.path.join(plots, "throughput.png")), "Throughput", "throughput.png"),
            (plot_simple(steps, "lr", "Learning rate", "lr", os.path.join(plots, "lr.png")), "Learning rate", "lr.png"),
            (plot_simple(steps, "grad_norm", "Gradient norm (before clipping)", "L2 norm",
                         os.path.join(plots, "grad_norm.png"), logy=True), "Gradient norm", "grad_norm.png"),
            (plot_memory(steps, os.path.join(plots, "gpu_memory.png")), "GPU memory", "gpu_memory.png")):
        if ok:
            made.append((title, name))

    title = os.path.basename(os.path.normpath(os.path.abspath(run_dir)))
    lines = [f"# Run report: {title}", ""]
    if run is None:
        lines += ["(no run.json beside metrics.jsonl: model and method unknown)", ""]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {md_escape(k)} | {md_escape(v)} |" for k, v in summary_rows(run, steps, evals)]
    lines.append("")
    for t, name in made:
        lines += [f"## {t}", "", f"![{t}](plots/{name})", ""]
    if not any(n == "gpu_memory.png" for _, n in made):
        lines += ["(no GPU memory in metrics.jsonl: a CPU run)", ""]
    with open(os.path.join(run_dir, "report.md"), "w") as f:
        f.write("\n".join(lines))
    print(f"wrote {os.path.join(run_dir, 'report.md')} and {len(made)} plots in {plots}")


# ------------------------------------------------------------ bench plots

def is_comparison(rows):
    return rows and all(isinstance(r, dict) and "qtrain" in r and "anchor" in r and "metric" in r for r in rows)


def fastest_value(row):
    """(value, name) of the row's fastest anchor when it is not its baseline anchor, else (None, None)."""
    name, base = row.get("fastest_anchor"), row.get("baseline_anchor")
    v = (row.get("anchors") or {}).get(name) if name else None
    if not isinstance(v, (int, float)) or name == base:
        return None, None
    return v, name


def plot_comparison(doc, rows, out, title):
    metrics = []
    for r in rows:
        if r["metric"] not in metrics:
            metrics.append(r["metric"])
    heights = [max(1, len([r for r in rows if r["metric"] == m])) for m in metrics]
    fig_h = 0.55 * sum(heights) + 1.1 * len(metrics) + 0.9
    fig, axes = plt.subplots(len(metrics), 1, figsize=(9, fig_h), dpi=110, gridspec_kw={"height_ratios": heights},
                             squeeze=False)
    anchor_name = doc.get("anchor") if isinstance(doc.get("anchor"), str) else "anchor"
    for ax, m in zip(axes[:, 0], metrics):
        rs = [r for r in rows if r["metric"] == m]
        labels = [textwrap.fill(str(r.get("config", "?")), 44) for r in rs]
        q = [r["qtrain"] if isinstance(r["qtrain"], (int, float)) else 0 for r in rs]
        a = [r["anchor"] if isinstance(r["anchor"], (int, float)) else 0 for r in rs]
        # train_vs_hf rows also name the fastest anchor that ran (Liger, Unsloth, llm.c...): a third bar where it
        # is not the baseline, with qtrain's ratio to it.
        fast = [fastest_value(r) for r in rs]
        third = any(v is not None for v, _ in fast)
        f = [v or 0 for v, _ in fast]
        ys = range(len(rs))
        h = 0.27 if third else 0.38
        off = h if third else h / 2
        ax.barh([y - off for y in ys], q, h, color=QTRAIN_BLUE, label="qtrain")
        ax.barh([y + (0 if third else h / 2) for y in ys], a, h, color=ANCHOR_GREY, label=anchor_name)
        if third:
            ax.barh([y + h for y in ys], f, h, color=FASTEST_TAN, label="fastest anchor, where not the baseline")
        ax.set_yticks(list(ys))
        ax.set_yticklabels(labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_title(m, fontsize=10, loc="left")
        ax.grid(True, axis="x", alpha=0.3)
        top = max(q + a + f + [0])
        positive = [v for v in q + a + f if v > 0]
        log = bool(positive) and max(positive) / min(positive) > 100
        for y, r, qv in zip(ys, rs, q):
            ratio = r.get("ratio")
            if isinstance(ratio, (int, float)):
                ax.text(qv * 1.08 if log else qv + top * 0.01, y - off, f"{ratio:.2f}×", va="center", fontsize=8,
                        color=QTRAIN_BLUE)
        for y, r, (fv, name) in zip(ys, rs, fast):
            rf = r.get("ratio_fastest")
            if fv is not None:
                ax.text(fv * 1.08 if log else fv + top * 0.01, y + h, name + (f": qtrain {rf:.2f}×" if
                        isinstance(rf, (int, float)) else ""), va="center", fontsize=7, color="#7a5a1e")
        if log:
            # Values over orders of magnitude (kernel times): a log axis keeps the small ones visible.
            ax.set_xscale("log")
            ax.set_xlim(min(positive) / 2, top * 3)
        else:
            ax.set_xlim(0, top * 1.12 if top > 0 else 1)
            ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.6g}"))
    fig.suptitle(title, fontsize=11, x=0.01, y=1 - 0.1 / fig_h, ha="left", va="top")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, frameon=False, fontsize=9, loc="upper left", bbox_to_anchor=(0.01, 1 - 0.38 / fig_h),
               ncol=2)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig_h))
    fig.savefig(out)
    plt.close(fig)


def cell(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v)[:40]
    return str(v)[:60]


def plot_table(rows, out, title):
    cols = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and not isinstance(v, (dict, list)):
                cols.append(k)
    data = [[cell(r.get(c, "")) for c in cols] for r in rows]
    fig, ax = plt.subplots(figsize=(min(2 + 1.6 * len(cols), 24), 0.32 * len(rows) + 1.2), dpi=110)
    ax.axis("off")
    t = ax.table(cellText=data, colLabels=cols, loc="upper left", cellLoc="left")
    t.auto_set_font_size(False)
    t.set_fontsize(8)
    t.auto_set_column_width(list(range(len(cols))))
    for (row, _), c in t.get_celld().items():
        if row == 0:
            c.set_facecolor("#dde6f2")
    # The title goes right above the table, and the image is cropped to both:
    # the axes around the table are empty.
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tb = t.get_window_extent(renderer)
    fw, fh = fig.bbox.width, fig.bbox.height
    head = fig.text(tb.x0 / fw, (tb.y1 + 6) / fh, title, fontsize=11, ha="left", va="bottom")
    fig.canvas.draw()
    box = matplotlib.transforms.Bbox.union([tb, head.get_window_extent(renderer)])
    fig.savefig(out, bbox_inches=box.transformed(fig.dpi_scale_trans.inverted()).padded(0.15))
    plt.close(fig)


def find_rows(doc):
    """The row list of a bench file: 'rows', else 'runs' (a list, or named objects), else the first list of objects."""
    if isinstance(doc, list):
        return doc
    for k in ("rows", "runs"):
        v = doc.get(k)
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            return v
        if isinstance(v, dict) and v and all(isinstance(r, dict) for r in v.values()):
            return [{"name": name, **r} for name, r in v.items()]
    for v in doc.values():
        if isinstance(v, list) and v and all(isinstance(r, dict) for r in v):
            return v
    return None


def bench_plot(path, out):
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise BadInput(f"{path}: not found")
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}: not valid JSON ({e})")
    rows = find_rows(doc)
    if not rows:
        raise BadInput(f"{path}: no list of rows to plot (looked for 'rows', 'runs', or a list of objects)")
    meta = doc if isinstance(doc, dict) else {}
    title = " · ".join(str(meta[k]) for k in ("device", "date") if k in meta) or os.path.basename(path)
    title = os.path.basename(path).removesuffix(".json") + ("" if title == os.path.basename(path) else f"  ({title})")
    out = out or os.path.splitext(path)[0] + ".png"
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise BadInput(f"--out {out}: directory {os.path.dirname(os.path.abspath(out))} does not exist")
    if is_comparison(rows):
        plot_comparison(meta, rows, out, title)
    else:
        plot_table(rows, out, title)
    print(f"wrote {out}")


def main(argv):
    if len(argv) >= 2 and argv[0] == "--bench":
        files, out = [], None
        i = 1
        while i < len(argv):
            if argv[i] == "--out" and i + 1 < len(argv):
                out = argv[i + 1]
                i += 2
            else:
                files.append(argv[i])
                i += 1
        if out and len(files) > 1:
            raise BadInput("--out names one PNG: give one bench file with it")
        for f in files:
            bench_plot(f, out)
    elif len(argv) == 1 and not argv[0].startswith("-"):
        run_report(argv[0])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except BadInput as e:
        print(f"qtrain: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # a read-only directory, a full disk: one line, not a traceback
        print(f"qtrain: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        sys.exit(1)
