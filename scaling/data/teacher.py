"""Teacher–student regression: targets from a fixed random MLP plus Gaussian noise.

Any size: ``in_dim`` inputs, ``out_dim`` outputs, ``train_size`` examples. The
teacher and the validation set depend only on ``data.seed``, so data-size sweeps
are scored on the same set.
"""

from dataclasses import dataclass

import torch
from torch import nn

from ..config.schema import DataConfig, positive
from .base import Data, DataSpec


@dataclass
class Config(DataConfig):
    name: str = "teacher"
    train_size: int | None = 10000
    in_dim: int = 16
    out_dim: int = 1
    teacher_width: int = 64
    teacher_depth: int = 2
    noise: float = 0.05  # std of the Gaussian noise on targets

    def __post_init__(self):
        super().__post_init__()
        positive(self, "in_dim", "out_dim", "teacher_width", "teacher_depth")
        positive(self, "noise", allow_zero=True)
        if self.train_size is None:
            raise ValueError("data.train_size must be set for data=teacher")


def _teacher(cfg, gen):
    layers, n_in = [], cfg.in_dim
    for _ in range(cfg.teacher_depth):
        layer = nn.Linear(n_in, cfg.teacher_width)
        with torch.no_grad():
            layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) / n_in**0.5)
            layer.bias.copy_(torch.randn(layer.bias.shape, generator=gen) * 0.1)
        layers += [layer, nn.Tanh()]
        n_in = cfg.teacher_width
    out = nn.Linear(n_in, cfg.out_dim)
    with torch.no_grad():
        out.weight.copy_(torch.randn(out.weight.shape, generator=gen) / n_in**0.5)
        out.bias.zero_()
    return nn.Sequential(*layers, out)


def load(cfg):
    gen = torch.Generator().manual_seed(cfg.seed)
    teacher = _teacher(cfg, gen)
    x_val = torch.randn(cfg.val_size, cfg.in_dim, generator=gen)
    x_train = torch.randn(cfg.train_size, cfg.in_dim, generator=gen)
    with torch.no_grad():
        y_val = teacher(x_val) + cfg.noise * torch.randn(cfg.val_size, cfg.out_dim, generator=gen)
        y_train = teacher(x_train) + cfg.noise * torch.randn(
            cfg.train_size, cfg.out_dim, generator=gen
        )
    spec = DataSpec("vector", "regression", (cfg.in_dim,), cfg.out_dim)
    return Data(spec, x_train, y_train, x_val, y_val)
