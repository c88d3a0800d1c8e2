"""The config of studies beyond one training run: compression, distillation and a tuned
learning rate. Each dataclass checks its own fields; ``schema.validate`` the rest."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from .checks import choice, positive


@dataclass
class CompressConfig:
    """A post-training step: each level is evaluated and becomes a row of its own."""

    method: str = "none"  # none | prune | quantize | cast
    # prune: fractions of weights set to zero; quantize: int8 (dynamic); cast: bf16 | fp16
    levels: list[Any] = field(default_factory=list)
    scope: str = "global"  # prune: smallest magnitudes over all layers (global) or per layer
    GROUP: ClassVar[str] = "compress"

    def __post_init__(self):
        choice(self, "method", ("none", "prune", "quantize", "cast"))
        choice(self, "scope", ("global", "layer"))


@dataclass
class DistillConfig:
    """Knowledge distillation: loss = (1-alpha)·hard-label loss + alpha·T²·KL(teacher ‖ student).

    The teacher is a path (a point folder, a sweep folder, whose best saved model is taken,
    or a model.pt file), or ``teacher_overrides``: the settings that turn the student's
    config into the teacher's, trained once inside the study.
    """

    alpha: float = 0.0  # 0: plain training
    temperature: float = 2.0
    teacher: str | None = None
    teacher_overrides: list[str] | None = None  # e.g. [model.width=512]
    GROUP: ClassVar[str] = "distill"

    def __post_init__(self):
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"distill.alpha must be in [0, 1], got {self.alpha}")
        positive(self, "temperature")

    @property
    def trains_teacher(self) -> bool:
        """Whether the study trains this point's teacher (given by overrides, not a path)."""
        return self.alpha > 0 and bool(self.teacher_overrides) and not self.teacher


@dataclass
class TuneConfig:
    """A learning rate per size, tuned: ``lrs`` run at the ``sizes`` smallest sizes of the
    sweep (ordinary points), or at sizes spread across all but its largest, the best lr per
    size from a parabola in log lr around the minimum, then lr*(N) = c·N^(-γ) fitted across
    them and used at every size."""

    lrs: list[float] = field(default_factory=list)  # the grid; empty: no tuning
    sizes: int = 3  # how many sizes run the grid
    # the tuned sizes evenly spaced from the smallest to the second largest, not the smallest:
    # γ fitted over a few times in N swings with the runs' noise, and lr*(N) bends
    spread: bool = False
    # also train the largest size at the tuned lr times and divided by the grid's step
    check: bool = False
    # train each tuned size's lrs as one packed model (torch.vmap), as trainer.pack_seeds
    # packs seeds: their rows as if trained one by one, one launch per step for all of them
    pack: bool = False
    GROUP: ClassVar[str] = "tune"

    def __post_init__(self):
        positive(self, "sizes")
        if self.lrs and (len(self.lrs) < 3 or min(self.lrs) <= 0):
            raise ValueError(
                f"tune.lrs needs three or more positive learning rates, got {self.lrs}"
            )

    @property
    def on(self) -> bool:
        return bool(self.lrs)
