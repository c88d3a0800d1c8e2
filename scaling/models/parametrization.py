"""μP's side in the models: the readout layer and the width multiplier (see ``scaling.studies.mup``
for the per-layer learning rates)."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn


class Readout(nn.Linear):
    """The output layer under μP: ``Linear(x · mult)`` with mult = base_width/width (mup's MuReadout).

    Scaling the input rather than the output leaves the bias unscaled, as MuReadout
    does; the multiply is elementwise, so FLOP counters see the same matmul as
    under sp.
    """

    def __init__(self, in_features: int, out_features: int, mult: float, bias: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.mult = mult

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.mult, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mult={self.mult:g}"


def width_multiplier(model_cfg) -> float:
    """width / base_width for the family's width field (1 under sp)."""
    if model_cfg.parametrization != "mup":
        return 1.0
    return getattr(model_cfg, model_cfg.WIDTH) / model_cfg.base_width


def base_config(model_cfg):
    """The same model at μP's base width (``model.base_width``), whose shapes set the per-layer
    learning rates; heads do not change parameter shapes, and one head always divides."""
    changes = {model_cfg.WIDTH: model_cfg.base_width}
    if hasattr(model_cfg, "n_head"):
        changes["n_head"] = 1
    return replace(model_cfg, **changes)
