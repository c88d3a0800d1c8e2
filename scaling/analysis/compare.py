"""Is a variant better than a baseline, by how much compute, and does the gain grow with scale?

Each side's law in compute, L(C) = E + A·C^-α: fitted on C directly, or, where D varies, from
the compute-optimal envelope of L(N, D) (which is itself E + A'·C^-γ, γ = αβ/(α+β)). The
**compute multiplier** of the variant at a compute C is the baseline compute that reaches the
variant's loss at C, divided by C:

    M(C) = L_b⁻¹(L_v(C)) / C = ((L_b(C) − E_b) / (L_v(C) − E_b))^(1/α_b)

It is computed for every bootstrap refit of both sides, so it carries an interval. The
resamples are paired: with many sizes the same runs are drawn on both sides (rows matched by
size and seed); with few, each side's law plus noise of its own measured scale is resampled
(the noise of two runs is independent). No torch here, and nothing here plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import intervals
from .fit import Fit, fit_law
from .laws import _design, natural

LEVELS = (0.90, 0.95)


@dataclass(frozen=True)
class ComputeLaw:
    """L(C) = E + A·C^-α for R parameter sets at once (arrays of length R)."""

    E: np.ndarray
    A: np.ndarray
    alpha: np.ndarray

    def loss(self, c) -> np.ndarray:
        """(R × m) losses at the computes ``c``."""
        c = np.atleast_1d(np.asarray(c, float))
        with np.errstate(over="ignore", invalid="ignore"):  # a wild refit: inf, left to compute_for
            return self.E[:, None] + self.A[:, None] * c[None] ** -self.alpha[:, None]

    def compute_for(self, loss: np.ndarray) -> np.ndarray:
        """The compute that reaches each loss (R × m); inf where it lies at or below E."""
        gap = loss - self.E[:, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            c = (self.A[:, None] / gap) ** (1 / self.alpha[:, None])
        return np.where(gap > 0, c, np.inf)


def compute_law(fit: Fit, theta: np.ndarray, k: float = 6.0) -> ComputeLaw:
    """The law in compute of R parameter sets of ``fit`` (log space, R × p). For L(N, D):
    the compute-optimal envelope at C = k·N·D."""
    p = natural(fit.form, theta)
    if fit.form == "power":
        return ComputeLaw(np.zeros(len(p)), p[:, 0], p[:, 1])
    if fit.form == "saturating":
        return ComputeLaw(p[:, 0], p[:, 1], p[:, 2])
    E, A, alpha, B, beta = p.T
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))  # N_opt = g·(C/k)^a
    gamma = alpha * beta / (alpha + beta)
    # at C = k: N = g, D = 1/g; and L − E scales as (C/k)^-γ
    reducible = A * g**-alpha + B * g**beta
    return ComputeLaw(E, reducible * k**gamma, gamma)


def multiplier(baseline: ComputeLaw, variant: ComputeLaw, c) -> np.ndarray:
    """M(C): the baseline compute that reaches the variant's loss at C, over C (R × m)."""
    c = np.atleast_1d(np.asarray(c, float))
    return baseline.compute_for(variant.loss(c)) / c[None]


def quantile_interval(draws: np.ndarray, level: float) -> tuple:
    """Percentiles of draws along axis 0; inf survives (no interpolation across it)."""
    tail = (1 - level) / 2
    lo = np.quantile(draws, tail, axis=0, method="inverted_cdf")
    hi = np.quantile(draws, 1 - tail, axis=0, method="inverted_cdf")
    return lo, hi


def _intervals(draws: np.ndarray) -> dict:
    """``ci90`` and ``ci95`` of a quantity's draws (one value per refit)."""
    out = {}
    for level in LEVELS:
        lo, hi = quantile_interval(draws, level)
        out[f"ci{round(level * 100)}"] = (float(lo), float(hi))
    return out


@dataclass
class Side:
    """One study of a comparison: its table, the fit, its law in compute (point and draws)."""

    name: str
    df: pd.DataFrame
    fit: Fit
    law: ComputeLaw
    draws: ComputeLaw
    compute: np.ndarray  # each row's compute
    k: float = 6.0  # FLOPs per N·D, for L(N, D)


@dataclass
class Comparison:
    """``compare``'s answer: multipliers per budget and per size, their trend, a target."""

    x: str
    y: str
    baseline: Side
    variant: Side
    budgets: list = field(default_factory=list)  # compute, multiplier, ci90, ci95, extrapolated
    sizes: list = field(default_factory=list)  # size, compute, loss, multiplier, ci90, ci95
    trend: dict = field(default_factory=dict)  # slope of log M in log C, ci90, ci95
    target: dict | None = None  # the multiplier at a target compute
    wall: dict | None = None  # throughput of each side and the wall-clock multipliers
    paired: str = ""  # how the resamples were paired
    notes: list = field(default_factory=list)

    def record(self) -> dict:
        """What compare.json keeps."""
        side = lambda s: {"name": s.name, "fit": s.fit.record(), "k": s.k,  # noqa: E731
                          "law_in_compute": {"E": float(s.law.E[0]), "A": float(s.law.A[0]),
                                             "alpha": float(s.law.alpha[0])}}  # fmt: skip
        return {"x": self.x, "y": self.y, "baseline": side(self.baseline),
                "variant": side(self.variant), "budgets": self.budgets, "sizes": self.sizes,
                "trend": self.trend, "target": self.target, "wall_clock": self.wall,
                "paired": self.paired, "notes": self.notes}  # fmt: skip


def fit_side(name: str, df: pd.DataFrame, x: str, y: str, n: str, d: str | None,
             resamples: int, seed: int) -> Side:  # fmt: skip
    """Fit one side: L(C) on ``x``, or L(N, D) on ``n`` and ``d``; then its bootstrap refits,
    with the noise measured from the residuals (or given by seeds) drawn as uncertain as it is."""
    order = [c for c in (n if d else x, d, "trainer.seed") if c and c in df]
    df = df.sort_values(order, kind="stable")
    X = df[n if d else x].to_numpy(float)
    D = df[d].to_numpy(float) if d else None
    logy = np.log(df[y].to_numpy(float))
    form = "chinchilla" if d else "saturating"
    fit = fit_law(X, np.exp(logy), D, form=form)
    design = _design(form, np.log(X), None if D is None else np.log(D))
    noise = intervals.residual_noise(fit, logy, design)
    intervals.bootstrap(fit, design, logy, len(np.unique(X)), resamples, seed, noise)
    compute = df[x].to_numpy(float)
    k = float(np.median(compute / (X * D))) if d else 6.0
    return Side(name, df, fit, compute_law(fit, fit.raw[None], k), compute_law(fit, fit.draws, k),
                compute, k)  # fmt: skip


def compare(baseline: pd.DataFrame, variant: pd.DataFrame, x: str = "flops_total",
            y: str = "val_loss", n: str = "params", d: str | None = None,
            target: float | None = None, resamples: int = 1000, seed: int = 0,
            names: tuple = ("baseline", "variant")) -> Comparison:  # fmt: skip
    """The variant's compute multiplier over the baseline, with paired-bootstrap intervals.

    Args:
        baseline, variant: one row per run, with numeric, positive ``x`` (compute), ``y``
            (loss), and for L(N, D) ``n`` and ``d``.
        x: the compute column (FLOPs, or seconds for a wall-clock law).
        d: the data column: fit L(N, D) per side and compare their compute-optimal envelopes.
        target: a compute at which to report the multiplier (an extrapolation if beyond both).
        resamples: bootstrap refits per side.

    Returns:
        A ``Comparison``.
    """
    same = len(baseline) == len(variant) and _matched(baseline, variant, n)
    many = min(baseline[n].nunique(), variant[n].nunique()) >= intervals.MANY
    # pairs: the same draws of runs on both sides; parametric: independent noise per side
    seeds = (seed, seed) if same and many else (seed, seed + 1)
    sides = [fit_side(name, df, x, y, n, d, resamples, s)
             for name, df, s in zip(names, (baseline, variant), seeds)]  # fmt: skip
    result = Comparison(x, y, *sides)
    result.paired = ("the same runs resampled on both sides (rows matched by size and seed)"
                     if same and many else
                     "each side's law plus its own measured noise, resampled independently")  # fmt: skip
    _budgets(result)
    _trend(result)
    _sizes(result, n)
    if target:
        result.target = _at(result, float(target))
    _wall_clock(result)
    return result


def _matched(a: pd.DataFrame, b: pd.DataFrame, n: str) -> bool:
    key = [n] + (["trainer.seed"] if "trainer.seed" in a and "trainer.seed" in b else [])
    return sorted(map(tuple, a[key].to_numpy().tolist())) == sorted(
        map(tuple, b[key].to_numpy().tolist())
    )


def paired_draws(result: Comparison):
    """The two sides' refits, index by index (refits that failed leave the longer side cut)."""
    b, v = result.baseline.draws, result.variant.draws
    r = min(len(b.E), len(v.E))
    cut = lambda law: ComputeLaw(law.E[:r], law.A[:r], law.alpha[:r])  # noqa: E731
    return cut(b), cut(v)


def _at(result: Comparison, c: float) -> dict:
    b, v = result.baseline, result.variant
    point = float(multiplier(b.law, v.law, c)[0, 0])
    draws = multiplier(*paired_draws(result), c)[:, 0]
    out = {"compute": c, "multiplier": point, "baseline_compute": point * c} | _intervals(draws)
    covered = min(b.compute.max(), v.compute.max())
    out["extrapolated"] = bool(c > covered or point * c > b.compute.max())
    return out


def _budgets(result: Comparison) -> None:
    """The multiplier at each of the variant's budgets that both studies cover."""
    b, v = result.baseline, result.variant
    lo, hi = max(b.compute.min(), v.compute.min()), min(b.compute.max(), v.compute.max())
    budgets = np.unique(v.compute[(v.compute >= lo) & (v.compute <= hi)])
    if len(budgets) < 2:
        budgets = np.unique(np.geomspace(min(lo, hi), max(lo, hi), 5))
        result.notes.append("the studies' computes barely overlap: multipliers at 5 computes "
                            "spaced across the overlap")  # fmt: skip
    result.budgets = [_at(result, c) for c in budgets]
    beyond = [r for r in result.budgets if r["extrapolated"]]
    if beyond:
        result.notes.append(f"at {len(beyond)} budget(s) the baseline needs more compute than its "
                            "largest run: those multipliers extrapolate the baseline's law")  # fmt: skip


def _trend(result: Comparison) -> None:
    """Least-squares slope of log M in log C across the budgets, for the point and each refit."""
    c = np.array([r["compute"] for r in result.budgets])
    if len(c) < 2:
        return
    logc = np.log(c) - np.log(c).mean()
    slope = lambda logm: (logm * logc).sum(axis=-1) / (logc**2).sum()  # noqa: E731
    point = float(slope(np.log([r["multiplier"] for r in result.budgets])))
    logm = np.log(multiplier(*paired_draws(result), c))
    finite = np.isfinite(logm).all(axis=1)
    draws = slope(logm[finite])
    result.trend = {"slope": point, "draws": int(finite.sum())} | _intervals(draws)
    lo, hi = result.trend["ci95"]
    result.trend["verdict"] = (
        "grows with compute" if lo > 0 else "shrinks with compute" if hi < 0 else "no trend shown"
    )
    if (~finite).any():
        result.notes.append(f"{int((~finite).sum())} refits put the variant's loss below the "
                            "baseline's floor E (no compute reaches it); the trend leaves them out")  # fmt: skip


def _sizes(result: Comparison, n: str) -> None:
    """At each size both ran: the variant's measured loss (mean over seeds), the baseline
    compute that reaches it, over the variant's compute at that size."""
    b, v = result.baseline, result.variant
    if n not in b.df or n not in v.df:
        return
    shared = np.intersect1d(b.df[n].unique(), v.df[n].unique())
    means = v.df.assign(_c=v.compute).groupby(n)[[result.y, "_c"]].mean()
    for size in shared:
        loss, c = means.loc[size, result.y], means.loc[size, "_c"]
        needed = b.law.compute_for(np.array([[loss]]))[0, 0] / c
        draws = b.draws.compute_for(np.full((len(b.draws.E), 1), loss))[:, 0] / c
        result.sizes.append({"size": float(size), "compute": float(c), "loss": float(loss),
                             "multiplier": float(needed)} | _intervals(draws))  # fmt: skip


def _wall_clock(result: Comparison) -> None:
    """Wall-clock multipliers: M times the variant's throughput over the baseline's, each the
    median over its runs of compute per second."""
    b, v = result.baseline, result.variant
    if "wall_time_s" not in b.df or "wall_time_s" not in v.df:
        return
    rate = lambda s: float(np.median(s.compute / s.df["wall_time_s"].to_numpy(float)))  # noqa: E731
    rb, rv = rate(b), rate(v)
    ratio = rv / rb
    result.wall = {
        "rate_baseline": rb, "rate_variant": rv, "ratio": ratio,
        "budgets": [{"compute": r["compute"], "multiplier": r["multiplier"] * ratio,
                     "ci90": tuple(x * ratio for x in r["ci90"])} for r in result.budgets],
    }  # fmt: skip
