"""μP, the maximal-update parametrisation: hyperparameters tuned at one width transfer to others.

Implemented here after Yang et al., "Tensor Programs V" (2022), Table 8 and the
``mup`` package's rules (the package itself needs torchvision). Shapes are
compared with the same model built at the base width ``model.base_width``:
a dimension that differs grows with width. With Adam, a parameter whose two
dimensions grow (a hidden weight matrix) gets the learning rate ×
base_width/width; everything else (input layer, biases, norms, embeddings)
keeps it. The models scale their readout (and attention, 1/d instead of
1/√d) themselves when ``model.parametrization=mup``.
"""

from __future__ import annotations

import torch

from .models import build_model, family


def width_multiplier(model_cfg) -> float:
    """width / base_width for the family's width field (1 under sp)."""
    if model_cfg.parametrization != "mup":
        return 1.0
    field = family(model_cfg.family).WIDTH
    if field is None:
        raise ValueError(f"model.parametrization=mup: the {model_cfg.family} family has no width")
    return model_cfg[field] / model_cfg.base_width


def param_groups(named: dict[str, torch.Tensor], cfg, spec) -> list[dict]:
    """Optimizer parameter groups with an ``lr_mult`` each; one group under sp.

    ``named`` maps parameter names to tensors (a model's or stacked copies', whose
    leading seed dimension is ignored when ``stacked``).
    """
    params = list(named.values())
    if cfg.model.parametrization != "mup":
        return [{"params": params, "lr_mult": 1.0}]
    m = width_multiplier(cfg.model)
    base_cfg = cfg.model.copy()
    base_cfg[family(cfg.model.family).WIDTH] = cfg.model.base_width
    with torch.device("meta"):
        base = dict(build_model(base_cfg, spec).named_parameters())
    hidden, other = [], []
    for name, p in named.items():
        shape = p.shape[-base[name].dim() :] if base[name].dim() else ()
        grows = sum(a != b for a, b in zip(shape, base[name].shape))
        (hidden if grows == 2 else other).append(p)
    return [g for g in ({"params": hidden, "lr_mult": 1 / m}, {"params": other, "lr_mult": 1.0})
            if g["params"]]  # fmt: skip
