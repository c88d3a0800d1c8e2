"""Multi-layer perceptron: ``depth`` hidden layers of ``width`` units.

Under ``model.parametrization=mup`` the readout is a ``mup.Readout`` (input × base_width/width)
initialised at zero, as in the mup package's MLP example; the hidden layers keep PyTorch's
init (std ∝ 1/√fan_in), which μP asks for too. Under sp the model is a plain stack of Linears.
"""

from dataclasses import dataclass
from typing import ClassVar

from torch import nn

from ..config.schema import ModelConfig, choice, positive
from ..measure import layer_flops
from .parametrization import Readout, width_multiplier

KINDS = ("vector", "image")
SIZES = {
    "debug": {"width": 8, "depth": 1},
    "small": {"width": 64, "depth": 2},
    "medium": {"width": 256, "depth": 3},
    "large": {"width": 1024, "depth": 4},
}
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


@dataclass
class Config(ModelConfig):
    family: str = "mlp"
    width: int = 64  # hidden units per layer
    depth: int = 2  # hidden layers
    activation: str = "gelu"  # relu | gelu | tanh | silu
    share_layers: bool = False  # hidden layers 2…depth share one weight matrix (weight sharing)
    WIDTH: ClassVar[str] = "width"
    MUP: ClassVar[bool] = True

    def __post_init__(self):
        super().__post_init__()
        positive(self, "width", "depth")
        choice(self, "activation", tuple(ACTIVATIONS))


def from_size(k, cfg):
    """``size=k`` sets width = 32·k at the configured depth."""
    return {"width": 32 * k}


def build(cfg, spec):
    n_in = 1
    for d in spec.input_shape:
        n_in *= d
    layers, shared = [nn.Flatten()], None
    for i in range(cfg.depth):
        if i == 0:
            linear = nn.Linear(n_in, cfg.width)
        elif getattr(cfg, "share_layers", False):  # one hidden matrix, applied depth-1 times
            linear = shared = shared or nn.Linear(cfg.width, cfg.width)
        else:
            linear = nn.Linear(cfg.width, cfg.width)
        layers += [linear, ACTIVATIONS[cfg.activation]()]
    if getattr(cfg, "parametrization", "sp") == "mup" and cfg.depth:
        readout = Readout(cfg.width, spec.n_outputs, mult=1 / width_multiplier(cfg))
        # zero at init, as mup's examples do: every width starts from the same logits, 0
        nn.init.zeros_(readout.weight)
        nn.init.zeros_(readout.bias)
    else:  # sp, or no hidden layer (then nothing depends on width)
        readout = nn.Linear(cfg.width if cfg.depth else n_in, spec.n_outputs)
    return MLP(*layers, readout)


class MLP(nn.Sequential):
    def analytic_flops(self, x) -> int:
        """2·B·in·out per layer forward; the first layer reads raw data (no input gradient)."""
        linears = [m for m in self if isinstance(m, nn.Linear)]
        return sum(
            layer_flops(2 * x.shape[0] * m.in_features * m.out_features, input_grad=i > 0)
            for i, m in enumerate(linears)
        )
