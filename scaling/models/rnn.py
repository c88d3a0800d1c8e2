"""Recurrent network (LSTM or GRU): ``layers`` stacked cells of ``hidden`` units.

Vector data is read one feature per time step, images one row per step, tokens
through an embedding. Classification reads the last step; language modelling
predicts the next token at every step.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ..config.schema import ModelConfig, choice, positive
from ..measure import layer_flops

KINDS = ("vector", "image", "tokens")
SIZES = {
    "debug": {"hidden": 8, "layers": 1},
    "small": {"hidden": 64, "layers": 1},
    "medium": {"hidden": 256, "layers": 2},
    "large": {"hidden": 1024, "layers": 2},
}
CELLS = {"lstm": (nn.LSTM, 4), "gru": (nn.GRU, 3)}


@dataclass
class Config(ModelConfig):
    family: str = "rnn"
    cell: str = "lstm"  # lstm | gru
    hidden: int = 64  # units per layer
    layers: int = 1  # stacked layers
    WIDTH: ClassVar[str] = "hidden"
    VMAP: ClassVar[bool] = False  # torch has no vmap rule for the fused LSTM/GRU kernels

    def __post_init__(self):
        super().__post_init__()
        positive(self, "hidden", "layers")
        choice(self, "cell", tuple(CELLS))


def from_size(k, cfg):
    """``size=k`` sets hidden = 32·k at the configured number of layers."""
    return {"hidden": 32 * k}


class RNN(nn.Module):
    def __init__(self, cfg, spec):
        super().__init__()
        cell, self.gates = CELLS[cfg.cell]
        self.kind = spec.kind
        if spec.kind == "tokens":
            self.embed = nn.Embedding(spec.n_outputs, cfg.hidden)
            n_in = cfg.hidden
        elif spec.kind == "image":
            c, _, w = spec.input_shape
            n_in = c * w
        else:
            n_in = 1
        self.n_in, self.hidden, self.layers = n_in, cfg.hidden, cfg.layers
        self.rnn = cell(n_in, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden, spec.n_outputs)

    def forward(self, x):
        if self.kind == "tokens":
            out, _ = self.rnn(self.embed(x))
            return self.head(out)
        if self.kind == "image":
            x = x.permute(0, 2, 1, 3).flatten(2)  # (B, C, H, W) -> (B, H, C·W)
        else:
            x = x.unsqueeze(-1)  # (B, F) -> (B, F, 1)
        out, _ = self.rnn(x)
        return self.head(out[:, -1])

    # FlopCounterMode sees nothing inside nn.LSTM and, on fused GPU kernels, inside
    # nn.GRU: the recurrent cell is always counted here, whatever the device.
    uncounted_modules = ("rnn",)

    def uncounted_flops(self, x: torch.Tensor) -> int:
        """Forward + backward FLOPs of the recurrent layers for input ``x``."""
        batch = x.shape[0]
        steps = x.shape[1] if self.kind != "image" else x.shape[2]
        g, h = self.gates, self.hidden
        total = 0
        for layer in range(self.layers):
            n_in = self.n_in if layer == 0 else h
            ih = 2 * batch * steps * g * h * n_in
            hh = 2 * batch * steps * g * h * h
            # forward, weight gradients, and input gradients (the hidden state always
            # needs them; the layer's input only when it comes from learned layers)
            input_grad = ih if (layer > 0 or self.kind == "tokens") else 0
            total += (ih + hh) + (ih + hh) + (hh + input_grad)
        return total

    def analytic_flops(self, x: torch.Tensor) -> int:
        """The recurrent layers (above) and the head, at every step for language modelling."""
        rows = x.shape[0] * (x.shape[1] if self.kind == "tokens" else 1)
        head = layer_flops(
            2 * rows * self.head.in_features * self.head.out_features, input_grad=True
        )
        return self.uncounted_flops(x) + head


def build(cfg, spec):
    return RNN(cfg, spec)
