"""Optimizers and the learning-rate schedule."""

from __future__ import annotations

import math

import torch


def peak_lr(cfg, params_nonembedding: int, flops_total: float) -> tuple[float, str]:
    """The point's peak learning rate and where it came from (``optim.lr_scaling``).

    none: ``optim.lr``; width: lr·base_width/width; olmo: 0.0047·(N/108M)^(-1/3) with N the
    non-embedding parameters (the OLMo ladder's rule); deepseek: 0.3118·C^(-0.125) with C the
    point's training FLOPs (DeepSeek LLM's fit). Under μP ``optim.lr`` is the base model's.
    """
    optim, rule = cfg.optim, cfg.optim.lr_scaling
    if rule == "width":
        return optim.lr * optim.base_width / cfg.model.width_size, "rule: width"
    if rule == "olmo":
        return 0.0047 * (params_nonembedding / 108e6) ** (-1 / 3), "rule: olmo"
    if rule == "deepseek":
        return 0.3118 * flops_total ** -0.125, "rule: deepseek"
    return optim.lr, "mup" if cfg.model.parametrization == "mup" else "config"


def rule_batch(rule: str, params_nonembedding: int, compute: float, per_example: int) -> int:
    """A batch (in examples: sequences for language models) by ``trainer.batch_scaling``: the
    OLMo ladder's 160·2048·(N/108M)^(2/3) tokens, or DeepSeek LLM's 0.2920·C^0.3271 tokens for
    a run of C FLOPs; ``per_example`` tokens make one example."""
    if rule == "olmo":
        tokens = 160 * 2048 * (params_nonembedding / 108e6) ** (2 / 3)
    else:
        tokens = 0.2920 * compute**0.3271
    return max(1, round(tokens / per_example))


DECAY_SHAPES = {
    "sqrt": math.sqrt,  # 1 − √t: Hägele et al. (2024)'s best cooldown
    "linear": lambda t: t,
    "cosine": lambda t: 0.5 * (1 - math.cos(math.pi * t)),
}


def lr_at(step: int, steps: int, optim, peak: float, warmup: int | None = None) -> float:
    """The lr of ``step`` (0-based) of ``steps``: a linear warmup over ``warmup`` steps (default
    ``optim.warmup``·steps), then cosine down to ``min_lr_ratio``·peak, constant, or wsd:
    constant until the last ``optim.decay``·steps, which decay to the floor in its shape."""
    warmup = int(optim.warmup * steps) if warmup is None else warmup
    if step < warmup:
        return peak * (step + 1) / warmup
    if optim.schedule == "constant":
        return peak
    floor = peak * optim.min_lr_ratio
    if optim.schedule == "wsd":
        start = decay_start(steps, optim.decay)
        if step < start:
            return peak
        fall = DECAY_SHAPES[optim.decay_shape]((step - start + 1) / (steps - start))
        return peak - (peak - floor) * fall
    progress = (step - warmup) / max(1, steps - warmup)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def decay_start(steps: int, decay: float) -> int:
    """The first step of a wsd run's decay (its cooldown)."""
    return steps - max(1, round(decay * steps))


def make_optimizer(groups: list[dict], optim, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA) or SGD over parameter groups, as ``optim`` (the config group) says.

    Groups carry an ``lr_mult`` (μP's per-layer learning rates) that ``set_lr`` applies.
    """
    if optim.name == "adamw":
        return torch.optim.AdamW(groups, lr=optim.lr, betas=(optim.beta1, optim.beta2),
                                 weight_decay=optim.weight_decay, fused=device.type == "cuda" or None)  # fmt: skip
    return torch.optim.SGD(
        groups, lr=optim.lr, momentum=optim.momentum, weight_decay=optim.weight_decay
    )


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
