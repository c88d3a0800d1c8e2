"""The learning rate per size, from a tuning grid: the best lr at each tuned size, and the
power law lr*(N) = c·N^(-γ) through them that sets the lr of every other size."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats


@dataclass
class BestLR:
    """One size's best learning rate among those tried."""

    size: float  # N
    lr: float  # the minimum of a parabola in log lr through the best run and its neighbours
    lrs: list  # the grid, ascending
    losses: list  # the loss at each (NaN where a run failed or diverged)
    edge: str | None = None  # "smallest" | "largest" when the best tried lr is at that end

    @property
    def loss(self) -> float:
        return float(np.nanmin(self.losses))


def best_lr(lrs, losses) -> BestLR:
    """The best lr of one size: the vertex of the parabola in log lr through the lowest loss and
    its two neighbours (the grid's own lr where the lowest is at an end of the grid, or the
    three points do not curve upward). Failed runs (NaN, inf) count as worse than any."""
    order = np.argsort(lrs)
    x = np.log(np.asarray(lrs, float)[order])
    y = np.asarray(losses, float)[order]
    finite = np.isfinite(y)
    if not finite.any():
        raise ValueError("no run of the lr grid finished")
    i = int(np.nanargmin(np.where(finite, y, np.nan)))
    lrs_sorted = [float(v) for v in np.exp(x)]
    result = BestLR(float("nan"), lrs_sorted[i], lrs_sorted, [float(v) for v in y])
    if i == 0 or i == len(x) - 1:
        result.edge = "smallest" if i == 0 else "largest"
        return result
    if not (finite[i - 1] and finite[i + 1]):
        return result
    a, b, _ = np.polyfit(x[i - 1 : i + 2], y[i - 1 : i + 2], 2)
    if a > 0:
        result.lr = float(np.exp(np.clip(-b / (2 * a), x[i - 1], x[i + 1])))
    return result


@dataclass
class LRLaw:
    """lr*(N) = c·N^(-γ), fitted by least squares in log-log through each tuned size's best lr."""

    c: float
    gamma: float
    gamma_ci: tuple  # 95% (t interval); NaN with fewer than three sizes
    best: list = field(default_factory=list)  # BestLR per tuned size, ascending in size

    def __call__(self, size: float) -> float:
        return self.c * size ** (-self.gamma)

    def text(self) -> str:
        ci = "" if math.isnan(self.gamma_ci[0]) else \
            f", γ 95% CI [{self.gamma_ci[0]:.3f}, {self.gamma_ci[1]:.3f}]"  # fmt: skip
        return f"lr*(N) = {self.c:.4g}·N^{-self.gamma:.3f}{ci}"

    def record(self) -> dict:
        return {"c": self.c, "gamma": self.gamma, "gamma_ci": list(self.gamma_ci),
                "best": [vars(b) for b in self.best]}  # fmt: skip

    @classmethod
    def from_record(cls, record: dict) -> LRLaw:
        ci = tuple(math.nan if v is None else v for v in record["gamma_ci"])
        return cls(record["c"], record["gamma"], ci, [BestLR(**b) for b in record["best"]])


def fit_lr_law(best: list[BestLR]) -> LRLaw:
    """lr*(N) through the best lr of each size; one size gives γ = 0 (its lr everywhere)."""
    best = sorted(best, key=lambda b: b.size)
    logn = np.log([b.size for b in best])
    loglr = np.log([b.lr for b in best])
    if len(best) == 1:
        return LRLaw(float(np.exp(loglr[0])), 0.0, (math.nan, math.nan), best)
    slope, intercept = np.polyfit(logn, loglr, 1)
    ci = (math.nan, math.nan)
    if len(best) > 2:
        resid = loglr - (intercept + slope * logn)
        se = math.sqrt(resid @ resid / (len(best) - 2) / ((logn - logn.mean()) ** 2).sum())
        t = stats.t.ppf(0.975, len(best) - 2)
        ci = (float(-slope - t * se), float(-slope + t * se))
    return LRLaw(float(np.exp(intercept)), float(-slope), ci, best)


def tune_table(rows: pd.DataFrame, x: str = "params", y: str = "val_loss") -> list[BestLR]:
    """Each tuned size's BestLR from its tuning rows (columns x, ``lr``, y and ``status``)."""
    best = []
    for size, runs in rows.groupby(x, sort=True):
        ok = runs["status"].eq("ok") if "status" in runs else True
        loss = pd.to_numeric(runs[y], errors="coerce").where(ok)
        by_lr = loss.groupby(pd.to_numeric(runs["lr"])).mean()  # seeds of one lr averaged
        b = best_lr(by_lr.index.to_numpy(), by_lr.to_numpy())
        b.size = float(size)
        best.append(b)
    return best
