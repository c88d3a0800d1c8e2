"""A running point's forecast of its final loss, made once ``trainer.forecast`` of its steps
are done, from the finished points in its sweep's folder that followed the same schedule
(``scaling.analysis.curves``). It goes into the row (forecast_loss, _lo, _hi, _step, _refs),
beside the loss the point then reaches, and into ``forecast.json`` for the progress display.
A study point whose first forecast is off the law through the study's finished points is
off-trend: its log says so, and with ``trainer.stop_hopeless`` a point heading above it stops
(status ``hopeless``; ``--retry-failed`` resumes it)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .. import store
from ..analysis.curves import Forecast, Trend, loss_at, loss_to_loss, off_trend, trend
from ..store.tables import TUNING
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
        self.refs = None  # (steps, val losses, peak lr, N, final loss, row) of each reference
        self.recorded = False  # the row has its forecast
        self.off_trend = None  # why its first forecast is off the study's law, if it is
        self.above = False  # off it on the side of a higher loss

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
        if self.refs is None or not self.recorded:  # finished points may have joined since
            self.refs = references(Path(self.member.point_dir), self.course, self.member.row)
        refs = [(loss_at(s, losses, steps), *rest) for s, losses, *rest in self.refs]
        refs = [r for r in refs if r[0] is not None]  # evaluated at the same steps
        if not refs:
            return None
        early, lrs, sizes, finals, _ = zip(*refs)
        size = self.member.row.get("params")
        lr = self.member.spec.lr  # its own peak (a pack's members may differ)
        forecast = loss_to_loss(early, lrs, sizes, finals, own, lr, size, steps[-1],
                                self.course.steps)  # fmt: skip
        if forecast is None:
            return None
        first = not self.recorded
        law = self.law() if first else None
        for m in pack:
            if m.forecaster is not None and not m.forecaster.off:
                m.forecaster.show(forecast, law)
        if first and self.off_trend:
            print(f"[{self.course.label}] {self.off_trend}", flush=True)
        return forecast

    def law(self) -> Trend | None:
        """The law through the study's finished points at a study point's size: one point a
        size, its best lr's mean loss; None where there is none (the forecast stands alone)."""
        own = self.member.row
        if own.get("lr_source") in TUNING or self.member.spec.role not in ("point", "packed"):
            return None  # a tuning run's lr is off the best on purpose; a trunk has no law
        sweep = Path(self.member.point_dir).parent.parent
        grid = {p["point_id"]: p for p in store.read_grid(sweep)}
        best: dict = {}
        for *_, r in self.refs:
            r = store.as_planned(r, grid)  # a tuning run whose lr turned out best is a point
            if (
                r.get("lr_source") not in TUNING
                and r.get("branch_start") is None
                and r.get("train_size") == own.get("train_size")
            ):
                best.setdefault(r["params"], {}).setdefault(r["lr"], []).append(r["val_loss"])
        finals = [min(np.mean(v) for v in by_lr.values()) for by_lr in best.values()]
        try:
            return trend(list(best), finals, own["params"])
        except (ValueError, ArithmeticError, np.linalg.LinAlgError):
            return None  # no law to set the forecast beside; the forecast itself stands

    def state(self) -> dict | None:
        """What a checkpoint keeps of the first forecast: its row fields and verdict."""
        if not self.recorded:
            return None
        keys = [k for k in self.member.row if k.startswith("forecast_")]
        return {"row": {k: self.member.row[k] for k in keys}, "off_trend": self.off_trend,
                "above": self.above}  # fmt: skip

    def restore(self, state: dict | None) -> None:
        """A resumed point's first forecast, as it was made before it stopped."""
        if state:
            self.member.row.update(state["row"])
            self.recorded, self.off_trend, self.above = True, state["off_trend"], state["above"]

    def show(self, forecast: Forecast, law: Trend | None = None) -> None:
        """The forecast in the row (the first one, with the law beside it) and in the progress
        display (the latest); whether the first one is off the law."""
        if not self.recorded:
            self.recorded = True
            row = self.member.row
            row.update(forecast_loss=forecast.loss, forecast_lo=forecast.lo,
                       forecast_hi=forecast.hi, forecast_step=forecast.step,
                       forecast_refs=forecast.refs)  # fmt: skip
            if law is not None:
                row.update(forecast_law=law.loss, forecast_law_lo=law.lo, forecast_law_hi=law.hi)
            side = off_trend(forecast, law)
            if side is not None:
                self.above = side == "above"
                self.off_trend = (
                    f"off-trend: its forecast {forecast.loss:.4f} [{forecast.lo:.4f}, "
                    f"{forecast.hi:.4f}] at step {forecast.step:,} lies {side} the law through "
                    f"{law.points} finished sizes, {law.loss:.4f} [{law.lo:.4f}, {law.hi:.4f}] "
                    f"at N={row['params']:,}"
                )
        shown = forecast.__dict__ | ({"off_trend": self.off_trend} if self.off_trend else {})
        store.write_json(Path(self.member.point_dir) / FILE, shown)


MATCH = ("dataset", "family", "task", "batch_size")  # what a reference trained, as the point


def references(point_dir: Path, course, own: dict) -> list[tuple]:
    """(steps, val losses, peak lr, parameters, final loss, row) of each finished point beside
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
                        row["val_loss"], row))  # fmt: skip
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
