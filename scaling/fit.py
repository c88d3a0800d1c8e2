"""Scaling-law fits: saturating and pure power laws in N, and Chinchilla's L(N, D).

The procedure of Hoffmann et al. (2022) as replicated by Besiroglu et al.
(2024): fit in log space with the log-sum-exp form, a Huber loss (δ = 1e-3)
summed over points and divided by δ, L-BFGS (SciPy) with the analytic
gradient from the best starts of a grid, and a bootstrap over points for 95%
intervals. No torch here.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

DELTA = 1e-3

# Each form: parameter names in log space, the reported names, and the grid of starts.
FORMS = {
    "saturating": {
        "raw": ("e", "a", "alpha"),
        "law": "L = E + A·N^-α",
        "grid": {
            "e": np.arange(-1, 1.01, 0.5),
            "a": np.arange(0, 26, 5),
            "alpha": np.arange(0, 2.01, 0.5),
        },
    },
    "power": {
        "raw": ("a", "alpha"),
        "law": "L = A·N^-α",
        "grid": {"a": np.arange(0, 26, 5), "alpha": np.arange(0, 2.01, 0.5)},
    },
    "chinchilla": {
        "raw": ("e", "a", "alpha", "b", "beta"),
        "law": "L = E + A·N^-α + B·D^-β",
        "grid": {
            "e": np.arange(-1, 1.01, 0.5),
            "a": np.arange(0, 26, 5),
            "alpha": np.arange(0, 2.01, 0.5),
            "b": np.arange(0, 26, 5),
            "beta": np.arange(0, 2.01, 0.5),
        },  # fmt: skip
    },
}


def _terms(form: str, theta: np.ndarray, logn: np.ndarray, logd: np.ndarray | None):
    """The log-space terms whose log-sum-exp is log L, shape (k, n), and d(term)/dθ, shape (k, p, n)."""
    n = len(logn)
    ones, zeros = np.ones(n), np.zeros(n)
    if form == "power":
        a, alpha = theta
        return (a - alpha * logn)[None], np.array([[ones, -logn]])
    if form == "saturating":
        e, a, alpha = theta
        terms = np.stack([np.full(n, e), a - alpha * logn])
        grads = np.array([[ones, zeros, zeros], [zeros, ones, -logn]])
        return terms, grads
    e, a, alpha, b, beta = theta
    terms = np.stack([np.full(n, e), a - alpha * logn, b - beta * logd])
    grads = np.array([
        [ones, zeros, zeros, zeros, zeros],
        [zeros, ones, -logn, zeros, zeros],
        [zeros, zeros, zeros, ones, -logd],
    ])  # fmt: skip
    return terms, grads


def _objective(theta, form, logn, logd, logy, weights):
    """Summed Huber loss of log-residuals over δ, and its gradient."""
    terms, grads = _terms(form, theta, logn, logd)
    top = terms.max(axis=0)
    ex = np.exp(terms - top)
    total = ex.sum(axis=0)
    r = top + np.log(total) - logy
    small = np.abs(r) <= DELTA
    loss = np.where(small, 0.5 * r**2, DELTA * (np.abs(r) - 0.5 * DELTA)) / DELTA
    dloss = np.where(small, r, DELTA * np.sign(r)) / DELTA
    dpred = ((ex / total)[:, None, :] * grads).sum(axis=0)
    return float(weights @ loss), dpred @ (weights * dloss)


def _grid_losses(form, logn, logd, logy) -> tuple[np.ndarray, np.ndarray]:
    """Every start of the grid, scored in one vectorised pass."""
    grid = FORMS[form]["grid"]
    starts = np.array(list(itertools.product(*(grid[k] for k in FORMS[form]["raw"]))), dtype=float)
    if form == "power":
        pred = starts[:, [0]] - starts[:, [1]] * logn[None]
    elif form == "saturating":
        pred = np.logaddexp(starts[:, [0]], starts[:, [1]] - starts[:, [2]] * logn[None])
    else:
        pred = logsumexp(
            np.stack([
                np.broadcast_to(starts[:, [0]], (len(starts), len(logn))),
                starts[:, [1]] - starts[:, [2]] * logn[None],
                starts[:, [3]] - starts[:, [4]] * logd[None],
            ]),
            axis=0,
        )  # fmt: skip
    r = np.abs(pred - logy[None])
    loss = np.where(r <= DELTA, 0.5 * r**2, DELTA * (r - 0.5 * DELTA)).sum(axis=1) / DELTA
    return starts, loss


def _minimize(form, start, logn, logd, logy, weights):
    res = minimize(
        _objective, start, args=(form, logn, logd, logy, weights), jac=True, method="L-BFGS-B"
    )
    return res


@dataclass
class Fit:
    """A fitted law. ``params`` holds E, A, alpha (and B, beta) in natural units, unrounded."""

    form: str
    law: str
    params: dict
    raw: np.ndarray  # log-space parameters (e, a, alpha, …)
    n_points: int
    objective: float
    converged: bool
    message: str
    ci: dict = field(default_factory=dict)  # name -> (low, high), 95% bootstrap interval
    x: str = "params"
    y: str = "val_loss"
    d: str | None = None
    excluded: dict = field(default_factory=dict)  # reason -> count

    def predict(self, n, d=None) -> np.ndarray:
        logn = np.log(np.asarray(n, dtype=float))
        logd = None if d is None else np.log(np.asarray(d, dtype=float))
        terms, _ = _terms(
            self.form, self.raw, np.atleast_1d(logn), None if logd is None else np.atleast_1d(logd)
        )
        return np.exp(logsumexp(terms, axis=0))

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


def _natural(form, theta) -> dict:
    named = dict(zip(FORMS[form]["raw"], theta))
    out = {}
    if "e" in named:
        out["E"] = math.exp(named["e"])
    out["A"] = math.exp(named["a"])
    out["alpha"] = float(named["alpha"])
    if "b" in named:
        out["B"] = math.exp(named["b"])
        out["beta"] = float(named["beta"])
    return out


def fit_law(
    n, y, d=None, form: str = "saturating", n_starts: int = 20, bootstrap: int = 0, seed: int = 0
) -> Fit:
    """Fit a scaling law to points (N, loss) or (N, D, loss).

    Args:
        n: sizes N (parameters, FLOPs or data), positive.
        y: losses, positive.
        d: data sizes D for the ``chinchilla`` form.
        form: ``saturating`` (L = E + A·N^-α), ``power`` (L = A·N^-α) or
            ``chinchilla`` (L = E + A·N^-α + B·D^-β).
        n_starts: L-BFGS runs from the best starts of the grid.
        bootstrap: resamples of the points for 95% intervals (0: none).
        seed: seed of the bootstrap.

    Returns:
        A ``Fit``; ``converged`` says whether the best L-BFGS run reported success.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form '{form}'; choose from: {', '.join(FORMS)}")
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    logd = None
    if form == "chinchilla":
        if d is None:
            raise ValueError("the chinchilla form needs data sizes D")
        logd = np.log(np.asarray(d, dtype=float))
    n_par = len(FORMS[form]["raw"])
    if len(n) < n_par:
        raise ValueError(
            f"{len(n)} points cannot fit the {n_par} parameters of {FORMS[form]['law']}"
        )
    logn, logy = np.log(n), np.log(y)
    weights = np.ones(len(n))
    starts, losses = _grid_losses(form, logn, logd, logy)
    best = None
    for start in starts[np.argsort(losses)[:n_starts]]:
        res = _minimize(form, start, logn, logd, logy, weights)
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
        fit.ci = _bootstrap(fit, logn, logd, logy, bootstrap, seed)
    return fit


def _bootstrap(fit: Fit, logn, logd, logy, resamples: int, seed: int) -> dict:
    """95% percentile intervals from refits on points drawn with replacement (as multiplicity weights)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        weights = np.bincount(rng.integers(0, len(logn), len(logn)), minlength=len(logn)).astype(
            float
        )
        res = _minimize(fit.form, fit.raw, logn, logd, logy, weights)
        draws.append(list(_natural(fit.form, res.x).values()))
    draws = np.array(draws)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    return {name: (float(lo), float(hi)) for name, lo, hi in zip(fit.params, low, high)}
