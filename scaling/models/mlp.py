"""Multi-layer perceptron: ``depth`` hidden layers of ``width`` units."""

from torch import nn

from ..measure import layer_flops

WIDTH = "width"  # the field that optim.lr_scaling=width reads
KINDS = ("vector", "image")
SIZES = {
    "debug": {"width": 8, "depth": 1},
    "small": {"width": 64, "depth": 2},
    "medium": {"width": 256, "depth": 3},
    "large": {"width": 1024, "depth": 4},
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def from_size(k, cfg):
    """``size=k`` sets width = 32·k at the configured depth."""
    return {"width": 32 * k}


def build(cfg, spec):
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation '{cfg.activation}'; choose from: {', '.join(ACTIVATIONS)}"
        )
    n_in = 1
    for d in spec.input_shape:
        n_in *= d
    layers = [nn.Flatten()]
    for i in range(cfg.depth):
        layers += [
            nn.Linear(n_in if i == 0 else cfg.width, cfg.width),
            ACTIVATIONS[cfg.activation](),
        ]
    layers.append(nn.Linear(cfg.width if cfg.depth else n_in, spec.n_outputs))
    return MLP(*layers)


class MLP(nn.Sequential):
    def analytic_flops(self, x) -> int:
        """2·B·in·out per layer forward; the first layer reads raw data (no input gradient)."""
        linears = [m for m in self if isinstance(m, nn.Linear)]
        return sum(
            layer_flops(2 * x.shape[0] * m.in_features * m.out_features, input_grad=i > 0)
            for i, m in enumerate(linears)
        )
