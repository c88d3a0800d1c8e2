"""A running point's forecast of its final loss, made once ``trainer.forecast`` of its steps
are done, from the finished points in its sweep's folder that followed the same schedule
(``scaling.analysis.curves``). It goes into the row (forecast_loss, _lo, _hi, _step, _refs),
beside the loss the point then reaches, and into ``forecast.json`` for the progress display."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import store
from ..analysis.curves import Forecast, loss_at, loss_to_loss
from .optim import lr_at

FILE = "forecast.json"


class Forecaster:
    """Watches one member's history. From the first evaluation past its share that has two
    before it, it forecasts at every evaluation from the references: the first forecast is
    the row's, every later one (it knows more of the run) is the progress display's. The
    references are read until the row has its forecast, then kept. Seeds packed beside it
    at its lr share one forecast, from their mean early loss: six seeds of one MLP whose
    losses at a quarter of the run differed by 0.5% ended with a 7% standard deviation,
    uncorrelated with it."""

    def __init__(self, course, member, share: float, pack=()):
        self.course, self.member = course, member
        self.seeds = [m for m in pack if m is not member  # packed beside it, at its own lr
                      and math.isclose(m.spec.lr, member.spec.lr, rel_tol=1e-9)]  # fmt: skip
        self.at = math.ceil(share * course.steps)
        self.off = member.point_dir is None or not 0 < share < 1
        self.refs = None  # (steps, val losses, peak lr, N, final loss) of each reference
        self.recorded = False  # the row has its forecast

    def update(self) -> Forecast | None:
        history = self.member.history
        if self.off or len(history) < 2 or history[-1]["step"] < self.at:
            return None
        steps = [int(h["step"]) for h in history[-2:]]
        pack = [self.member, *(m for m in self.seeds if m.alive)]
        if any(not m.history or m.history[-1]["step"] < steps[-1] for m in pack):
            return None  # the last of its packed seeds to record the step forecasts for them all
        # the seeds' mean early loss: a seed's luck at this step does not carry to the end
        seen = [loss_at([int(h["step"]) for h in m.history[-2:]],
                        [h["val_loss"] for h in m.history[-2:]], steps) for m in pack]  # fmt: skip
        seen = [v for v in seen if v is not None]
        if not seen:
            return None
        own = float(np.mean(seen))
        if not self.recorded:  # finished points may have joined since the last evaluation
            self.refs = references(Path(self.member.point_dir), self.course, self.member.row)
        refs = [(loss_at(s, losses, steps), *rest) for s, losses, *rest in self.refs]
        refs = [r for r in refs if r[0] is not None]  # evaluated at the same steps
        if not refs:
            return None
        early, lrs, sizes, finals = zip(*refs)
        size = self.member.row.get("params")
        lr = self.member.spec.lr  # its own peak (a pack's members may differ)
        forecast = loss_to_loss(early, lrs, sizes, finals, own, lr, size, steps[-1])
        if forecast is None:
            return None
        for m in pack:
            if m.forecaster is not None and not m.forecaster.off:
                m.forecaster.show(forecast)
        return forecast

    def show(self, forecast: Forecast) -> None:
        """The forecast in the row (the first one) and in the progress display (the latest)."""
        if not self.recorded:
            self.recorded = True
            self.member.row.update(forecast_loss=forecast.loss, forecast_lo=forecast.lo,
                                   forecast_hi=forecast.hi, forecast_step=forecast.step,
                                   forecast_refs=forecast.refs)  # fmt: skip
        store.write_json(Path(self.member.point_dir) / FILE, forecast.__dict__)


MATCH = ("dataset", "family", "task", "batch_size")  # what a reference trained, as the point


def references(point_dir: Path, course, own: dict) -> list[tuple]:
    """(steps, val losses, peak lr, parameters, final loss) of each finished point beside
    ``point_dir`` that trained the same task on the same data, with the same batch, for the
    same number of steps under the same schedule, whatever its peak lr and size."""
    out = []
    for other in sorted(point_dir.parent.glob("*")):
        row = store.read_result(other)
        if (other == point_dir or row is None or row["status"] != "ok"
                or row.get("role") == "trunk" or row.get("steps") != course.steps
                or any(row.get(k) != own.get(k) for k in MATCH)
                or not all(row.get(k) for k in ("lr", "val_loss", "params"))):  # fmt: skip
            continue
        h = store.read_history(other)
        if (
            h is not None
            and {"step", "val_loss", "lr"} <= set(h)
            and same_schedule(h, row["lr"], course)
        ):
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
