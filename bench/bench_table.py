#!/usr/bin/env python3
"""The qtrain-vs-anchors rows of bench/train_vs_hf.py: which anchor was fastest, the
JSON rows, the markdown table, and merging two runs' files (stdlib only: it runs
on a machine without torch, and its test is tests/scripts/bench_table.sh).

    bench_table.py merge A.json B.json ... -o OUT.json   # rows of later files win; writes OUT.md beside
    bench_table.py render FILE.json                      # (re)writes FILE.md

A result (what train_vs_hf.py measures for one row) is a dict:
  name, config, table, method, qtrain {tok_s, peak_gib, alloc_peak_gib, trainable_params, total_params, setup_s},
  anchors {label: {tok_s, peak_gib, torch_max_alloc_gib, trainable_params, ...}},
  anchor_errors [{"anchor": key, "error": text}], skipped (why the row did not run), error (qtrain's failure).
"""
import argparse
import json
import os
import sys

# The baseline anchor of each base: the one every earlier result was compared with.
BASELINE = ("HF+peft", "HF+peft+bnb", "HF+peft+hqq", "HF")


def ratio(a, b):
    return a / b if a and b else None


def fastest_anchor(anchors):
    """(label, numbers) of the anchor with the highest tok/s that ran, or (None, None)."""
    ran = [(v["tok_s"], k) for k, v in anchors.items() if v.get("tok_s")]
    if not ran:
        return None, None
    label = max(ran)[1]
    return label, anchors[label]


def baseline_anchor(anchors):
    for k in anchors:
        if k in BASELINE:
            return k, anchors[k]
    return None, None


def json_rows(res):
    """The two rows (tok/s, peak memory) of one result in the schema that `qtrain report --bench`
    plots ({config, metric, qtrain, anchor, ratio}; "anchor" is the baseline HF anchor, as before),
    plus every anchor, the fastest one and the ratio to it."""
    q = res.get("qtrain") or {}
    anchors = res.get("anchors") or {}
    base_label, base = baseline_anchor(anchors)
    fast_label, fast = fastest_anchor(anchors)
    common = dict(row=res["name"], config=res["config"], table=res.get("table"), method=res.get("method"),
                  baseline_anchor=base_label, fastest_anchor=fast_label, anchor_errors=res.get("anchor_errors", []),
                  error=res.get("error"), skipped=res.get("skipped"))
    tok = dict(common, metric="tok/s", qtrain=q.get("tok_s"), anchor=(base or {}).get("tok_s"),
               ratio=ratio(q.get("tok_s"), (base or {}).get("tok_s")),
               anchors={k: v.get("tok_s") for k, v in anchors.items()},
               ratio_fastest=ratio(q.get("tok_s"), (fast or {}).get("tok_s")),
               trainable_params=q.get("trainable_params"), total_params=q.get("total_params"),
               anchor_trainable_params={k: v.get("trainable_params") for k, v in anchors.items()},
               setup_s=q.get("setup_s"), anchor_setup_s={k: v.get("setup_s") for k, v in anchors.items()})
    # Legacy keys of the Liger anchor (README rows and older readers use them).
    for label, v in anchors.items():
        if label.endswith("+Liger"):
            tok["anchor_liger"], tok["ratio_liger"] = v.get("tok_s"), ratio(q.get("tok_s"), v.get("tok_s"))
        if label == "Unsloth":
            tok["anchor_unsloth"], tok["ratio_unsloth"] = v.get("tok_s"), ratio(q.get("tok_s"), v.get("tok_s"))
    mem = dict(common, metric="peak GPU mem GiB (nvidia-smi)", qtrain=q.get("peak_gib"),
               anchor=(base or {}).get("peak_gib"), ratio=ratio(q.get("peak_gib"), (base or {}).get("peak_gib")),
               anchors={k: v.get("peak_gib") for k, v in anchors.items()},
               ratio_fastest=ratio(q.get("peak_gib"), (fast or {}).get("peak_gib")),
               qtrain_allocator_peak_gib=q.get("alloc_peak_gib"),
               anchor_torch_max_allocated_gib={k: v.get("torch_max_alloc_gib") for k, v in anchors.items()})
    return [tok, mem]


def fmt_num(v, digits=3):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def fmt_params(t, total):
    if not t:
        return "–"
    s = f"{t / 1e6:.2f}M" if t >= 1e5 else f"{t / 1e3:.1f}k"
    return s + (f" ({100.0 * t / total:.3f}%)" if total else "")


def md_cell(s):
    return str(s).replace("|", "\\|").replace("\n", " ")


def markdown(doc):
    """One table per benchmark table name (shape), rows in the order they were run."""
    results = doc.get("results", [])
    tables = []
    for r in results:
        if r.get("table") not in tables:
            tables.append(r.get("table"))
    out = [f"# {doc.get('title', 'qtrain against HF anchors')}", "",
           f"{doc.get('device', '?')}, {doc.get('date', '?')}; random-init models of the named shapes, synthetic tokens; "
           "median tok/s of the steps after warmup; peak memory as nvidia-smi sees the process (CUDA context included). "
           "Trainable parameters as each tool counts them (qtrain's run.json; peft's get_nb_trainable_parameters). "
           "Each anchor ran in its own process, one after the other, on the same GPU.", ""]
    for key, lead in (("run", "Run: "), ("steps", "Steps per process: "), ("rebuilt", "Rebuilt: ")):
        if isinstance(doc.get(key), str):  # a merged table's provenance (bench_table.py merge; see the JSON)
            out += [lead + doc[key], ""]
    if doc.get("versions"):
        out += ["Anchor software: " + ", ".join(f"{k} {v}" for k, v in sorted(doc["versions"].items())), ""]
    for t in tables:
        rows = [r for r in results if r.get("table") == t]
        head = (doc.get("table_titles") or {}).get(t, t or "")
        out += [f"## {head}", "",
                "| method | trainable params (qtrain / peft) | qtrain tok/s | baseline anchor tok/s | × baseline | "
                "fastest anchor tok/s | × fastest | peak GiB qtrain / baseline / fastest | notes |",
                "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            q = r.get("qtrain") or {}
            anchors = r.get("anchors") or {}
            bl, b = baseline_anchor(anchors)
            fl, f = fastest_anchor(anchors)
            b, f = b or {}, f or {}
            peft_t = b.get("trainable_params")
            params = f"{fmt_params(q.get('trainable_params'), q.get('total_params'))} / {fmt_params(peft_t, b.get('total_params'))}"
            notes = []
            if r.get("skipped"):
                notes.append("not run: " + r["skipped"])
            if r.get("error"):
                notes.append("qtrain failed: " + r["error"])
            for e in r.get("anchor_errors", []):
                first = e["error"].splitlines()[0] if e["error"] else ""  # (the JSON keeps where it was raised)
                notes.append(f"{e['anchor']} {'' if first.startswith('not run') else 'failed: '}{first}")
            others = [f"{k} {fmt_num(v.get('tok_s'))}" for k, v in anchors.items() if k not in (bl, fl) and v.get("tok_s")]
            if others:  # every anchor that ran is in the table, not only the baseline and the fastest
                notes.append("also " + ", ".join(others) + " tok/s")
            reused = sorted({v["reused_from"] for v in anchors.values() if v.get("reused_from")})
            if reused:
                notes.append("anchors as measured for " + ", ".join(reused) + " in this run")
            if r.get("note"):
                notes.append(r["note"])
            if q.get("setup_s") is not None and r.get("show_setup"):
                notes.append(f"setup qtrain {q['setup_s']:.0f} s" +
                             (f", {bl} {b['setup_s']:.0f} s" if b.get("setup_s") is not None else ""))
            out.append("| " + " | ".join(md_cell(c) for c in (
                r.get("method", r["name"]), params, fmt_num(q.get("tok_s")),
                f"{fmt_num(b.get('tok_s'))} ({bl})" if bl else "–",
                fmt_num(ratio(q.get("tok_s"), b.get("tok_s"))) + ("×" if ratio(q.get("tok_s"), b.get("tok_s")) else ""),
                f"{fmt_num(f.get('tok_s'))} ({fl})" if fl else "–",
                fmt_num(ratio(q.get("tok_s"), f.get("tok_s"))) + ("×" if ratio(q.get("tok_s"), f.get("tok_s")) else ""),
                " / ".join(fmt_num(x) for x in (q.get("peak_gib"), b.get("peak_gib"), f.get("peak_gib"))),
                "; ".join(notes))) + " |")
        out.append("")
        out += [f"- {md_cell(r.get('method', r['name']))}: {md_cell(r.get('config', ''))}" for r in rows]
        # Anchors a row does not apply to, once per reason under the table rather than in every row.
        why_not = {}
        for r in rows:
            for key, why in (r.get("anchors_not_run") or {}).items():
                why_not.setdefault((key, why), []).append(r.get("method", r["name"]))
        out.append("")
        for (key, why), methods in why_not.items():
            out.append(f"No {key} anchor for {', '.join(methods)}: {why}.")
        if why_not:
            out.append("")
    return "\n".join(out)


def document(results, **meta):
    doc = dict(meta)
    doc["results"] = results
    doc["rows"] = [row for r in results if not r.get("skipped") for row in json_rows(r)]
    return doc


def write(doc, path):
    """JSON at path, markdown beside it (same name, .md)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
    os.replace(tmp, path)
    with open(os.path.splitext(path)[0] + ".md", "w") as f:
        f.write(markdown(doc))


def merge(docs):
    """Results by row name, later documents winning; metadata of the last; versions united."""
    order, by_name, meta, versions, titles = [], {}, {}, {}, {}
    for d in docs:
        for r in d.get("results", []):
            if r["name"] not in by_name:
                order.append(r["name"])
            by_name[r["name"]] = r
        versions.update(d.get("versions") or {})
        titles.update(d.get("table_titles") or {})
        meta.update({k: v for k, v in d.items() if k not in ("results", "rows", "versions", "table_titles")})
    return document([by_name[n] for n in order], versions=versions, table_titles=titles, **meta)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("merge")
    m.add_argument("inputs", nargs="+")
    m.add_argument("-o", "--out", required=True)
    r = sub.add_parser("render")
    r.add_argument("file")
    args = ap.parse_args()
    try:
        if args.cmd == "merge":
            docs = [json.load(open(p)) for p in args.inputs]
            write(merge(docs), args.out)
            print(f"wrote {args.out} and {os.path.splitext(args.out)[0]}.md")
        else:
            doc = json.load(open(args.file))
            if "results" not in doc:
                raise ValueError("no 'results' list (not a file written by train_vs_hf.py --table)")
            with open(os.path.splitext(args.file)[0] + ".md", "w") as f:
                f.write(markdown(doc))
    except (OSError, ValueError, KeyError) as e:
        print(f"bench_table.py: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
