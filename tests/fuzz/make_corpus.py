#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/corpus/<target>/seed-*: real files from
tests/fixtures and ../shared, cut down to a few KB. Regression inputs (crash-*)
found by fuzzing are kept beside them by hand and never rewritten here.

Run from the repository root: python3 tests/fuzz/make_corpus.py
(standard library only)."""
import gzip
import json
import os
import shutil
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")
SHARED = os.path.join(ROOT, "..", "shared")
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def copy(target, *rel):
    for r in rel:
        with open(os.path.join(FIX, r), "rb") as f:
            put(target, r.replace("/", "-"), f.read())


def safetensors(tensors, metadata=None):
    """tensors: name -> (dtype, shape, raw bytes); as models/safetensors.cpp writes them."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, (dtype, shape, raw) in sorted(tensors.items()):
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-(len(h) + 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def small_bpe(vocab_items, merges, keep):
    """The first `keep` ids of a byte-level vocabulary and the merges that stay inside it."""
    vocab = {t: i for t, i in vocab_items if i < keep}
    kept = [m for m in merges if all(p in vocab for p in m) and "".join(m) in vocab]
    return vocab, kept


def main():
    # safetensors: every dtype, metadata, an empty tensor; the bad fixtures.
    put("safetensors", "dtypes.safetensors", safetensors({
        "a.f32": ("F32", [2, 2], struct.pack("<4f", 1, -2, 3.5, 0)),
        "b.bf16": ("BF16", [3], bytes([0x80, 0x3f, 0, 0xc0, 0x49, 0x40])),
        "c.f16": ("F16", [1, 2], bytes([0, 0x3c, 0, 0xc0])),
        "d.i32": ("I32", [2], struct.pack("<2i", 7, -1)),
        "e.u8": ("U8", [2], b"\x01\xff"), "f.i8": ("I8", [1, 1, 1], b"\x80"),
        "g.empty": ("F32", [0, 4], b""), "h.scalar": ("F32", [], struct.pack("<f", 2)),
    }, {"format": "pt"}))
    copy("safetensors", "bad/header-truncated.safetensors", "bad/offsets-out-of-range.safetensors",
         "bad/unknown-dtype.safetensors", "bad/truncated.safetensors")

    # config.json: GPT-2 and Llama families, a bad one.
    copy("hf_config", "tiny-gpt2/config.json", "tiny-llama/config.json", "tiny-llama-f16/config.json",
         "tiny-llama-bf16-rope500k/config.json", "bad/config-missing-field/config.json",
         "gguf/tiny_llama_config.json")

    # adapter_config.json: LoRA, DoRA, IA3, Q-BLoRA, rank/alpha patterns.
    for d in ["tiny-gpt2-lora", "tiny-gpt2-dora", "tiny-gpt2-ia3", "tiny-gpt2-qblora", "tiny-llama-lora-qv",
              "tiny-llama-lora-pattern", "tiny-llama-ia3", "bad/adapter-r-mismatch"]:
        copy("adapter_config", d + "/adapter_config.json")
    put("adapter_config", "qablora.json", json.dumps(
        {"peft_type": "QABLORA", "r": 4, "lora_alpha": 8, "qablora_tile": [32, 32], "target_modules": ["q_proj"]}))

    # GPT-2 encoder.json + vocab.bpe (split at a NUL byte): the first 300 ids of the real files.
    with open(os.path.join(SHARED, "data", "gpt2-tokenizer", "encoder.json")) as f:
        enc = json.load(f)
    with open(os.path.join(SHARED, "data", "gpt2-tokenizer", "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(l.split(" ")) for l in lines[1:] if l]
    vocab, kept = small_bpe(enc.items(), merges, 300)
    vocab["<|endoftext|>"] = len(vocab)
    put("gpt2_tokenizer", "gpt2-300", json.dumps(vocab) + "\0" + lines[0] + "\n" +
        "\n".join(" ".join(m) for m in kept) + "\n")

    # tokenizer.json (+ NUL + tokenizer_config.json): the fixtures' byte-level and SmolLM forms, cut to 300 ids.
    for name in ["tok_bytelevel", "tok_smollm"]:
        with open(os.path.join(FIX, "data", name, "tokenizer.json"), encoding="utf-8") as f:
            tj = json.load(f)
        ms = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in tj["model"]["merges"]]
        vocab, kept = small_bpe(tj["model"]["vocab"].items(), ms, 300)
        tj["model"]["vocab"], tj["model"]["merges"] = vocab, [list(m) for m in kept]
        tj["added_tokens"] = [t for t in tj["added_tokens"] if t["id"] < 300]
        with open(os.path.join(FIX, "data", name, "tokenizer_config.json"), encoding="utf-8") as f:
            cfg = f.read()
        put("tokenizer_json", name, json.dumps(tj) + "\0" + cfg)

    # JSONL records: CodeSearchNet (real lines, strings cut), instruction, chat, HH-RLHF, text, input_ids.
    path = os.path.join(SHARED, "data", "codesearchnet-format", "python", "final", "jsonl", "valid",
                        "python_valid_0.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        recs = [json.loads(next(f)) for _ in range(2)]
    for i, r in enumerate(recs):
        r = {k: (v[:300] if isinstance(v, str) else v[:20]) for k, v in r.items()}
        put("jsonl_records", "codesearchnet-%d.jsonl" % i, json.dumps(r) + "\n")
    put("jsonl_records", "codesearchnet-hf.jsonl", json.dumps(
        {"func_code_string": "def f(x):\n    return x\n", "func_documentation_string": "Identity."}) + "\n")
    with open(os.path.join(FIX, "data", "alpaca-tiny.jsonl"), encoding="utf-8") as f:
        put("jsonl_records", "alpaca.jsonl", "".join(f.readlines()[:3]))
    put("jsonl_records", "unnatural.jsonl", json.dumps(
        {"instruction": "Add.", "instances": [{"input": "1 2", "output": "3"}]}) + "\n")
    put("jsonl_records", "chat.jsonl", json.dumps({"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "prompter", "text": "Hi"},
        {"role": "assistant", "content": "Hello."}]}) + "\n" + json.dumps(
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello."}) + "\n")
    put("jsonl_records", "text-ids.jsonl", json.dumps({"text": "caf\u00e9 \U0001F600"}) + "\n" +
        json.dumps({"input_ids": [1, 2, 50256]}) + "\n")

    # .bin token shards: uint16 (20240520 v1) and uint32 (20240801 v7).
    for magic, version, fmt, toks in [(20240520, 1, "<H", [50256, 1, 2, 3]), (20240801, 7, "<I", [128000, 5])]:
        header = struct.pack("<3i", magic, version, len(toks)) + b"\0" * (1024 - 12)
        put("token_shard", "v%d.bin" % version, header + b"".join(struct.pack(fmt, t) for t in toks))

    # checkpoint manifest.json and state.json, as trainer/checkpoint.cpp writes them.
    files = {n: {"bytes": b, "crc32": c} for n, b, c in
             [("params.safetensors", 4664, 2216601423), ("optimizer.safetensors", 9288, 112233445),
              ("state.json", 391, 4001)]}
    put("checkpoint_manifest", "manifest.json", json.dumps(
        {"format": "qtrain-checkpoint", "version": 1, "step": 20, "files": files}, indent=2) + "\n")
    put("checkpoint_manifest", "state.json", json.dumps(
        {"step": 20, "optimizer_steps": 19, "rng": {"seed": 1234, "draws": 40},
         "data_position": {"epoch": 0, "index": 80}, "config": {"lr": 0.001, "steps": 100}}, indent=2) + "\n")

    # GGUF: the small fixtures; chat templates: the fixtures' real templates.
    for n in sorted(os.listdir(os.path.join(FIX, "gguf", "bad"))):
        copy("gguf", "gguf/bad/" + n)
    with open(os.path.join(FIX, "gguf", "chat_templates.json"), encoding="utf-8") as f:
        templates = {case["template"]: case["name"].split("/")[0] for case in json.load(f)}
    for i, (template, name) in enumerate(templates.items()):
        put("chat_template", "%02d-%s" % (i, name), template)


if __name__ == "__main__":
    main()
