"""A running point's forecast of its final loss, made once ``trainer.forecast`` of its steps
are done, from the finished points in its sweep's folder that followed the same schedule
(``scaling.analysis.curves``). It goes into the row (forecast_loss, _lo, _hi, _step, _refs),
beside the loss the point then reaches, and into ``forecast.json`` for the progress display."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import store
from ..analysis.curves import Forecast, early_loss, loss_to_loss
from .optim import lr_at

FILE = "forecast.json"


class Forecaster:
    """Watches one member's history. At the first evaluation past its share that has two
    before it, it reads the references and forecasts: that forecast is the row's. At every
    evaluation after, it forecasts again from the same references at the new step, for the
    progress display (a later forecast knows more of the run)."""

    def __init__(self, course, member, share: float):
        self.course, self.member = course, member
        self.at = math.ceil(share * course.steps)
        self.off = member.point_dir is None or not 0 < share < 1
        self.refs = None  # (steps, val losses, peak lr, N, final loss) of each reference

    def update(self) -> Forecast | None:
        history = self.member.history
        if self.off or not history or history[-1]["step"] < self.at:
            return None
        step = int(history[-1]["step"])
        own = early_loss([h["step"] for h in history], [h["val_loss"] for h in history], step)
        if own is None:  # too few evaluations yet: the next one
            return None
        first = self.refs is None
        if first:
            self.refs = references(Path(self.member.point_dir), self.course)
        early = [early_loss(steps, losses, step) for steps, losses, *_ in self.refs]
        refs = [(e, *ref[2:]) for e, ref in zip(early, self.refs) if e is not None]
        if not refs:
            return None
        early, lrs, sizes, finals = zip(*refs)
        size = self.member.row.get("params")
        lr = self.member.spec.lr  # its own peak (a pack's members may differ)
        forecast = loss_to_loss(early, lrs, sizes, finals, own, lr, size, step)
        if forecast is None:
            self.off = first  # too few references: they will not become more
            return None
        if first:
            self.member.row.update(forecast_loss=forecast.loss, forecast_lo=forecast.lo,
                                   forecast_hi=forecast.hi, forecast_step=step,
                                   forecast_refs=forecast.refs)  # fmt: skip
        store.write_json(Path(self.member.point_dir) / FILE, forecast.__dict__)
        return forecast


def references(point_dir: Path, course) -> list[tuple]:
    """(steps, val losses, peak lr, parameters, final loss) of each finished point beside
    ``point_dir`` that ran the same number of steps under the same schedule, whatever its
    peak lr."""
    out = []
    for other in sorted(point_dir.parent.glob("*")):
        row = store.read_result(other)
        if (other == point_dir or row is None or row["status"] != "ok"
                or row.get("role") == "trunk" or row.get("steps") != course.steps
                or not all(row.get(k) for k in ("lr", "val_loss", "params"))):  # fmt: skip
            continue
        h = store.read_history(other)
        if h is not None and same_schedule(h, row["lr"], course):
            out.append((h["step"].to_numpy(), h["val_loss"].to_numpy(), row["lr"], row["params"],
                        row["val_loss"]))  # fmt: skip
    return out


def same_schedule(history, peak_lr: float, course) -> bool:
    """Whether a run's recorded lrs, over its peak, follow ``course``'s schedule."""
    steps = history["step"].to_numpy()
    ours = [lr_at(s - 1, course.steps, course.optim, 1.0, course.warmup) for s in steps]
    return bool(np.allclose(history["lr"].to_numpy() / peak_lr, ours, rtol=1e-3, atol=1e-9))


def read(point_dir: Path) -> dict | None:
    """A running point's forecast, or None before it has one."""
    return store.read_json(Path(point_dir) / FILE)


__all__ = ["FILE", "Forecaster", "read", "references", "same_schedule"]
