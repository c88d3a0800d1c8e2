"""What follows from a fitted law: the extrapolation check, the compute-optimal frontier and
IsoFLOP minima. Pure functions on arrays; no torch, no plotting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fit import Fit


@dataclass
class Extrapolation:
    """A law fitted without the largest sizes, scored on them."""

    held_out: list  # the x values left out of the fit
    rows: list  # one dict per held-out point: x, d, y, predicted, rel_error
    mean_abs_rel_error: float
    rms_log_error: float  # root mean square of log(predicted) - log(y)


def extrapolation_check(fit_fn, x, y, d=None, holdout: int = 1):
    """Fit on all but the ``holdout`` largest distinct sizes, predict those.

    Args:
        fit_fn: ``fit_fn(x, y, d) -> Fit`` on the kept points.
        x, y, d: the points.
        holdout: how many of the largest distinct x values to hold out.

    Returns:
        (the fit on the smaller sizes, an ``Extrapolation``).
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = None if d is None else np.asarray(d, dtype=float)
    sizes = np.unique(x)
    if holdout >= len(sizes):
        raise ValueError(f"cannot hold out {holdout} of {len(sizes)} sizes")
    held = sizes[-holdout:]
    out = np.isin(x, held)
    fit = fit_fn(x[~out], y[~out], None if d is None else d[~out])
    pred = fit.predict(x[out], None if d is None else d[out])
    rel = (pred - y[out]) / y[out]
    rows = [
        {
            "x": float(a),
            "d": None if d is None else float(b),
            "y": float(c),
            "predicted": float(p),
            "rel_error": float(r),
        }
        for a, b, c, p, r in zip(
            x[out], d[out] if d is not None else [None] * out.sum(), y[out], pred, rel
        )
    ]
    return fit, Extrapolation(
        held_out=[float(h) for h in held],
        rows=rows,
        mean_abs_rel_error=float(np.mean(np.abs(rel))),
        rms_log_error=float(np.sqrt(np.mean((np.log(pred) - np.log(y[out])) ** 2))),
    )


@dataclass
class Frontier:
    """Compute-optimal allocation from L(N, D): N_opt = G·(C/k)^a, D_opt = (C/k)^b / G, C = k·N·D.

    a = β/(α+β), b = α/(α+β), G = (αA / βB)^(1/(α+β)) (Hoffmann et al. 2022, Approach 3).
    """

    a: float
    b: float
    G: float
    flops_per_nd: float  # k: 6 for C = 6ND, or measured FLOPs / (N·D)
    a_ci: tuple | None = None
    b_ci: tuple | None = None

    def n_opt(self, c):
        return self.G * (np.asarray(c, dtype=float) / self.flops_per_nd) ** self.a

    def d_opt(self, c):
        return (np.asarray(c, dtype=float) / self.flops_per_nd) ** self.b / self.G


def frontier(fit: Fit, flops_per_nd: float = 6.0) -> Frontier:
    """The compute-optimal frontier of a ``chinchilla`` fit, with bootstrap intervals of its exponents."""
    if fit.form != "chinchilla":
        raise ValueError("the frontier needs the two-variable law L(N, D)")
    p = fit.params
    s = p["alpha"] + p["beta"]
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / s)
    result = Frontier(a=p["beta"] / s, b=p["alpha"] / s, G=G, flops_per_nd=flops_per_nd)
    if fit.draws is not None:
        alpha, beta = fit.draws[:, 2], fit.draws[:, 4]
        a = beta / (alpha + beta)
        lo, hi = np.percentile(a, [2.5, 97.5])
        result.a_ci = (float(lo), float(hi))
        result.b_ci = (float(1 - hi), float(1 - lo))
    return result


@dataclass
class IsoFLOP:
    """Approach 2: for each compute budget, the size at the minimum of a parabola of loss in log N."""

    budgets: list  # dicts: compute, n_opt, loss_opt, points, at_edge (minimum outside the sizes tried), curvature
    exponent: (
        float | None
    )  # N_opt ∝ C^exponent, from the budgets whose minimum lies inside their grid
    coefficient: float | None


def isoflop_minima(x, y, c) -> IsoFLOP:
    """Minimum of loss over log N per compute budget ``c``, and the N_opt(C) exponent.

    Budgets with fewer than 3 sizes are skipped; a minimum outside the sizes tried
    (or a parabola that opens downward) is flagged ``at_edge`` and left out of the exponent.
    """
    x, y, c = (np.asarray(v, dtype=float) for v in (x, y, c))
    budgets = []
    for budget in np.unique(c):
        sel = c == budget
        if len(np.unique(x[sel])) < 3:
            continue
        lx = np.log(x[sel])
        p2, p1, p0 = np.polyfit(lx, y[sel], 2)
        inside = p2 > 0 and lx.min() < -p1 / (2 * p2) < lx.max()
        log_opt = -p1 / (2 * p2) if p2 > 0 else lx[np.argmin(y[sel])]
        budgets.append({
            "compute": float(budget), "n_opt": float(np.exp(log_opt)),
            "loss_opt": float(p0 + p1 * log_opt + p2 * log_opt**2), "points": int(sel.sum()),
            "at_edge": not inside, "curvature": float(p2),
        })  # fmt: skip
    good = [b for b in budgets if not b["at_edge"]]
    exponent = coefficient = None
    if len(good) >= 2:
        slope, intercept = np.polyfit(
            np.log([b["compute"] for b in good]), np.log([b["n_opt"] for b in good]), 1
        )
        exponent, coefficient = float(slope), float(np.exp(intercept))
    return IsoFLOP(budgets=budgets, exponent=exponent, coefficient=coefficient)
