"""Scaling-law fits: saturating and pure power laws in N, and Chinchilla's L(N, D).

The procedure of Hoffmann et al. (2022) as replicated by Besiroglu et al.
(2024): fit in log space with the log-sum-exp form, a Huber loss (δ = 1e-3)
summed over points and divided by δ, L-BFGS (SciPy) with the analytic
gradient from the best starts of a grid, and a bootstrap over points for 95%
intervals. Pure functions on arrays; no torch here, and nothing here plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import intervals
from .laws import FORMS, _design, _lbfgs, log_predict, ranked_starts


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
    draws: np.ndarray | None = None  # the refits that converged (R × p, log space)
    starts: np.ndarray | None = None  # the grid's starts, best first, for the refits
    interval_method: str | None = None  # pairs or parametric (see scaling.analysis.intervals)
    noise: intervals.Noise | None = None  # run-to-run noise of log loss, and where it came from
    scales: np.ndarray | None = None  # each refit's residual scale over the data's (studentized)
    refits_failed: int = 0  # resamples whose refit did not converge, left out
    not_identified: dict = field(default_factory=dict)  # parameter -> why
    x: str = "params"
    y: str = "val_loss"
    d: str | None = None
    excluded: dict = field(default_factory=dict)  # reason -> number of rows left out

    def _log_predict(self, theta: np.ndarray, n, d=None) -> np.ndarray:
        logn = np.log(np.atleast_1d(np.asarray(n, dtype=float)))
        logd = None if d is None else np.log(np.atleast_1d(np.asarray(d, dtype=float)))
        if self.form == "chinchilla" and logd is None:
            raise ValueError("the chinchilla form needs D to predict")
        return log_predict(self.form, theta, _design(self.form, logn, logd))

    def predict(self, n, d=None) -> np.ndarray:
        return np.exp(self._log_predict(self.raw, n, d)[0])

    def predict_interval(self, n, d=None, level: float = 0.95, noise: bool = False, runs=1):
        """Pointwise interval of the law at ``n`` (and ``d``); with ``noise``, of a new run's
        loss there, or of the mean of ``runs`` new runs (the law's uncertainty plus
        run-to-run noise)."""
        return intervals.prediction_interval(self, n, d, level, noise, runs=runs)

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
            "interval_method": self.interval_method, "refits_failed": self.refits_failed,
            "noise": None if self.noise is None else vars(self.noise),
            "not_identified": self.not_identified,
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


def fit_law(n, y, d=None, form: str = "saturating", n_starts: int = 20, bootstrap: int = 0,
            seed: int = 0, noise: intervals.Noise | None = None, interval: str = "auto") -> Fit:  # fmt: skip
    """Fit a scaling law to points (N, loss) or (N, D, loss).

    Args:
        n: sizes N (parameters, FLOPs or data), positive.
        y: losses, positive.
        d: data sizes D, for the ``chinchilla`` form.
        form: ``saturating`` (L = E + A·N^-α), ``power`` (L = A·N^-α) or
            ``chinchilla`` (L = E + A·N^-α + B·D^-β).
        n_starts: L-BFGS runs from the best starts of the grid (all starts are
            scored in one vectorised pass first).
        bootstrap: resamples for 95% intervals (0: none); see ``scaling.analysis.intervals``.
        seed: seed of the bootstrap.
        noise: run-to-run noise of log loss measured apart (seeds); None: from the residuals.
        interval: ``auto`` (the runs resampled with 10+ distinct sizes, the law plus noise
            with fewer), ``pairs`` or ``parametric``.

    Returns:
        A ``Fit``; ``converged`` says whether the best L-BFGS run reported success.

    Raises:
        ValueError: an unknown form, missing D, or no more points than parameters.
    """
    if form not in FORMS:
        raise ValueError(f"unknown form '{form}'; choose from: {', '.join(FORMS)}")
    n = np.asarray(n, dtype=float)
    y = np.asarray(y, dtype=float)
    if form == "chinchilla" and d is None:
        raise ValueError("the chinchilla form needs data sizes D (--d)")
    logd = None if d is None or form != "chinchilla" else np.log(np.asarray(d, dtype=float))
    names = FORMS[form]["raw"]
    if len(n) <= len(names):
        raise ValueError(f"{len(n)} points cannot fit the {len(names)} parameters of "
                         f"{FORMS[form]['law']}: it needs {len(names) + 1} or more")  # fmt: skip
    design, logy = _design(form, np.log(n), logd), np.log(y)
    starts = ranked_starts(form, design, logy)
    best = min(
        (_lbfgs(s, design, logy, np.ones(len(n))) for s in starts[:n_starts]), key=lambda r: r.fun
    )
    fit = Fit(form=form, law=FORMS[form]["law"], params=_natural(form, best.x), raw=best.x,
              n_points=len(n), objective=float(best.fun), converged=bool(best.success),
              message=str(best.message), starts=starts)  # fmt: skip
    if bootstrap:
        sizes = len(np.unique(n))
        intervals.bootstrap(fit, design, logy, sizes, bootstrap, seed, noise, interval)
    return fit
