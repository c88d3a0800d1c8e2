"""Scaling-law fits: saturating and pure power laws in N, and Chinchilla's L(N, D).

The procedure of Hoffmann et al. (2022) as replicated by Besiroglu et al.
(2024): fit in log space with the log-sum-exp form, a Huber loss (δ = 1e-3)
summed over points and divided by δ, L-BFGS (SciPy) with the analytic
gradient from the best starts of a grid, and a bootstrap over points for 95%
intervals. Then the checks a user needs before trusting a law: extrapolation
to held-out sizes, the compute-optimal frontier and IsoFLOP minima. Pure
functions on arrays and tables; no torch here, and nothing here plots.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

DELTA = 1e-3

# Each form: its parameters in log space (e = log E, a = log A, b = log B) and the grid of starts.
FORMS = {
    "saturating": {
        "raw": ("e", "a", "alpha"),
        "law": "L = E + A·N^-α",
    },
    "power": {
        "raw": ("a", "alpha"),
        "law": "L = A·N^-α",
    },
    "chinchilla": {
        "raw": ("e", "a", "alpha", "b", "beta"),
        "law": "L = E + A·N^-α + B·D^-β",
    },
}
GRID = {
    "e": np.arange(-1, 1.01, 0.5),
    "a": np.arange(0, 26, 5),
    "b": np.arange(0, 26, 5),
    "alpha": np.arange(0, 2.01, 0.5),
    "beta": np.arange(0, 2.01, 0.5),
}


def _design(form: str, logn: np.ndarray, logd: np.ndarray | None) -> np.ndarray:
    """The log-space terms are linear in the parameters: term_k = Σ_p θ_p · M[k, p, :]. Returns M."""
    n = len(logn)
    one, zero = np.ones(n), np.zeros(n)
    if form == "power":
        return np.array([[one, -logn]])
    if form == "saturating":
        return np.array([[one, zero, zero], [zero, one, -logn]])
    return np.array([
        [one, zero, zero, zero, zero],
        [zero, one, -logn, zero, zero],
        [zero, zero, zero, one, -logd],
    ])  # fmt: skip


def _objective(theta: np.ndarray, design: np.ndarray, logy: np.ndarray, weights: np.ndarray):
    """Summed, δ-scaled Huber loss of log-residuals for R parameter sets at once, and its gradient.

    theta: (R, p); weights: (R, n) multiplicities of the points (bootstrap) or ones.
    """
    terms = np.einsum("rp,kpn->rkn", theta, design)
    top = terms.max(axis=1, keepdims=True)
    ex = np.exp(terms - top)
    total = ex.sum(axis=1)
    r = top[:, 0] + np.log(total) - logy
    small = np.abs(r) <= DELTA
    loss = np.where(small, 0.5 * r**2, DELTA * (np.abs(r) - 0.5 * DELTA)) / DELTA
    dloss = weights * np.where(small, r, DELTA * np.sign(r)) / DELTA
    dpred = np.einsum("rkn,kpn->rpn", ex / total[:, None], design)
    return (weights * loss).sum(axis=1), np.einsum("rpn,rn->rp", dpred, dloss)


def _lbfgs(start: np.ndarray, design, logy, weights):
    """L-BFGS from one start, on the points weighted by their multiplicity."""

    def fun(theta):
        loss, grad = _objective(theta[None], design, logy, weights[None])
        return loss[0], grad[0]

    # on problems this small a multi-threaded BLAS inside L-BFGS costs ~20x its work
    with threadpool_limits(1):
        return minimize(fun, start, jac=True, method="L-BFGS-B")


@dataclass
class Fit:
    """A fitted law. ``params`` holds E, A, alpha (and B, beta) in natural units, unrounded.

    ``draws`` are the bootstrap refits in log space (R × p), from which ``ci`` (95%
    percentile intervals per parameter) and ``predict_interval`` come.
    """

    form: str
    law: str
    params: dict
    raw: np.ndarray
    n_points: int
    objective: float
    converged: bool
    message: str
    ci: dict = field(default_factory=dict)
    draws: np.ndarray | None = None
    x: str = "params"
    y: str = "val_loss"
    d: str | None = None
    excluded: dict = field(default_factory=dict)  # reason -> number of rows left out

    def _log_predict(self, theta: np.ndarray, n, d=None) -> np.ndarray:
        logn = np.log(np.atleast_1d(np.asarray(n, dtype=float)))
        logd = None if d is None else np.log(np.atleast_1d(np.asarray(d, dtype=float)))
        if self.form == "chinchilla" and logd is None:
            raise ValueError("the chinchilla form needs D to predict")
        terms = np.einsum("rp,kpn->rkn", np.atleast_2d(theta), _design(self.form, logn, logd))
        top = terms.max(axis=1)
        return top + np.log(np.exp(terms - top[:, None]).sum(axis=1))

    def predict(self, n, d=None) -> np.ndarray:
        return np.exp(self._log_predict(self.raw, n, d)[0])

    def predict_interval(self, n, d=None, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap interval of the prediction."""
        if self.draws is None:
            raise ValueError("fit with bootstrap > 0 to get prediction intervals")
        preds = np.exp(self._log_predict(self.draws, n, d))
        tail = 100 * (1 - level) / 2
        lo, hi = np.percentile(preds, [tail, 100 - tail], axis=0)
        return lo, hi

    def describe(self, tex: bool = False) -> str:
        """The law with its fitted numbers; ``tex`` gives matplotlib mathtext."""
        p = self.params
        if tex:
            n = rf"{p['A']:.3g}\,N^{{-{p['alpha']:.3f}}}"
            d = rf" + {p['B']:.3g}\,D^{{-{p['beta']:.3f}}}" if "B" in p else ""
            e = f"{p['E']:.3f} + " if "E" in p else ""
            return f"$L = {e}{n}{d}$"
        n = f"{p['A']:.4g}·N^-{p['alpha']:.3f}"
        d = f" + {p['B']:.4g}·D^-{p['beta']:.3f}" if "B" in p else ""
        e = f"{p['E']:.3f} + " if "E" in p else ""
        return f"L = {e}{n}{d}"

    def record(self) -> dict:
        """What fits.json keeps of the fit."""
        return {
            "law": self.law, "form": self.form, "x": self.x, "y": self.y, "d": self.d,
            "params": self.params, "ci95": self.ci, "n_points": self.n_points,
            "converged": self.converged, "message": self.message, "objective": self.objective,
            "bootstrap": 0 if self.draws is None else len(self.draws), "excluded": self.excluded,
        }  # fmt: skip


def _natural(form: str, theta: np.ndarray) -> dict:
    named = dict(zip(FORMS[form]["raw"], (float(t) for t in theta)))
    out = {}
    if "e" in named:
        out["E"] = math.exp(named["e"])
    out["A"] = math.exp(named["a"])
    out["alpha"] = named["alpha"]
    if "b" in named:
        out["B"] = math.exp(named["b"])
        out["beta"] = named["beta"]
    return out


def fit_law(
    n, y, d=None, form: str = "saturating", n_starts: int = 20, bootstrap: int = 0, seed: int = 0
) -> Fit:
    """Fit a scaling law to points (N, loss) or (N, D, loss).

    Args:
        n: sizes N (parameters, FLOPs or data), positive.
        y: losses, positive.
        d: data sizes D, for the ``chinchilla`` form.
        form: ``saturating`` (L = E + A·N^-α), ``power`` (L = A·N^-α) or
            ``chinchilla`` (L = E + A·N^-α + B·D^-β).
        n_starts: L-BFGS runs from the best starts of the grid (all starts are
            scored in one vectorised pass first).
        bootstrap: resamples of the points, drawn with replacement, refitted from
            the best fit, for 95% intervals (0: none).
        seed: seed of the bootstrap.

    Returns:
        A ``Fit``; ``converged`` says whether the best L-BFGS run reported success.

    Raises:
        ValueError: an unknown form, missing D, or fewer points than parameters.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form '{form}'; choose from: {', '.join(FORMS)}")
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    if form == "chinchilla" and d is None:
        raise ValueError("the chinchilla form needs data sizes D (--d)")
    logd = None if d is None or form != "chinchilla" else np.log(np.asarray(d, dtype=float))
    names = FORMS[form]["raw"]
    if len(n) < len(names):
        raise ValueError(
            f"{len(n)} points cannot fit the {len(names)} parameters of {FORMS[form]['law']}"
        )
    design, logy = _design(form, np.log(n), logd), np.log(y)
    ones = np.ones(len(n))

    starts = np.array(list(itertools.product(*(GRID[k] for k in names))), dtype=float)
    grid_loss, _ = _objective(starts, design, logy, np.ones((len(starts), len(n))))
    best = None
    for start in starts[np.argsort(grid_loss)[:n_starts]]:
        res = _lbfgs(start, design, logy, ones)
        if best is None or res.fun < best.fun:
            best = res
    fit = Fit(
        form=form,
        law=FORMS[form]["law"],
        params=_natural(form, best.x),
        raw=best.x,
        n_points=len(n),
        objective=float(best.fun),
        converged=bool(best.success),
        message=str(best.message),
    )
    if bootstrap:
        rng = np.random.default_rng(seed)
        weights = rng.multinomial(len(n), np.full(len(n), 1 / len(n)), size=bootstrap).astype(float)
        # few points give many repeated resamples: refit each distinct one once
        distinct, which = np.unique(weights, axis=0, return_inverse=True)
        refits = np.array([_lbfgs(best.x, design, logy, w).x for w in distinct])
        fit.draws = refits[which.ravel()]
        natural = np.array([list(_natural(form, t).values()) for t in fit.draws])
        lo, hi = np.percentile(natural, [2.5, 97.5], axis=0)
        fit.ci = {k: (float(a), float(b)) for k, a, b in zip(fit.params, lo, hi)}
    return fit


# ---------------------------------------------------------------- checks and consequences of a fit


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


# ---------------------------------------------------------------- a whole study


@dataclass
class Analysis:
    """Everything ``scale fit`` reports on one table of points."""

    x: str
    y: str
    d: str | None
    c: str | None
    fits: list  # the law in x; L(N, D) when d is given
    extrapolation: dict = field(
        default_factory=dict
    )  # form -> (Fit on smaller sizes, Extrapolation)
    frontier: Frontier | None = None
    isoflop: IsoFLOP | None = None
    spread: list = field(default_factory=list)  # per size with several runs: x, runs, mean, std
    notes: list = field(default_factory=list)  # what a reader must know: exclusions, warnings
    excluded: dict = field(default_factory=dict)

    def record(self) -> dict:
        """What fits.json keeps."""
        out = {
            "x": self.x,
            "y": self.y,
            "d": self.d,
            "c": self.c,
            "fits": [f.record() for f in self.fits],
        }
        out["extrapolation"] = {
            form: {"fit": fit.record(), **vars(check)}
            for form, (fit, check) in self.extrapolation.items()
        }
        out["frontier"] = None if self.frontier is None else vars(self.frontier)
        out["isoflop"] = None if self.isoflop is None else vars(self.isoflop)
        out.update(spread=self.spread, notes=self.notes, excluded=self.excluded)
        return out


def analyze(df, x: str = "params", y: str = "val_loss", d: str | None = None, c: str | None = None,
            form: str = "saturating", holdout: int = 0, bootstrap: int = 1000, seed: int = 0,
            excluded: dict | None = None, replicas_of: list | None = None) -> Analysis:  # fmt: skip
    """Fit the study's laws and run the checks on a table of finished points.

    Args:
        df: one row per run with numeric, positive columns x, y (and d, c).
        x: size column N (parameters, non-embedding parameters, FLOPs or data).
        y: loss column.
        d: data column D; adds L(N, D) and, from it, the compute-optimal frontier.
        c: compute-budget column; budgets with 3+ sizes get IsoFLOP minima.
        form: the law in x alone: ``saturating`` or ``power``.
        holdout: fit without the largest ``holdout`` sizes and score the extrapolation.
        bootstrap: resamples for 95% intervals.
        seed: seed of the bootstrap.
        excluded: rows already left out, by reason (reported again in ``notes``).
        replicas_of: columns that rows must share to count as runs of one setting
            (seeds); default: x and d.

    Returns:
        An ``Analysis``.
    """
    result = Analysis(x=x, y=y, d=d, c=c, fits=[], excluded=dict(excluded or {}))
    for reason, count in result.excluded.items():
        result.notes.append(f"{count} points left out: {reason}")
    X, Y = df[x].to_numpy(float), df[y].to_numpy(float)

    def one(xs, ys, ds=None, resamples=bootstrap):
        return fit_law(xs, ys, form=form, bootstrap=resamples, seed=seed)

    def two(xs, ys, ds, resamples=bootstrap):
        return fit_law(xs, ys, ds, form="chinchilla", bootstrap=resamples, seed=seed)

    fits = [(form, one, None)]
    if d is not None:
        D = df[d].to_numpy(float)
        if len(np.unique(D)) < 3:
            result.notes.append(
                f"{d} takes {len(np.unique(D))} value(s): L(N, D) cannot separate A·N^-α from B·D^-β; not fitted"
            )
        else:
            fits.append(("chinchilla", two, D))
            if X.max() / X.min() < 10:
                result.notes.append(f"{x} spans less than a decade: α and β are poorly separated")
    for name, fn, D in fits:
        fit = fn(X, Y, D)
        fit.x, fit.y, fit.d, fit.excluded = (
            x,
            y,
            (d if name == "chinchilla" else None),
            result.excluded,
        )
        result.fits.append(fit)
        if not fit.converged:
            result.notes.append(f"the fit of {fit.law} did not converge: {fit.message}")
        if fit.params["alpha"] < 0 or fit.params.get("beta", 0) < 0:
            result.notes.append(
                f"{fit.law} has a negative exponent: loss does not fall with size in this table "
                "(several budgets or data sizes mixed?); read it with care"
            )
        if holdout:
            try:
                # the held-out fit's intervals only draw its band: fewer resamples do
                small, check = extrapolation_check(
                    lambda a, b, c, fn=fn: fn(a, b, c, resamples=min(bootstrap, 200)),
                    X,
                    Y,
                    D,
                    holdout,
                )
            except ValueError as e:
                result.notes.append(f"no extrapolation check for {fit.law}: {e}")
            else:
                small.x, small.y, small.d = fit.x, fit.y, fit.d
                result.extrapolation[name] = (small, check)
    chin = [f for f in result.fits if f.form == "chinchilla"]
    if chin:
        k = 6.0
        if "flops_total" in df and df["flops_total"].notna().all():
            k = float(np.median(df["flops_total"].to_numpy(float) / (X * df[d].to_numpy(float))))
        result.frontier = frontier(chin[0], k)
    if c is not None and c in df:
        iso = isoflop_minima(X, Y, df[c].to_numpy(float))
        if iso.budgets:
            result.isoflop = iso
            for b in iso.budgets:
                if b["at_edge"]:
                    result.notes.append(
                        f"the IsoFLOP minimum at C={b['compute']:.3g} lies at the edge of its sizes: an extrapolation, left out of the exponent"
                    )
    keys = replicas_of or [x] + ([d] if d else [])
    for _, runs in df.groupby(keys, dropna=False):
        if len(runs) > 1:
            result.spread.append({
                "x": float(runs[x].iloc[0]), "runs": len(runs),
                "mean": float(runs[y].mean()), "std": float(runs[y].std()),
            })  # fmt: skip
    return result
