"""Convolutional network: ``depth`` conv layers of ``channels`` filters, global pooling, a linear head.

1-D convolutions for vector data (a feature vector is a one-channel sequence),
2-D for images.
"""

import math
from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..config.schema import ModelConfig, positive
from ..measure import layer_flops

KINDS = ("vector", "image")
SIZES = {
    "debug": {"channels": 4, "depth": 1},
    "small": {"channels": 16, "depth": 2},
    "medium": {"channels": 64, "depth": 3},
    "large": {"channels": 256, "depth": 4},
}


@dataclass
class Config(ModelConfig):
    family: str = "cnn"
    channels: int = 16  # filters per conv layer
    depth: int = 2  # conv layers
    kernel: int = 5  # kernel size (odd keeps the length)
    WIDTH: ClassVar[str] = "channels"

    def __post_init__(self):
        super().__post_init__()
        positive(self, "channels", "depth", "kernel")


def from_size(k, cfg):
    """``size=k`` sets channels = 8·k at the configured depth."""
    return {"channels": 8 * k}


class CNN(nn.Module):
    def __init__(self, cfg, spec):
        super().__init__()
        two_d = spec.kind == "image"
        conv = nn.Conv2d if two_d else nn.Conv1d
        in_ch = spec.input_shape[0] if two_d else 1
        layers = []
        for i in range(cfg.depth):
            layers += [
                conv(
                    in_ch if i == 0 else cfg.channels,
                    cfg.channels,
                    cfg.kernel,
                    padding=cfg.kernel // 2,
                ),
                nn.ReLU(),
            ]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if two_d else nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(cfg.channels, spec.n_outputs)
        self.two_d = two_d

    def forward(self, x):
        if not self.two_d:
            x = x.unsqueeze(1)  # (B, F) -> (B, 1, F)
        return self.head(self.pool(self.features(x)).flatten(1))

    def analytic_flops(self, x) -> int:
        """2·B·C_out·C_in·k^dims per output position per conv ("same" padding keeps the size), and the head."""
        positions = math.prod(x.shape[2:]) if self.two_d else x.shape[1]
        total = 0
        for i, conv in enumerate(m for m in self.features if isinstance(m, (nn.Conv1d, nn.Conv2d))):
            forward = (
                2
                * x.shape[0]
                * conv.out_channels
                * conv.in_channels
                * math.prod(conv.kernel_size)
                * positions
            )
            total += layer_flops(forward, input_grad=i > 0)
        return total + layer_flops(
            2 * x.shape[0] * self.head.in_features * self.head.out_features, input_grad=True
        )


def build(cfg, spec):
    return CNN(cfg, spec)
