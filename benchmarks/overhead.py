"""What the runner costs over a plain PyTorch loop.

Trains the same model on the same data for the same steps, once through
``train_point`` (what ``scale run`` calls) and once with a hand-written loop a
researcher would write (AdamW, warmup + cosine, grad clipping, batches drawn
on the device, a final evaluation), interleaved in one process, and prints
runner time / plain time for a small and a medium model.

    python benchmarks/overhead.py [--steps 500] [--repeats 5] [--device cpu]

The runner's time is its whole ``train_point`` call on a planned point, what a
sweep's job runs: loading the data, building the model, measuring memory, evaluating
and writing nothing (no folder). Planning (composing, counting FLOPs) happens once per
point in the sweep's own process; ``sweep_overhead.py`` measures it.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F

from scaling import compose, plan, train_point
from scaling.data import load_data
from scaling.models import build_model

MODELS = {
    "small (MLP width 64)": ["model=mlp", "model.width=64"],
    "medium (MLP width 512, depth 4)": ["model=mlp", "model.width=512", "model.depth=4"],
    "transformer LM (size 2)": [
        "model=transformer",
        "model.size=2",
        "data=text",
        "trainer.batch_size=16",
    ],
}


def plain_loop(cfg, device: torch.device) -> float:
    """The loop a researcher would write by hand, for the same config."""
    torch.manual_seed(cfg.trainer.seed)
    data = load_data(cfg.data)
    model = build_model(cfg.model, data.spec).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                            weight_decay=cfg.optim.weight_decay, fused=device.type == "cuda" or None)  # fmt: skip
    steps, batch = cfg.trainer.steps, cfg.trainer.batch_size
    warmup = int(cfg.optim.warmup * steps)

    def lr_lambda(step):
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return cfg.optim.min_lr_ratio + (1 - cfg.optim.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    x_all = data.x_train.to(device)
    lm = data.spec.task == "lm"
    y_all = None if lm else data.y_train.to(device)
    seq = data.spec.input_shape[0]
    for _ in range(steps):
        if lm:
            starts = torch.randint(len(x_all) - seq - 1, (batch,), device=device)
            window = x_all[starts[:, None] + torch.arange(seq + 1, device=device)]
            x, y = window[:, :-1], window[:, 1:]
        else:
            idx = torch.randint(len(x_all), (batch,), device=device)
            x, y = x_all[idx], y_all[idx]
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    model.eval()
    total = 0.0
    with torch.no_grad():  # the whole validation set, as the runner does
        for i in range(0, len(data.x_val), 1024):
            out = model(data.x_val[i : i + 1024].to(device))
            y = data.y_val[i : i + 1024].to(device).reshape(-1)
            total += F.cross_entropy(out.reshape(-1, out.shape[-1]), y, reduction="sum").item()
    return total / data.y_val.numel()


def timed(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--models", nargs="*", default=list(MODELS))
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.steps} steps, {args.repeats} interleaved repeats (median)")  # fmt: skip
    print(f"{'model':34} {'runner s':>9} {'plain s':>9} {'ratio':>7}   (median of pairs; range)")
    for name in args.models:
        cfg = compose(MODELS[name] + [
            f"trainer.steps={args.steps}", f"trainer.eval_interval={args.steps}",
            f"trainer.device={args.device}", "trainer.precision=fp32", "optim.lr=0.001",
        ])  # fmt: skip
        spec = plan(cfg)[0]  # planned once, in the sweep's process: a job only trains
        load_data(cfg.data)  # warm the data cache for both
        train_point(spec)  # warm-up: one-time costs of the process (imports, first kernels)
        runner, plain = [], []
        for _ in range(args.repeats):
            runner.append(timed(lambda spec=spec: train_point(spec)))
            plain.append(timed(lambda cfg=cfg: plain_loop(cfg, device)))
        ratios = [
            r / q for r, q in zip(runner, plain)
        ]  # interleaved pairs share the machine's state
        r, q = statistics.median(runner), statistics.median(plain)
        print(f"{name:34} {r:9.3f} {q:9.3f} {statistics.median(ratios):7.3f}   "
              f"(pairs {min(ratios):.3f}–{max(ratios):.3f})", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
