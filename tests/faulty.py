"""A model family for tests: an MLP that fails on demand, registered like any family.

``$SCALING_FAULT`` says how and when: ``KIND@STEP`` with optional ``:width=W`` and
``:rank=R`` (only that width, only that process of a group). KIND is ``raise``
(RuntimeError), ``oom`` (torch.OutOfMemoryError), ``memory`` (MemoryError), ``nan`` (a
NaN output) or ``interrupt`` (KeyboardInterrupt); STEP counts training forward passes.
``naninit:seed=S`` instead builds the model of seed S with a NaN weight.
Planning counts FLOPs on a fake model, which never fails. Importing this module adds
``model=faulty``, as one file and one registry line add any family.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
from torch import nn
from torch._subclasses.fake_tensor import is_fake

from scaling.config.compose import register
from scaling.models import FAMILIES, mlp

ENV = "SCALING_FAULT"
KINDS, SIZES, from_size = mlp.KINDS, mlp.SIZES, mlp.from_size


@dataclass
class Config(mlp.Config):
    family: str = "faulty"


def build(cfg, spec):
    model = Faulty(mlp.build(cfg, spec), cfg.width)
    fault = _fault()
    if fault and fault["kind"] == "naninit" and torch.initial_seed() == fault.get("seed"):
        with torch.no_grad():
            next(model.parameters()).view(-1)[0] = float("nan")
    return model


class Faulty(nn.Module):
    def __init__(self, inner: nn.Module, width: int):
        super().__init__()
        self.inner, self.width, self.calls = inner, width, 0

    def forward(self, x):
        out = self.inner(x)
        if not self.training or is_fake(x):
            return out
        self.calls += 1
        fault = _fault()
        if fault is None or fault["step"] != self.calls:
            return out
        if fault.get("width") not in (None, self.width) or fault.get("rank") not in (None, _rank()):
            return out
        if fault["kind"] == "nan":
            return out * float("nan")
        raise {"raise": RuntimeError("boom"), "oom": torch.OutOfMemoryError("out of memory (simulated)"),
               "memory": MemoryError(f"rank {_rank()} ran out"), "interrupt": KeyboardInterrupt()}[fault["kind"]]  # fmt: skip

    def analytic_flops(self, x) -> int:
        return self.inner.analytic_flops(x)


def _fault() -> dict | None:
    text = os.environ.get(ENV)
    if not text:
        return None
    head, *options = text.split(":")
    kind, _, step = head.partition("@")
    if kind == "naninit":
        step = "0"
    fault = {"kind": kind, "step": int(step or 1)}
    for option in options:
        key, _, value = option.partition("=")
        fault[key] = int(value)
    return fault


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


FAMILIES["faulty"] = sys.modules[__name__]
register()
