"""μP's coordinate check (Tensor Programs V; mup's ``get_coord_data``): the mean |coordinate|
of every layer's output over the first steps of training, per width and parametrisation.

Each point trains through the same loop as any other, its layers hooked: under μP the size
of each layer's output stays put as width grows, under sp the later steps' grow.
Activations are read at the forward pass of each step, before its update (step 0 is the
initialisation; a zero-initialised readout gives 0 there).
"""

from __future__ import annotations

import pandas as pd
from torch import nn

from .runner import train_points

COLUMNS = ["parametrization", "width", "step", "layer", "act"]


def coord_check(specs: dict) -> pd.DataFrame:
    """Train each planned point for its few steps and record its activations.

    Args:
        specs: (parametrization, width) -> a planned point (``scaling.commands.train.coord_specs``:
            constant lr, the same batches at every width, on the CPU).

    Returns:
        One row per (parametrization, width, step, layer): columns parametrization, width,
        step, layer, act. Layers are the Linear modules by name, transformer blocks (their
        residual output) and ``logits`` (the readout).
    """
    rows = []
    for (par, width), spec in specs.items():
        steps: list[dict] = []
        row = train_points([spec], [None], watch=lambda model, steps=steps: _hook(model, steps))[0]
        if row["status"] != "ok":
            raise RuntimeError(
                f"the coordinate check at {par} width {width} failed: {row['error']}"
            )
        rows += [{"parametrization": par, "width": width, "step": step, "layer": layer, "act": act}
                 for step, layers in enumerate(steps) for layer, act in layers.items()]  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _hook(model: nn.Module, steps: list[dict]) -> None:
    """Record each training forward pass's mean |output| per layer into a new dict of ``steps``."""
    readout = model.head if hasattr(model, "head") else list(model.children())[-1]

    def start(module, inputs):
        if module.training:  # evaluation passes are not steps
            steps.append({})

    def recorder(name: str):
        def hook(module, inputs, output):
            if module.training:
                steps[-1][name] = output.detach().abs().mean().item()

        return hook

    model.register_forward_pre_hook(start)
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) or (name.startswith("blocks.") and name.count(".") == 1):
            module.register_forward_hook(recorder("logits" if module is readout else name))
