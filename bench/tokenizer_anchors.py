#!/usr/bin/env python3
"""Anchors for bench_tokenizer: tiktoken and HF tokenizers, both built from the
same GPT-2 encoder.json/vocab.bpe (no hub download), encoding the same text as
qtrain: the `code` field of every record of the CodeSearchNet train split in
../shared, one document at a time, on one thread. Prints one JSON object:
{"bytes", "docs", "tiktoken": {"mb_s_cpu", "mb_s_wall", "tokens"}, "hf_tokenizers": {...}, versions}.
Usage: tokenizer_anchors.py CORPUS_SPLIT_DIR TOKENIZER_DIR [REPEATS]
"""
import glob
import gzip
import json
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tiktoken  # noqa: E402
import tiktoken.load  # noqa: E402
import tokenizers  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402

GPT2_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def corpus(split_dir):
    docs = []
    for path in sorted(glob.glob(os.path.join(split_dir, "*.jsonl.gz"))):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                docs.append(json.loads(line)["code"])
    return docs


def best_time(fn, docs, repeats):
    """Best of `repeats` passes, as (wall seconds, CPU seconds of this process, tokens).
    CPU time is the fair single-core figure on a shared machine."""
    best_wall, best_cpu, tokens = float("inf"), float("inf"), 0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        tokens = sum(len(fn(d)) for d in docs)
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    return best_wall, best_cpu, tokens


def main():
    split_dir, tok_dir = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    docs = corpus(split_dir)
    nbytes = sum(len(d.encode("utf-8")) for d in docs)
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(os.path.join(tok_dir, "vocab.bpe"),
                                                          os.path.join(tok_dir, "encoder.json"))
    tt = tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_PAT, mergeable_ranks=ranks,
                           special_tokens={"<|endoftext|>": 50256})
    hf = Tokenizer(models.BPE.from_file(os.path.join(tok_dir, "encoder.json"), os.path.join(tok_dir, "vocab.bpe")))
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    out = {"bytes": nbytes, "docs": len(docs), "tiktoken_version": tiktoken.__version__,
           "tokenizers_version": tokenizers.__version__}
    for name, fn in (("tiktoken", tt.encode_ordinary), ("hf_tokenizers", lambda d: hf.encode(d).ids)):
        fn(docs[0])  # warm up
        wall, cpu, tokens = best_time(fn, docs, repeats)
        out[name] = {"mb_s_cpu": nbytes / cpu / 1e6, "mb_s_wall": nbytes / wall / 1e6, "tokens": tokens}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
