"""Linear model: the baseline row of a study (no hidden size to scale)."""

from dataclasses import dataclass

from torch import nn

from ..config.schema import ModelConfig
from .mlp import MLP

KINDS = ("vector", "image")
SIZES = {"debug": {}}


@dataclass
class Config(ModelConfig):
    family: str = "linear"


def from_size(k, cfg):
    raise ValueError("the linear family has no size to set; drop model.size")


def build(cfg, spec):
    n_in = 1
    for d in spec.input_shape:
        n_in *= d
    return MLP(nn.Flatten(), nn.Linear(n_in, spec.n_outputs))
