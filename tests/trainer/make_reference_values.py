# Prints the reference values hard-coded in tests/trainer/*_test.cpp:
# learning rates from HF transformers' schedulers and an AdamW trajectory from
# torch.optim.AdamW (plus clip_grad_norm_). Run: /work/venv/bin/python tests/trainer/make_reference_values.py
import torch
from transformers import (get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup,
                          get_linear_schedule_with_warmup)


def lrs(make, steps):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=3e-4)
    sched = make(opt)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])  # lr used by this optimizer step
        opt.step()
        sched.step()
    return out


print("// schedule: base lr 3e-4, warmup 3, total 10; lr for optimizer steps 0..11")
print("constant", lrs(lambda o: get_constant_schedule_with_warmup(o, 3), 12))
print("linear", lrs(lambda o: get_linear_schedule_with_warmup(o, 3, 10), 12))
print("cosine", lrs(lambda o: get_cosine_schedule_with_warmup(o, 3, 10), 12))
print("cosine_w0", lrs(lambda o: get_cosine_schedule_with_warmup(o, 0, 7), 8))

# AdamW: two params, one with decay 0.1 and one without; grads fixed formulas,
# clip_grad_norm_(max 0.5) each step; 3 steps with lr 1e-2.
torch.manual_seed(0)
a = torch.nn.Parameter(torch.tensor([0.5, -1.0, 2.0, 0.25, -0.75]))
b = torch.nn.Parameter(torch.tensor([1.5, -0.5, 0.125]))
opt = torch.optim.AdamW([{"params": [a], "weight_decay": 0.1}, {"params": [b], "weight_decay": 0.0}],
                        lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
for t in range(3):
    opt.zero_grad()
    a.grad = torch.tensor([0.3, -0.2, 0.1, 0.05, -0.4]) * (t + 1) + a.detach() * 0.5
    b.grad = torch.tensor([-0.6, 0.9, 0.2]) / (t + 1)
    norm = torch.nn.utils.clip_grad_norm_([a, b], 0.5)
    opt.step()
    print(f"step {t+1} norm {norm.item():.9g}")
    print(" a", [f"{x:.9g}" for x in a.detach().tolist()])
    print(" b", [f"{x:.9g}" for x in b.detach().tolist()])
