#!/usr/bin/env python3
"""One anchor's training steps, alone in a fresh process: bench/train_vs_hf.py runs this once per
row and anchor, so that Liger's and Unsloth's global patches never leak into another anchor, a
crash or hang of one anchor is that anchor's recorded error, and no CUDA context of an earlier
anchor sits on the GPU while qtrain's memory is read.

    anchor_run.py --anchor hf|liger|unsloth --model DIR --spec SPEC.json --out RESULT.json

SPEC: {"base": "bf16"|"nf4"|"hqq", "hqq_bits": 4|2, "adapter": "lora"|"dora"|"ia3"|"full", "r", "alpha",
       "loftq": bool, "batch", "seq", "ckpt": bool, "steps", "warmup", "vocab"}
  hf:      transformers + peft (+ bitsandbytes NF4 with double quant, the QLoRA recipe, for "nf4";
           + hqq's AutoHQQHFModel, groups of 64, for "hqq"); LoftQ through peft's replace_lora_weights_loftq
  liger:   the same with Liger's Triton kernels (RoPE, RMSNorm, SwiGLU, fused linear + cross-entropy)
  unsloth: FastLanguageModel (load_in_4bit for "nf4"), get_peft_model with use_gradient_checkpointing="unsloth"
RESULT: {"tok_s", "step_s", "torch_max_alloc_gib", "trainable_params", "total_params", "setup_s", "versions"},
or {"error": "<Type>: <message>", "traceback"} with exit status 1.
"""
import argparse
import json
import os
import statistics
import sys
import time
import traceback

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
VERSIONED = ("torch", "transformers", "peft", "bitsandbytes", "liger-kernel", "unsloth", "unsloth_zoo", "trl",
             "datasets", "hqq", "triton")


def offline_env():
    """The GPU machine reaches no network: nothing may try (Unsloth's usage statistics, hub look-ups)."""
    for k, v in (("UNSLOTH_DISABLE_STATISTICS", "1"), ("HF_HUB_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                 ("HF_DATASETS_OFFLINE", "1"), ("HF_HUB_DISABLE_TELEMETRY", "1"), ("DO_NOT_TRACK", "1"),
                 ("HF_HUB_ENABLE_HF_TRANSFER", "0"), ("TOKENIZERS_PARALLELISM", "false"),
                 # Unsloth writes its compiled modules beside the working directory otherwise.
                 ("UNSLOTH_COMPILE_LOCATION", "/tmp/unsloth_compiled_cache")):
        os.environ.setdefault(k, v)


def versions():
    from importlib import metadata
    out = {}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def tokenizer_dir(model_dir, vocab, seq):
    """Unsloth loads a tokenizer with the model and the random-weight dirs have none: a sibling dir
    with links to the weights and a word-level tokenizer of exactly `vocab` tokens (ids as
    LlamaConfig's defaults: <unk> 0, <s> 1, </s> 2; <pad> 3). Made with the tokenizers package only,
    so that transformers is not imported before Unsloth."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    d = model_dir.rstrip("/") + "-tok"
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(model_dir):
        if f.endswith((".json", ".safetensors")) and not os.path.exists(os.path.join(d, f)):
            os.symlink(os.path.abspath(os.path.join(model_dir, f)), os.path.join(d, f))
    special = ["<unk>", "<s>", "</s>", "<pad>"]
    vocab_map = {t: i for i, t in enumerate(special)}
    vocab_map.update({f"t{i}": i for i in range(len(special), vocab)})
    tk = Tokenizer(models.WordLevel(vocab_map, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(special)
    tk.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump(dict(tokenizer_class="PreTrainedTokenizerFast", unk_token="<unk>", bos_token="<s>",
                       eos_token="</s>", pad_token="<pad>", model_max_length=seq, padding_side="right"), f)
    return d


def peft_config(spec):
    import peft
    if spec["adapter"] == "ia3":  # peft's default modules and feedforward rule, as qtrain's --adapter-type ia3
        return peft.IA3Config(task_type="CAUSAL_LM")
    # "all-linear" matches nn.Linear (and bitsandbytes' 4-bit Linear); hqq's HQQLinear is neither, so the
    # LLaMA projections by name there (the same seven modules).
    targets = LLAMA_TARGETS if spec["base"] == "hqq" else "all-linear"
    return peft.LoraConfig(r=spec["r"], lora_alpha=spec["alpha"], target_modules=targets, lora_dropout=0.0,
                           use_dora=spec["adapter"] == "dora", task_type="CAUSAL_LM")


def load_hf(model_dir, spec, device):
    """HF + peft, on the base the spec names (the QLoRA recipe for nf4 and hqq: kbit preparation)."""
    import torch
    import transformers
    import peft
    kw = dict(dtype=torch.bfloat16, attn_implementation="sdpa")
    quant = None
    if spec["base"] == "nf4":
        quant = transformers.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch.bfloat16)
    if spec["base"] == "hqq":
        # hqq's own HF quantizer (AutoHQQHFModel: every Linear but lm_head to HQQLinear, the same
        # quantizer transformers' HqqConfig called): transformers 5.x dropped HqqConfig loading
        # ("QuantizationMethod.HQQ is not available yet"). peft wraps HQQLinear with its LoRA layer.
        from hqq.core.quantize import BaseQuantizeConfig
        from hqq.models.hf.base import AutoHQQHFModel
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kw).to(device)
        AutoHQQHFModel.quantize_model(model, quant_config=BaseQuantizeConfig(nbits=spec["hqq_bits"], group_size=64),
                                      compute_dtype=torch.bfloat16, device=device)
        model.requires_grad_(False)
    elif quant is not None:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, quantization_config=quant,
                                                                  device_map={"": 0 if device == "cuda" else device},
                                                                  **kw)
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec["ckpt"])
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, **kw).to(device)
    if spec["adapter"] != "full":
        model = peft.get_peft_model(model, peft_config(spec))
        if spec.get("loftq"):
            # peft's LoftQ for an already-quantized (bitsandbytes) base: one round per module, the
            # original weights read from the checkpoint. Same start as qtrain's --loftq-iters 1.
            peft.replace_lora_weights_loftq(model, model_path=os.path.join(model_dir, "model.safetensors"))
    if spec["ckpt"]:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()
        # from_pretrained returns eval mode, in which transformers skips gradient checkpointing.
        # (Only here: GPT-2's configs carry dropout 0.1, which eval mode keeps off, as qtrain has none.)
        model.train()
    return model


def load_unsloth(model_dir, spec, device):
    import torch
    from unsloth import FastLanguageModel  # first: Unsloth patches transformers and peft as they import
    if spec["adapter"] not in ("lora", "dora") or spec["base"] not in ("bf16", "nf4") or spec.get("loftq"):
        raise NotImplementedError(f"no Unsloth recipe for {spec['adapter']} on a {spec['base']} base"
                                  f"{' with LoftQ' if spec.get('loftq') else ''}")
    gc = "unsloth" if spec["ckpt"] else False  # Unsloth's own checkpointing (activations offloaded to host memory)
    model, _ = FastLanguageModel.from_pretrained(model_name=tokenizer_dir(model_dir, spec["vocab"], spec["seq"]),
                                                 max_seq_length=spec["seq"], dtype=torch.bfloat16,
                                                 load_in_4bit=spec["base"] == "nf4", load_in_16bit=spec["base"] == "bf16",
                                                 use_gradient_checkpointing=gc, local_files_only=True)
    model = FastLanguageModel.get_peft_model(
        model, r=spec["r"], lora_alpha=spec["alpha"], target_modules=LLAMA_TARGETS, lora_dropout=0.0, bias="none",
        use_gradient_checkpointing=gc, random_state=0, **({"use_dora": True} if spec["adapter"] == "dora" else {}))
    FastLanguageModel.for_training(model)
    return model


def count_params(model):
    if hasattr(model, "get_nb_trainable_parameters"):  # peft: counts 4-bit weights as their element count
        return model.get_nb_trainable_parameters()
    return (sum(p.numel() for p in model.parameters() if p.requires_grad), sum(p.numel() for p in model.parameters()))


def train(model, spec, device):
    """The same loop for every anchor: forward with labels, backward, clip 1.0, fused AdamW, one
    synchronize per step; median tok/s of the steps after warmup."""
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=device == "cuda")
    B, T = spec["batch"], spec["seq"]
    gen = torch.Generator(device=device).manual_seed(0)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = []
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(spec["steps"]):
        ids = torch.randint(0, min(spec["vocab"], 65535), (B, T), device=device, generator=gen)
        sync()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if step >= spec["warmup"]:
            times.append(time.perf_counter() - t0)
    step_s = statistics.median(times)
    alloc = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    return dict(tok_s=B * T / step_s, step_s=step_s, torch_max_alloc_gib=alloc, final_loss=loss.item())


def run(anchor, model_dir, spec, device):
    t0 = time.perf_counter()
    if anchor == "unsloth":
        model = load_unsloth(model_dir, spec, device)
    else:
        if anchor == "liger":
            from liger_kernel.transformers import apply_liger_kernel_to_llama
            apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, cross_entropy=False,
                                        fused_linear_cross_entropy=True)
        model = load_hf(model_dir, spec, device)
    trainable, total = count_params(model)
    setup_s = time.perf_counter() - t0
    res = train(model, spec, device)
    res.update(trainable_params=int(trainable), total_params=int(total), setup_s=setup_s)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--anchor", required=True, choices=["hf", "liger", "unsloth"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--spec", required=True, help="JSON file or inline JSON object")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="auto", help="cuda | cpu | auto (cuda when torch sees one)")
    args = ap.parse_args()
    offline_env()
    spec = json.loads(args.spec) if args.spec.lstrip().startswith("{") else json.load(open(args.spec))
    res = {}
    try:
        device = args.device
        if device == "auto":
            import torch  # (Unsloth warns about transformers imported first, not torch)
            device = "cuda" if torch.cuda.is_available() else "cpu"
        res = run(args.anchor, args.model, spec, device)
        rc = 0
    except BaseException as e:  # recorded, not raised: the row goes on with the other anchors
        res = dict(error=f"{type(e).__name__}: {e}".strip()[:2000], traceback=traceback.format_exc()[-6000:])
        rc = 1
    try:
        res["versions"] = versions()
    except Exception:
        pass
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: v for k, v in res.items() if k != "traceback"}), flush=True)
    sys.exit(rc)


if __name__ == "__main__":
    main()
