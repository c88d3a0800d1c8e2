"""What follows from a fitted law: the extrapolation check, the compute-optimal frontier and
IsoFLOP minima. Pure functions on arrays; no torch, no plotting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import intervals
from .fit import Fit
from .laws import _design, natural
from .varpro import varpro_fit

TOLERANCE = 0.05  # the extrapolation check passes when every held-out size is predicted this well
LOO_SPREAD = 0.25  # an exponent that moves by more than this share when one size is left out


@dataclass
class Extrapolation:
    """A law fitted without the largest sizes, scored on them: the study's prediction test."""

    held_out: list  # the x values left out of the fit
    rows: list  # per held-out size: x, d, y (mean over its runs), runs, predicted, lo, hi (95%
    # prediction interval of that mean), rel_error, inside
    mean_abs_rel_error: float
    rms_log_error: float  # root mean square of log(predicted) - log(y)
    tolerance: float = TOLERANCE
    passed: bool = False  # every held-out point within the tolerance
    inside: bool = False  # every held-out point inside its 95% prediction interval

    def verdict(self) -> str:
        worst = max(self.rows, key=lambda r: abs(r["rel_error"]))
        where = "inside" if self.inside else "outside"
        return (f"{'PASS' if self.passed else 'FAIL'}: predicted within {self.tolerance:.0%}? "
                f"{worst['rel_error']:+.1%} at the largest miss, {where} the 95% prediction interval")  # fmt: skip


def extrapolation_check(fit_fn, x, y, d=None, holdout: int = 1, tolerance: float = TOLERANCE):
    """Fit on all but the ``holdout`` largest distinct sizes, predict those.

    Args:
        fit_fn: ``fit_fn(x, y, d) -> Fit`` on the kept points, with bootstrap draws.
        x, y, d: the points.
        holdout: how many of the largest distinct x values to hold out.
        tolerance: the relative error under which the prediction passes.

    Returns:
        (the fit on the smaller sizes, an ``Extrapolation``). A held-out size trained at
        several seeds is judged by their mean loss, which is what the law predicts (one
        seed's luck is not the law's error); its prediction interval is that of the mean
        of as many new runs: the law's uncertainty and run-to-run noise over √runs.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = None if d is None else np.asarray(d, dtype=float)
    sizes = np.unique(x)
    if holdout >= len(sizes):
        raise ValueError(f"cannot hold out {holdout} of {len(sizes)} sizes")
    held = sizes[-holdout:]
    out = np.isin(x, held)
    fit = fit_fn(x[~out], y[~out], None if d is None else d[~out])
    xo, do, yo, runs = _means(x[out], None if d is None else d[out], y[out])
    pred = fit.predict(xo, do)
    lo, hi = fit.predict_interval(xo, do, noise=True, runs=runs) if fit.draws is not None else (pred, pred)
    rel = (pred - yo) / yo
    rows = [{"x": float(xo[i]), "d": None if do is None else float(do[i]), "y": float(yo[i]),
             "runs": int(runs[i]), "predicted": float(pred[i]), "lo": float(lo[i]),
             "hi": float(hi[i]), "rel_error": float(rel[i]), "inside": bool(lo[i] <= yo[i] <= hi[i])}
            for i in range(len(yo))]  # fmt: skip
    return fit, Extrapolation(
        held_out=[float(h) for h in held], rows=rows,
        mean_abs_rel_error=float(np.mean(np.abs(rel))),
        rms_log_error=float(np.sqrt(np.mean((np.log(pred) - np.log(yo)) ** 2))),
        tolerance=tolerance, passed=bool(np.all(np.abs(rel) <= tolerance)),
        inside=all(r["inside"] for r in rows),
    )  # fmt: skip


def _means(x, d, y):
    """One point per distinct (x, d): the mean of its runs' y, and how many runs it has."""
    keys = np.stack([x, np.zeros_like(x) if d is None else d], 1)
    unique, which = np.unique(keys, axis=0, return_inverse=True)
    which = which.ravel()
    runs = np.bincount(which)
    means = np.bincount(which, weights=y) / runs
    return unique[:, 0], None if d is None else unique[:, 1], means, runs


@dataclass
class Goodness:
    """How well a law describes its own points."""

    rows: list  # per point: x, d, y, predicted, residual (relative: y/predicted − 1)
    rms_log: float  # RMS of the log residuals
    noise: float | None  # run-to-run noise of log loss, where seeds measure it
    loo: dict  # exponent -> (lowest, highest) over refits that leave one size out

    def problems(self, params: dict) -> list[str]:
        """What a reader must know: a law that misses its points, or leans on one of them."""
        out = []
        if self.noise and self.rms_log > 2 * self.noise:
            out.append(f"the law misses its points by {self.rms_log:.1%} (RMS), more than twice "
                       f"the run-to-run noise ({self.noise:.1%}): it does not describe them")  # fmt: skip
        for name, (lo, hi) in self.loo.items():
            if hi - lo > LOO_SPREAD * abs(params[name]):
                out.append(f"leaving one size out moves {name} from {lo:.3g} to {hi:.3g} "
                           f"(fitted: {params[name]:.3g}): the law leans on single points")  # fmt: skip
        return out


def goodness(fit: Fit, x, y, d=None, noise: float | None = None) -> Goodness:
    """Residuals per point, their RMS against the seed noise, and the exponents' spread when
    each size is left out in turn (refitted in one vectorised pass)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    d = None if d is None else np.asarray(d, dtype=float)
    pred = fit.predict(x, d)
    rows = [{"x": float(x[i]), "d": None if d is None else float(d[i]), "y": float(y[i]),
             "predicted": float(pred[i]), "residual": float(y[i] / pred[i] - 1)}
            for i in range(len(y))]  # fmt: skip
    rms = float(np.sqrt(np.mean(np.log(y / pred) ** 2)))
    sizes = np.unique(x)
    loo = {}
    if len(sizes) > len(fit.raw) + 1:  # each refit keeps more sizes than parameters
        design = _design(fit.form, np.log(x), None if d is None else np.log(d))
        masks = np.array([(x != s).astype(float) for s in sizes])
        draws, ok = intervals.refit(fit, design, np.tile(np.log(y), (len(sizes), 1)), masks)
        values = natural(fit.form, draws[ok])
        for k, name in enumerate(fit.params):
            if name in ("alpha", "beta") and ok.any():
                loo[name] = (float(values[:, k].min()), float(values[:, k].max()))
    return Goodness(rows, rms, noise, loo)


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
    """Approach 2: for each compute budget, the size at the minimum of a parabola of loss in
    log N; and, as the estimate to use, L(N, D) fitted to every point by variable projection
    (``varpro``), whose N_opt(C) carries no parabola bias (Czech et al.)."""

    budgets: (
        list  # dicts: compute, n_opt, loss_opt, points, at_edge, curvature, n_opt_fit, off_centre
    )
    exponent: float | None  # N_opt ∝ C^exponent from the parabolas' minima inside their grids
    coefficient: float | None
    fit_exponent: float | None = None  # N_opt ∝ C^a from L(N, D) by variable projection
    fit_ci: tuple | None = None  # its 95% interval, the points resampled
    fit_coefficient: float | None = None

    def notes(self) -> list[str]:
        """Minima at the edge of their sizes, off-centre grids, too few budgets."""
        out = [f"the IsoFLOP minimum at C={b['compute']:.3g} lies at the edge of its sizes: "
               "an extrapolation, left out of the exponent"
               for b in self.budgets if b["at_edge"]]  # fmt: skip
        out += [f"the sizes at C={b['compute']:.3g} are centred {b['off_centre']:.1f}× from its "
                "optimum: its parabola's minimum is biased (the fitted law's N_opt is not)"
                for b in self.budgets if b.get("off_centre", 1) > OFF_CENTRE]  # fmt: skip
        if len(self.budgets) < MIN_BUDGETS:
            out.append(f"{len(self.budgets)} IsoFLOP budgets: an N_opt exponent needs "
                       f"{MIN_BUDGETS} or more")  # fmt: skip
        return out


MIN_BUDGETS = 3  # an exponent from two budgets is a line through two points: no check at all
OFF_CENTRE = 2.0  # a grid centred more than this factor from its optimum biases its parabola


def isoflop_minima(x, y, c, d=None, k: float = 6.0, bootstrap: int = 0, seed: int = 0) -> IsoFLOP:
    """Minimum of loss over log N per compute budget ``c``, and the N_opt(C) exponent, both
    from a parabola per budget and from L(N, D) fitted to every point by variable projection
    (D = C/(k·N) unless given), with a bootstrap interval from ``bootstrap`` resamples.

    Budgets with fewer than 3 sizes are skipped; a minimum outside the sizes tried (or a
    parabola that opens downward) is flagged ``at_edge`` and left out of the parabolas'
    exponent. Either exponent needs 3 budgets or more.
    """
    x, y, c = (np.asarray(v, dtype=float) for v in (x, y, c))
    d = c / (k * x) if d is None else np.asarray(d, dtype=float)
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
            "centre": float(np.exp((lx.min() + lx.max()) / 2)),
        })  # fmt: skip
    good = [b for b in budgets if not b["at_edge"]]
    result = IsoFLOP(budgets=budgets, exponent=None, coefficient=None)
    if len(good) >= MIN_BUDGETS:
        slope, intercept = np.polyfit(
            np.log([b["compute"] for b in good]), np.log([b["n_opt"] for b in good]), 1
        )
        result.exponent, result.coefficient = float(slope), float(np.exp(intercept))
    if len(budgets) >= MIN_BUDGETS:
        _fit_all(result, x, y, c, d, k, bootstrap, seed)
    return result


def _fit_all(iso: IsoFLOP, x, y, c, d, k: float, bootstrap: int, seed: int) -> None:
    """L(N, D) by variable projection on every point: N_opt per budget, the exponent and its
    interval, and how far each budget's grid is centred from its optimum."""
    fit = varpro_fit(x, d, y)
    iso.fit_exponent = fit.a
    iso.fit_coefficient = float(fit.n_opt(1.0, k))
    for b in iso.budgets:
        b["n_opt_fit"] = float(fit.n_opt(b["compute"], k))
        b["off_centre"] = float(max(b["centre"], b["n_opt_fit"]) / min(b["centre"], b["n_opt_fit"]))
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = [rng.integers(0, len(x), len(x)) for _ in range(bootstrap)]
        a = [varpro_fit(x[i], d[i], y[i]).a for i in draws]
        iso.fit_ci = (float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5)))
