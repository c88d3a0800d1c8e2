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
rest themselves under ``model.parametrization=mup`` (``scaling.models.parametrization``):
the readout is multiplied by base_width/width and starts at zero, and the
transformer's attention is scaled by 1/d_head instead of 1/√d_head.

No config here: groups come from parameter names and shapes, and the base model's.
"""

from __future__ import annotations

import torch


def param_groups(named: dict[str, torch.Tensor], base: dict[str, torch.Size] | None, sgd: bool,
                 weight_decay: float) -> list[dict]:  # fmt: skip
    """Optimizer parameter groups with an ``lr_mult`` each.

    Args:
        named: parameter names to tensors (a model's, or stacked copies' whose leading
            seed dimension is ignored).
        base: the same parameters' shapes at the base width; None under sp (one group).
        sgd: SGD's rules rather than Adam's.
        weight_decay: the optimizer's, divided per group so that lr·weight_decay stays fixed.

    Returns:
        Groups for an optimizer: ``params``, ``lr_mult`` and, under μP, ``weight_decay``.
    """
    params = list(named.values())
    if base is None:
        return [{"params": params, "lr_mult": 1.0}]
    groups: dict[float, list] = {}
    for name, p in named.items():
        groups.setdefault(lr_multiplier(p.shape, base[name], sgd), []).append(p)
    return [{"params": ps, "lr_mult": mult, "weight_decay": weight_decay / mult}
            for mult, ps in groups.items()]  # fmt: skip


def lr_multiplier(shape: torch.Size, base: torch.Size, sgd: bool) -> float:
    """A parameter's learning-rate multiplier from its shape against the base model's."""
    shape = shape[len(shape) - len(base) :]  # stacked copies: the seed dimension comes first
    mults = [n / b for n, b in zip(shape, base)]
    growing = [k for k in mults if k != 1]
    if len(growing) == 2:  # matrix-like: (fan_out, fan_in)
        return mults[0] / mults[1] if sgd else 1 / mults[1]
    if len(growing) == 1:  # vector-like
        return growing[0] if sgd else 1.0
    return 1.0
