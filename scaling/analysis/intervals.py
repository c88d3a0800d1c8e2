"""Intervals for a fitted law (``fit.Fit``) that stay honest with few sizes.

- **Which resamples.** With many distinct sizes (``MANY`` or more), the runs themselves are
  resampled (a pairs bootstrap, as Besiroglu et al. 2024 did for Chinchilla), and the
  intervals are the refits' percentiles. With few, a quarter of pairs resamples hold three
  sizes or fewer, which a 3-parameter law fits exactly; so the fitted law plus noise of the
  measured scale is resampled instead (a parametric bootstrap). The scale is the
  residuals' (a least-squares fit's √(Σr²/(n−p))), and since it comes from few residuals the
  intervals are studentized: each refit's own residual scale divides its deviation, and the
  quantiles of those t-like ratios, times the data's scale, make the interval (the
  bootstrap-t). With the seed-to-seed spread measured apart, the noise is drawn with that
  spread's own uncertainty instead, and the intervals are percentiles.
- **Refits that can leave the point estimate.** Every resample is refitted in one vectorised
  pass (IRLS on the same Huber loss: Gauss–Newton steps with backtracking), from the point
  estimate and from the grid start that suits that resample best; the better is kept. A
  refit that does not converge is counted and left out.
- **Identified or not.** A parameter whose interval reaches a bound (E at 0, an exponent at 0
  or beyond 2, a coefficient over four decades) is reported as not identified, in words.

No torch here, and nothing here plots.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .laws import DELTA, _objective, log_predict, natural

MANY = 10  # distinct sizes from which the runs themselves are resampled
LEVEL = 0.95


@dataclass(frozen=True)
class Noise:
    """Run-to-run noise of log loss: its scale and the degrees of freedom it was measured with."""

    sigma: float
    dof: int
    source: str  # "seeds" or "residuals"

    def draw(self, rng, size: int) -> np.ndarray:
        """Scales as uncertain as this one: σ·√(dof/χ²(dof)), so that resampling with them
        gives t-like tails when σ comes from few values."""
        return self.sigma * np.sqrt(max(self.dof, 1) / rng.chisquare(max(self.dof, 1), size))


def residual_noise(fit, logy: np.ndarray, design: np.ndarray) -> Noise:
    """The scale of the residuals of a least-squares fit, √(Σr²/(n − p)), with n − p degrees of
    freedom: unbiased where the noise is Gaussian in log loss. (The Huber fit's own residuals
    would overstate it: with δ = 1e-3 it fits p of the points exactly, as least absolute
    deviations do, and leaves the others larger.)"""
    ones = np.ones((1, len(logy)))
    theta, _, _ = irls(fit.raw[None], design, logy[None], ones, delta=np.inf)
    r = log_predict(fit.form, theta, design)[0] - logy
    dof = max(len(logy) - len(fit.raw), 1)
    return Noise(float(math.sqrt((r**2).sum() / dof)), dof, "residuals")


def bootstrap(fit, design: np.ndarray, logy: np.ndarray, sizes: int, resamples: int, seed: int,
              noise: Noise | None = None, method: str = "auto") -> None:  # fmt: skip
    """Resample and refit: ``fit.draws`` (log space), ``fit.ci``, and how they were made.

    Args:
        sizes: distinct sizes of the table (the choice of method).
        noise: the measured run-to-run noise (seed spread); None: the residuals'.
        method: ``auto``, ``pairs`` or ``parametric``.
    """
    rng = np.random.default_rng(seed)
    measured = noise is not None
    noise = noise or residual_noise(fit, logy, design)
    method = ("pairs" if sizes >= MANY else "parametric") if method == "auto" else method
    n = len(logy)
    if method == "pairs":
        weights = rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(float)
        logys = np.tile(logy, (resamples, 1))
    else:
        weights = np.ones((resamples, n))
        scale = noise.draw(rng, resamples) if measured else np.full(resamples, noise.sigma)
        logys = log_predict(fit.form, fit.raw, design)[0] + scale[:, None] * rng.standard_normal(
            (resamples, n)
        )
    draws, ok = refit(fit, design, logys, weights)
    fit.draws, fit.refits_failed = draws[ok], int((~ok).sum())
    fit.interval_method, fit.noise = method, noise
    if (
        method == "parametric" and not measured and noise.sigma > 1e-12
    ):  # (exact data: nothing to scale)
        fit.scales = _scales(draws, design, logys)[ok] / noise.sigma
        fit.interval_method = "parametric, studentized"
    fit.ci = intervals(fit)
    fit.not_identified = identification(fit, np.exp(logy).min())


def _scales(draws: np.ndarray, design: np.ndarray, logys: np.ndarray) -> np.ndarray:
    """Each resample's residual scale, from its least-squares refit (as ``residual_noise``)."""
    ones = np.ones_like(logys)
    theta, _, _ = irls(draws, design, logys, ones, delta=np.inf)
    dof = max(logys.shape[1] - draws.shape[1], 1)
    return np.sqrt(((_predict(theta, design)[0] - logys) ** 2).sum(axis=1) / dof)


def refit(fit, design: np.ndarray, logys: np.ndarray, weights: np.ndarray, starts: int = 10):
    """Refit every resample from the point estimate and from its best of the grid's ``starts``
    best starts; the better of the two. Returns the refits (R × p) and whether each converged."""
    R = len(logys)
    candidates = fit.starts[:starts] if fit.starts is not None else fit.raw[None]
    scores = np.stack(
        [_objective(np.tile(c, (R, 1)), design, logys, weights)[0] for c in candidates]
    )
    pairs = np.concatenate([np.tile(fit.raw, (R, 1)), candidates[np.argmin(scores, axis=0)]])
    theta, loss, ok = irls(pairs, design, np.tile(logys, (2, 1)), np.tile(weights, (2, 1)))
    loss, theta, ok = loss.reshape(2, R), theta.reshape(2, R, -1), ok.reshape(2, R)
    best = np.argmin(np.where(ok, loss, np.inf), axis=0)
    pick = np.arange(R)
    return theta[best, pick], ok[best, pick]


def _predict(theta: np.ndarray, design: np.ndarray):
    """Log predictions (R × n) of R parameter sets and their Jacobian (R × n × p)."""
    terms = np.einsum("rp,kpn->rkn", theta, design)
    top = terms.max(axis=1, keepdims=True)
    ex = np.exp(terms - top)
    total = ex.sum(axis=1)
    return top[:, 0] + np.log(total), np.einsum("rkn,kpn->rnp", ex / total[:, None], design)


def _loss(theta, design, logy, weights, delta: float = DELTA) -> np.ndarray:
    """Summed Huber loss of log residuals over δ (the fit's objective); squares with δ = ∞."""
    r = np.abs(_predict(theta, design)[0] - logy)
    if np.isinf(delta):
        return (weights * 0.5 * r**2).sum(axis=1)
    return (weights * np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))).sum(
        axis=1
    ) / delta


def irls(theta, design, logy, weights, iters: int = 1000, tol: float = 1e-10, delta: float = DELTA):
    """Minimise the Huber loss of R problems at once: (θ, loss, converged), each of length R.

    Each iteration majorises the Huber loss by a weighted square (weights min(1, δ/|r|)) and
    takes a damped Gauss–Newton step of it, halved until the true loss falls. A problem has
    converged when its loss changes by less than ``tol`` (relative) twice in a row.
    """
    theta = np.array(theta, dtype=float)
    R, p = theta.shape
    loss, damping = _loss(theta, design, logy, weights, delta), np.full(R, 1e-4)
    quiet, active = np.zeros(R, int), np.ones(R, bool)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for _ in range(iters):
            a = np.flatnonzero(active)
            step = _step(theta[a], design, logy[a], weights[a], damping[a], delta)
            new, new_loss = _backtrack(theta[a], loss[a], step, design, logy[a], weights[a], delta)
            change = (loss[a] - new_loss) / np.maximum(loss[a], 1e-300)
            damping[a] = np.clip(np.where(change > 0, damping[a] * 0.3, damping[a] * 10), 1e-9, 1e9)
            theta[a], loss[a] = new, new_loss
            quiet[a] = np.where(change < tol, quiet[a] + 1, 0)
            active = quiet < 2
            if not active.any():
                break
    converged = ~active & np.isfinite(loss) & np.isfinite(theta).all(axis=1)
    return theta, loss, converged


def _backtrack(theta, loss, step, design, logy, weights, delta, halvings: int = 12):
    """θ − t·step for the first t in 1, ½, ¼, … that lowers each problem's loss (else θ)."""
    new, new_loss = theta.copy(), loss.copy()
    todo = np.arange(len(theta))
    for t in 0.5 ** np.arange(halvings):
        trial = theta[todo] - t * step[todo]
        trial_loss = _loss(trial, design, logy[todo], weights[todo], delta)
        better = trial_loss < loss[todo]
        new[todo[better]], new_loss[todo[better]] = trial[better], trial_loss[better]
        todo = todo[~better]
        if not len(todo):
            break
    return new, new_loss


def _step(theta, design, logy, weights, damping, delta=DELTA):
    pred, J = _predict(theta, design)
    r = pred - logy
    w = weights * np.minimum(1.0, delta / np.maximum(np.abs(r), 1e-300))
    A = np.einsum("rnp,rn,rnq->rpq", J, w, J)
    b = np.einsum("rnp,rn,rn->rp", J, w, r)
    diag = np.einsum("rpp->rp", A)
    A = A + (damping[:, None] * (diag + 1e-12 * diag.sum(axis=1, keepdims=True) + 1e-300))[
        :, :, None
    ] * np.eye(A.shape[1])
    return np.linalg.solve(A, b[..., None])[..., 0]


def interval(estimate, draws, scales=None, level: float = LEVEL):
    """The interval of a quantity from its refits' values (one per resample, on axis 0):
    percentiles, or with ``scales`` (each refit's residual scale over the data's) the
    studentized interval θ̂ − q·(1 − level/2 … level/2 quantiles of (θ* − θ̂)/scale)."""
    tail = 100 * (1 - level) / 2
    if scales is None:
        return np.percentile(draws, [tail, 100 - tail], axis=0)
    scales = np.maximum(scales, 1e-12).reshape(-1, *[1] * (np.ndim(draws) - 1))
    ratio = (draws - estimate) / scales
    qlo, qhi = np.percentile(ratio, [tail, 100 - tail], axis=0)
    return estimate - qhi, estimate - qlo


def intervals(fit) -> dict:
    """Each parameter's interval, made in log space for E, A and B (so they stay positive)."""
    lo, hi = interval(fit.raw, fit.draws, fit.scales)
    lo, hi = natural(fit.form, lo)[0], natural(fit.form, hi)[0]
    return {name: (float(a), float(b)) for name, a, b in zip(fit.params, lo, hi)}


def identification(fit, smallest_loss: float) -> dict:
    """name -> why it is not identified, for each parameter whose interval reaches a bound."""
    out = {}
    for name, (lo, hi) in fit.ci.items():
        if name == "E" and lo < 0.01 * smallest_loss:
            out[name] = "its interval reaches 0: the points do not show where loss levels off"
        elif name == "E" and hi > smallest_loss:
            out[name] = "its interval reaches above the smallest loss measured"
        elif name in ("alpha", "beta") and (lo <= 0 or hi >= 2):
            out[name] = "its interval reaches 0 or 2: the points do not fix the exponent"
        elif name in ("A", "B") and (lo <= 0 or hi / lo > 1e4):
            out[name] = "its interval spans more than four decades"
    return out


def prediction_interval(fit, n, d=None, level: float = LEVEL, noise: bool = False, seed: int = 0,
                        runs=1):  # fmt: skip
    """Pointwise interval of the law at ``n`` (and ``d``); with ``noise``, of a new run's loss
    there (or of the mean of ``runs`` new runs, per point): the law's uncertainty plus
    run-to-run noise, in the bootstrap's own way."""
    if fit.draws is None:
        raise ValueError("fit with bootstrap > 0 to get prediction intervals")
    logs = fit._log_predict(fit.draws, n, d)
    if noise and fit.noise is not None:
        rng = np.random.default_rng(seed)
        spread = fit.noise.sigma / np.sqrt(np.asarray(runs, dtype=float))
        logs = logs + spread * rng.standard_normal(logs.shape)
    lo, hi = interval(fit._log_predict(fit.raw, n, d)[0], logs, fit.scales, level)
    return np.exp(lo), np.exp(hi)
