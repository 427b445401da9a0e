#!/usr/bin/env python3
"""Builds a CodeSearchNet-format corpus from a local tree of Python sources.

Run by `qtrain prepare` (launch/cmd_prepare.cpp); usable on its own:
  python3 prepare_csn.py --from DIR --out ROOT [--repo NAME] [--shard N]

Every function and method (decorators included) found by Python's `ast`
becomes one record with the CodeSearchNet fields: repo, path, func_name,
original_string, language, code, code_tokens, docstring, docstring_tokens,
sha, url, partition. Files go to train/valid/test 90/5/5 by a hash of their
path (md5 of the relative path, mod 100), so one file never straddles two
splits. Output: ROOT/python/final/jsonl/{split}/python_{split}_{N}.jsonl.gz.
Files that do not parse (Python 2, syntax errors, bad encodings) are skipped
and counted. Prints one JSON line of counts.
"""
import argparse
import ast
import gzip
import hashlib
import io
import json
import os
import re
import sys
import textwrap
import tokenize

SPLITS = ("train", "valid", "test")


def split_of(rel_path):
    h = int(hashlib.md5(rel_path.encode("utf-8")).hexdigest(), 16) % 100
    return "train" if h < 90 else "valid" if h < 95 else "test"


def code_tokens(code, docstring_node_line):
    """Python tokens of the function, without comments, layout or the docstring."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                            tokenize.DEDENT, tokenize.ENDMARKER):
                continue
            if tok.type == tokenize.STRING and tok.start[0] == docstring_node_line:
                continue
            out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return out


def docstring_tokens(doc):
    first = doc.strip().split("\n\n")[0]
    return re.findall(r"\w+|[^\w\s]", first)


def functions(tree):
    """(qualified name, node) for every function, methods and nested ones included."""
    stack = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                yield name, child
                stack.append((name + ".", child))
            elif isinstance(child, ast.ClassDef):
                stack.append((prefix + child.name + ".", child))
            else:
                stack.append((prefix, child))


def records(source, rel_path, repo, sha):
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    for name, fn in functions(tree):
        start = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
        end = fn.end_lineno
        code = textwrap.dedent("".join(lines[start - 1:end]))
        doc = ast.get_docstring(fn) or ""
        doc_line = None
        if fn.body and isinstance(fn.body[0], ast.Expr) and isinstance(getattr(fn.body[0], "value", None), ast.Constant) \
                and isinstance(fn.body[0].value.value, str):
            doc_line = fn.body[0].lineno - start + 1
        yield {
            "repo": repo,
            "path": rel_path,
            "func_name": name,
            "original_string": code,
            "language": "python",
            "code": code,
            "code_tokens": code_tokens(code, doc_line),
            "docstring": doc,
            "docstring_tokens": docstring_tokens(doc) if doc else [],
            "sha": sha,
            "url": "%s/%s#L%d-L%d" % (repo, rel_path, start, end),
            "partition": split_of(rel_path),
        }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--repo", default="")
    ap.add_argument("--shard", type=int, default=0)
    a = ap.parse_args()
    if not os.path.isdir(a.src):
        print("prepare: --from %s is not a directory" % a.src, file=sys.stderr)
        return 2
    repo = a.repo or os.path.basename(os.path.abspath(a.src))
    outs, counts = {}, {s: 0 for s in SPLITS}
    files = skipped = 0
    for split in SPLITS:
        d = os.path.join(a.out, "python", "final", "jsonl", split)
        os.makedirs(d, exist_ok=True)
        outs[split] = gzip.open(os.path.join(d, "python_%s_%d.jsonl.gz" % (split, a.shard)), "wt", encoding="utf-8")
    for root, dirs, names in os.walk(a.src):
        dirs.sort()
        for n in sorted(names):
            if not n.endswith(".py"):
                continue
            full = os.path.join(root, n)
            rel = os.path.relpath(full, a.src).replace(os.sep, "/")
            try:
                with open(full, "rb") as f:
                    raw = f.read()
                source = raw.decode("utf-8")
                recs = list(records(source, rel, repo, hashlib.sha1(raw).hexdigest()))
            except (SyntaxError, UnicodeDecodeError, ValueError, RecursionError, MemoryError):
                skipped += 1
                continue
            files += 1
            for r in recs:
                outs[r["partition"]].write(json.dumps(r, ensure_ascii=False) + "\n")
                counts[r["partition"]] += 1
    for f in outs.values():
        f.close()
    print(json.dumps({"out": a.out, "files": files, "skipped_files": skipped, "functions": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
