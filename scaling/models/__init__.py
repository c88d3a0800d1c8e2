"""Model families behind one registry.

Each family module defines ``Config`` (its size fields, extending
``config.schema.ModelConfig``), ``build(cfg, spec) -> nn.Module``, ``SIZES`` (named sizes,
``debug`` among them), ``from_size(k, cfg) -> dict`` (the rule that turns one integer knob
into the family's size fields) and ``KINDS`` (the data kinds it accepts). Adding a family is
one module plus one line in ``FAMILIES``; the config group ``model=<name>`` follows from it.

A model sees its data only through a spec (``scaling.data.DataSpec``): kind, task, input
shape and number of outputs.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from . import cnn, linear, mlp, rnn, transformer

FAMILIES = {
    "mlp": mlp,
    "cnn": cnn,
    "rnn": rnn,
    "transformer": transformer,
    "linear": linear,
}


def family(name: str):
    if name not in FAMILIES:
        raise ValueError(f"unknown model family '{name}'; choose from: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def size_fields(model_cfg) -> dict:
    """The size fields that ``model.size`` sets for this family (empty when size is unset)."""
    size = model_cfg.size
    if size is None:
        return {}
    fam = family(model_cfg.family)
    if isinstance(size, str) and not size.lstrip("-").isdigit():
        if size not in fam.SIZES:
            raise ValueError(f"unknown size '{size}' for {model_cfg.family}; choose from: "
                             f"{', '.join(fam.SIZES)} or an integer")  # fmt: skip
        return dict(fam.SIZES[size])
    k = int(size)
    if k <= 0:
        raise ValueError(f"model.size must be a positive integer, got {k}")
    return fam.from_size(k, model_cfg)


def build_model(model_cfg, spec):
    """Build the family's network for data of shape ``spec``; a mismatch is a ValueError."""
    if isinstance(model_cfg, DictConfig):
        model_cfg = OmegaConf.to_object(model_cfg)
    fam = family(model_cfg.family)
    if spec.kind not in fam.KINDS:
        raise ValueError(f"model '{model_cfg.family}' cannot train on {spec.kind} data ({spec.task}); "
                         f"it takes: {', '.join(fam.KINDS)}")  # fmt: skip
    return fam.build(model_cfg, spec)
