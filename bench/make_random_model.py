#!/usr/bin/env python3
"""Writes an HF model dir (config.json + model.safetensors, BF16, random init)
of a named shape, so qtrain and HF+peft can be benchmarked on the same weights
without downloading anything.

    make_random_model.py OUT_DIR --shape gpt2-medium|smollm2-135m|llama-7b|tiny-llama [--seed 0]
"""
import argparse
import json
import os

SHAPES = {
    "gpt2-medium": dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=1024, n_layer=24, n_head=16,
                        vocab_size=50257, n_positions=1024, n_ctx=1024, layer_norm_epsilon=1e-5,
                        activation_function="gelu_new", tie_word_embeddings=True),
    "smollm2-135m": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=576, num_hidden_layers=30,
                         num_attention_heads=9, num_key_value_heads=3, intermediate_size=1536, vocab_size=49152,
                         max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=100000.0,
                         tie_word_embeddings=True, hidden_act="silu"),
    "llama-7b": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=4096, num_hidden_layers=32,
                     num_attention_heads=32, num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                     max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                     tie_word_embeddings=False, hidden_act="silu"),
    # bench/train_vs_hf.py --smoke: its code paths on the CPU in seconds
    "tiny-llama": dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, vocab_size=512,
                       max_position_embeddings=256, rms_norm_eps=1e-5, rope_theta=10000.0,
                       tie_word_embeddings=False, hidden_act="silu"),
}


def random_model(shape, seed=0):
    """The model of a named shape with transformers' random init, in BF16, on
    the GPU when there is one (decode_hf.py benchmarks it without a file)."""
    import torch
    import transformers

    cfg_dict = dict(SHAPES[shape])
    cfg_dict["torch_dtype"] = "bfloat16"
    model_type = cfg_dict.pop("model_type")
    cfg_dict.pop("architectures")
    cfg = transformers.AutoConfig.for_model(model_type, **cfg_dict)
    torch.manual_seed(seed)
    # Materialize in BF16 (a 7B model never exists in F32), on the GPU when there
    # is one: HF's init of 7B parameters on the CPU takes minutes.
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        torch.set_default_dtype(torch.bfloat16)
        try:
            return transformers.AutoModelForCausalLM.from_config(cfg)
        finally:
            torch.set_default_dtype(torch.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    model = random_model(args.shape, args.seed)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(json.dumps({"shape": args.shape, "params": n, "out": args.out}))


if __name__ == "__main__":
    main()
