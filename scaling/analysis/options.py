"""The analysis settings and their defaults, in one place: the command line, the end of a
sweep and a notebook all read them here. (No numpy: ``scale --help`` imports it.)"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Options:
    """What to analyse and how; every default of ``scale fit|plot|report``."""

    x: str = "params"  # size column N
    y: str = "val_loss"  # loss column
    d: str | None = None  # data column D, for L(N, D); sweeps: found when it varies
    c: str | None = None  # compute-budget column, for IsoFLOP minima
    form: str = "saturating"  # the law in N: saturating or power
    holdout: int | None = None  # the K largest sizes held out; None: 1, and 2 where sizes spare
    tolerance: float = 0.05  # the prediction of held-out sizes passes within this relative error
    group: str | None = None  # a column whose values each get their own law (a training set)
    bootstrap: int = 1000  # resamples for 95% intervals
    seed: int = 0  # seed of the bootstrap


DEFAULTS = Options()
