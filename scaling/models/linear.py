"""Linear model: the baseline row of a study (no hidden size to scale)."""

from torch import nn

from .mlp import MLP

WIDTH = None  # the field that optim.lr_scaling=width reads
KINDS = ("vector", "image")
SIZES = {"debug": {}}


def from_size(k, cfg):
    raise ValueError("the linear family has no size to set; drop model.size")


def build(cfg, spec):
    n_in = 1
    for d in spec.input_shape:
        n_in *= d
    return MLP(nn.Flatten(), nn.Linear(n_in, spec.n_outputs))
