# Sourced by the scripts that train on token shards they make.
# random_shard FILE NTOKENS VOCAB: an llm.c .bin shard (256 int32 header: magic 20240520,
# version 1, count; then uint16 ids) of NTOKENS ids below VOCAB from Python's random
# seeded 0, so the same bytes on every machine.
random_shard() {
  python3 - "$1" "$2" "$3" <<'PY'
import array, random, sys
path, n, vocab = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
random.seed(0)
with open(path, "wb") as f:
    array.array("i", [20240520, 1, n] + [0] * 253).tofile(f)
    array.array("H", (random.randrange(vocab) for _ in range(n))).tofile(f)
PY
}
