"""A synthetic llm.c token shard for the training benchmarks: header of 256 int32
(magic 20240520, version 1, count), then uniform random uint16 tokens below the vocab.
  make_tokens.py OUT.bin NTOKENS VOCAB [SEED]"""
import sys

import numpy as np

out, n, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 0
h = np.zeros(256, np.int32)
h[:3] = [20240520, 1, n]
with open(out, "wb") as f:
    f.write(h.tobytes())
    f.write(np.random.default_rng(seed).integers(0, min(vocab, 65535), n, dtype=np.uint16).tobytes())
