"""Scaling-law fits: saturating and pure power laws in N, and Chinchilla's L(N, D).

The procedure of Hoffmann et al. (2022) as replicated by Besiroglu et al.
(2024): fit in log space with the log-sum-exp form, a Huber loss (δ = 1e-3)
summed over points and divided by δ, L-BFGS (SciPy) with the analytic
gradient from the best starts of a grid, and a bootstrap over points for 95%
intervals. Pure functions on arrays; no torch here, and nothing here plots.
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
        _bootstrap(fit, design, logy, bootstrap, seed)
    return fit


def _bootstrap(fit: Fit, design, logy, resamples: int, seed: int) -> None:
    """Refit ``resamples`` resamples of the points, from the best fit: ``fit.draws`` and ``fit.ci``."""
    n = len(logy)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(float)
    # few points give many repeated resamples: refit each distinct one once
    distinct, which = np.unique(weights, axis=0, return_inverse=True)
    refits = np.array([_lbfgs(fit.raw, design, logy, w).x for w in distinct])
    fit.draws = refits[which.ravel()]
    natural = np.array([list(_natural(fit.form, t).values()) for t in fit.draws])
    lo, hi = np.percentile(natural, [2.5, 97.5], axis=0)
    fit.ci = {k: (float(a), float(b)) for k, a, b in zip(fit.params, lo, hi)}
