"""μP, the maximal-update parametrisation: hyperparameters tuned at one width transfer to others.

Implemented here after Yang et al., "Tensor Programs V" (2022), Table 3, and the
``mup`` package's rules (the package itself needs torchvision). Shapes are
compared with the same model built at the base width ``model.base_width``; a
dimension that differs grows with width, by its own multiplier (``4·d`` grows
like ``d``). A parameter with two growing dimensions is matrix-like (hidden
weights), one with a single growing dimension vector-like (input layer, biases,
norms, embeddings, the readout), and per-layer learning rates follow:

========  ===========================  ==========================
          matrix-like                  vector-like
========  ===========================  ==========================
Adam      lr / fan_in multiplier       lr
SGD       lr · fan_out / fan_in mult.  lr · width multiplier
========  ===========================  ==========================

Weight decay is divided by the same factor, so lr·weight_decay does not change
with width (the package's default, ``decoupled_wd=False``). The models do the
rest themselves under ``model.parametrization=mup``: the readout is multiplied
by base_width/width and starts at zero (``Readout``), and the transformer's
attention is scaled by 1/d_head instead of 1/√d_head.
"""

from __future__ import annotations

import torch
from torch import nn


def _base_model(cfg, spec) -> dict[str, torch.Tensor]:
    """The parameters (on the meta device) of the same model at ``model.base_width``."""
    from .models import build_model, family

    base_cfg = cfg.model.copy()
    base_cfg[family(cfg.model.family).Config.WIDTH] = cfg.model.base_width
    if cfg.model.family == "transformer":
        base_cfg.n_head = 1  # heads do not change parameter shapes; one head always divides
    with torch.device("meta"):
        return dict(build_model(base_cfg, spec).named_parameters())


def param_groups(named: dict[str, torch.Tensor], cfg, spec) -> list[dict]:
    """Optimizer parameter groups with an ``lr_mult`` each; one group under sp.

    Args:
        named: parameter names to tensors (a model's, or stacked copies' whose leading
            seed dimension is ignored).
        cfg: the point's config (``model.parametrization``, ``optim.name``, ``optim.weight_decay``).
        spec: the data's ``DataSpec``, to build the base model.

    Returns:
        Groups for ``make_optimizer``: ``params``, ``lr_mult`` and, under mup, the
        ``weight_decay`` that keeps lr·weight_decay fixed.
    """
    params = list(named.values())
    if cfg.model.parametrization != "mup":
        return [{"params": params, "lr_mult": 1.0}]
    base = _base_model(cfg, spec)
    sgd = cfg.optim.name == "sgd"
    groups: dict[float, list] = {}
    for name, p in named.items():
        ref = base[name].shape
        shape = p.shape[p.dim() - len(ref) :]
        mults = [n / b for n, b in zip(shape, ref)]
        growing = [k for k in mults if k != 1]
        if len(growing) == 2:  # matrix-like: (fan_out, fan_in)
            mult = mults[0] / mults[1] if sgd else 1 / mults[1]
        elif len(growing) == 1:
            mult = growing[0] if sgd else 1.0
        else:
            mult = 1.0
        groups.setdefault(mult, []).append(p)
    wd = cfg.optim.weight_decay
    return [
        {"params": ps, "lr_mult": mult, "weight_decay": wd / mult} for mult, ps in groups.items()
    ]


# ---------------------------------------------------------------- coordinate check


def coord_check(
    overrides: list[str] = (),
    widths: list[int] = (64, 256, 1024),
    parametrizations: tuple[str, ...] = ("sp", "mup"),
    steps: int = 5,
    lr: float | None = None,
    batch_size: int | None = None,
):
    """Mean |coordinate| of every layer's output over the first steps of training, per width.

    The check of Tensor Programs V (mup's ``get_coord_data``): train each width for a
    few steps with one learning rate on the same batches; under μP the size of each
    layer's output stays put as width grows, under sp the later steps' grow.
    Activations are read at the forward pass of each step, before its update
    (step 0 is the initialisation; a zero-initialised readout gives 0 there).

    Args:
        overrides: Hydra overrides of the point (``model=mlp``, ``data=mnist1d``, …).
        widths: values of the family's width field (``model.width``, ``model.d_model``).
        parametrizations: ``sp`` and/or ``mup``.
        steps: forward passes recorded, with an optimizer step after each.
        lr: ``optim.lr`` for every run; None keeps the composed one.
        batch_size: ``trainer.batch_size``; None keeps the composed one.

    Returns:
        A DataFrame with one row per (parametrization, width, step, layer): columns
        parametrization, width, step, layer, act. Layers are the Linear modules by
        name, transformer blocks (their residual output) and ``logits`` (the readout).
    """
    import pandas as pd

    from .config.compose import compose as compose_point
    from .config.compose import hydra_context
    from .data import load_data
    from .models import family

    extra = [f"optim.lr={lr}"] if lr is not None else []
    extra += [f"trainer.batch_size={batch_size}"] if batch_size is not None else []
    rows, datasets = [], {}
    with hydra_context():
        field = family(compose_point(list(overrides)).model.family).Config.WIDTH
        configs = {
            (par, width): compose_point(
                [*overrides, *extra, f"model.{field}={width}", f"model.parametrization={par}"]
            )
            for par in parametrizations
            for width in widths
        }
    for (par, width), cfg in configs.items():
        key = repr(sorted(cfg.data.items()))
        if key not in datasets:
            datasets[key] = load_data(cfg.data)
        acts = _coord_run(cfg, datasets[key], steps)
        rows += [
            {"parametrization": par, "width": width, "step": step, "layer": layer, "act": act}
            for step, layers in enumerate(acts)
            for layer, act in layers.items()
        ]
    return pd.DataFrame(rows, columns=["parametrization", "width", "step", "layer", "act"])


def _coord_run(cfg, data, steps: int) -> list[dict[str, float]]:
    """Train ``steps`` steps at a constant lr on CPU; each step's mean |output| per layer."""
    from .models import build_model
    from .train import Batches, loss_fn_for, make_optimizer, seed_everything

    device = torch.device("cpu")
    seed_everything(cfg.trainer.seed)
    model = build_model(cfg.model, data.spec)
    groups = param_groups(dict(model.named_parameters()), cfg, data.spec)
    opt = make_optimizer(groups, cfg, device)
    for group in opt.param_groups:  # a constant lr: the check is about the first steps
        group["lr"] = cfg.optim.lr * group["lr_mult"]
    loss_fn = loss_fn_for(data.spec.task)
    batches = Batches(
        data, cfg.trainer.batch_size, device, cfg.trainer.seed
    )  # same for every width
    out, acts = [], {}
    hooks = [
        module.register_forward_hook(_recorder(acts, _layer_name(name, module, model)))
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) or (name.startswith("blocks.") and name.count(".") == 1)
    ]
    try:
        for _ in range(steps):
            acts.clear()
            x, y = next(batches)
            loss = loss_fn(model(x), y)
            out.append(dict(acts))
            loss.backward()
            if cfg.optim.grad_clip:  # as training does
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
    finally:
        for h in hooks:
            h.remove()
    return out


def _layer_name(name: str, module: nn.Module, model: nn.Module) -> str:
    readout = model.head if hasattr(model, "head") else list(model.children())[-1]
    return "logits" if module is readout else name


def _recorder(acts: dict, name: str):
    def hook(module, inputs, output):
        acts[name] = output.detach().abs().mean().item()

    return hook
