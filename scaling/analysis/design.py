"""How good will a grid be, and which runs shrink an interval most per FLOP?

- **check**: studies of the grid are simulated from a prior law (a fitted study's, or a
  default) with noise of a given scale, each refitted as the bootstrap refits (one vectorised
  pass); the spread of the refits is the interval a study of this grid can expect, for α, β,
  a (N_opt ∝ C^a) and the loss at a target size. Where the grid has budgets, each budget's
  optimum under the prior is placed against its sizes.
- **suggest**: from a finished study's law and noise, the linearised variance of a target (the
  log loss at a size, or log N_opt at a compute) after adding each candidate run,
  σ²·gᵀ(JᵀJ)⁻¹g; candidates are added greedily, each the one that lowers the target's
  standard deviation most per FLOP it costs.

No torch here, and nothing here plots.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import frontier
from .fit import Fit, _natural
from .intervals import _predict, refit
from .laws import FORMS, _design, log_predict, ranked_starts

DEFAULT_EXPONENT = 0.3  # the default prior's α and β
DEFAULT_NOISE = 0.02  # run-to-run noise of log loss when nothing measured it (~2%)


def prior_fit(form: str, params: dict, x, d=None) -> Fit:
    """A ``Fit`` at given parameters (E, A, alpha (, B, beta)), with the grid's starts ranked
    on the noise-free losses of the points, ready for ``refit``."""
    raw = [np.log(params["E"])] if "e" in FORMS[form]["raw"] else []
    raw += [np.log(params["A"]), params["alpha"]]
    if form == "chinchilla":
        raw += [np.log(params["B"]), params["beta"]]
    raw = np.array(raw, float)
    design = _grid_design(form, x, d)
    logy = log_predict(form, raw, design)[0]
    return Fit(form=form, law=FORMS[form]["law"], params=_natural(form, raw), raw=raw,
               n_points=len(logy), objective=0.0, converged=True, message="prior",
               starts=ranked_starts(form, design, logy))  # fmt: skip


def default_prior(x, d=None, budgets: dict | None = None, k: float = 6.0) -> dict:
    """α = β = 0.3, E = 1, and A (B) such that the reducible loss of N (D) at the grid's
    smallest size equals E: the loss falls by half from the smallest size to the floor. With
    budgets (budget -> sizes), B instead puts the middle budget's optimum at the geometric
    centre of its sizes, so that the check shows how the other budgets drift from theirs."""
    a = DEFAULT_EXPONENT
    params = {"E": 1.0, "A": float(np.min(x)) ** a, "alpha": a}
    if d is None:
        return params
    params |= {"B": float(np.min(d)) ** a, "beta": a}
    if budgets:
        c = sorted(budgets)[len(budgets) // 2]
        centre = float(np.sqrt(np.min(budgets[c]) * np.max(budgets[c])))
        g = centre / (c / k) ** 0.5  # N_opt = g·(C/k)^(β/(α+β)), and β/(α+β) = 1/2
        params["B"] = params["A"] / g ** (2 * a)
    return params


def _grid_design(form: str, x, d=None) -> np.ndarray:
    logd = None if d is None else np.log(np.asarray(d, float))
    return _design(form, np.log(np.asarray(x, float)), logd)


@dataclass
class Expected:
    """What a study of a grid can expect: each quantity's 95% range over simulated studies."""

    studies: int  # simulated studies whose refit converged
    ranges: dict  # quantity -> (estimate, lo, hi)


def simulate(fit: Fit, x, d=None, sigma: float = DEFAULT_NOISE, studies: int = 200,
             seed: int = 0, target: tuple | None = None) -> Expected:  # fmt: skip
    """Studies of the grid (x, d) simulated from ``fit`` with Gaussian noise of log loss
    ``sigma``, refitted; the 2.5–97.5% range of α (β, a) and of the loss at ``target``
    (N (, D))."""
    design = _grid_design(fit.form, x, d)
    rng = np.random.default_rng(seed)
    logy = log_predict(fit.form, fit.raw, design)[0]
    logys = logy + sigma * rng.standard_normal((studies, len(logy)))
    draws, ok = refit(fit, design, logys, np.ones_like(logys))
    draws = draws[ok]
    named = {name: draws[:, i] for i, name in enumerate(FORMS[fit.form]["raw"])}
    quantities = {"alpha": (fit.params["alpha"], named["alpha"])}
    if fit.form == "chinchilla":
        alpha, beta = named["alpha"], named["beta"]
        quantities["beta"] = (fit.params["beta"], beta)
        p = fit.params
        quantities["a"] = (p["beta"] / (p["alpha"] + p["beta"]), beta / (alpha + beta))
    if target is not None:
        quantities["loss at target"] = (
            fit.predict(*target)[0],
            np.exp(fit._log_predict(draws, *target)[:, 0]),
        )
    ranges = {name: (float(est), *map(float, np.percentile(values, [2.5, 97.5])))
              for name, (est, values) in quantities.items()}  # fmt: skip
    return Expected(int(ok.sum()), ranges)


def optima(fit: Fit, budgets: dict, k: float = 6.0) -> list[dict]:
    """Each budget's compute-optimal N under an L(N, D) law against the sizes it runs:
    budget -> sizes. Rows: budget, n_opt, smallest, largest, inside, off_centre (the
    geometric centre of the sizes over N_opt)."""
    if min(fit.params["alpha"], fit.params["beta"]) <= 0:
        return []  # no compute-optimal N where loss does not fall with N or D
    law, rows = frontier(fit, k), []
    for c, sizes in sorted(budgets.items()):
        n_opt = law.n_opt(c)
        lo, hi = float(np.min(sizes)), float(np.max(sizes))
        rows.append({"budget": float(c), "n_opt": float(n_opt), "smallest": lo, "largest": hi,
                     "inside": bool(lo <= n_opt <= hi),
                     "off_centre": float(np.sqrt(lo * hi) / n_opt)})  # fmt: skip
    return rows


# ---------------------------------------------------------------- which runs next


def target_function(fit: Fit, kind: str, at: tuple, k: float = 6.0):
    """The target as a function of log-space parameters: the log loss at (N (, D)), or
    log N_opt at compute C for an L(N, D) law."""
    if kind == "loss":
        return lambda theta: fit._log_predict(theta[None], *at)[0, 0]

    def log_n_opt(theta):
        _, a_log, alpha, b_log, beta = theta
        return (np.log(alpha) + a_log - np.log(beta) - b_log) / (alpha + beta) + beta / (
            alpha + beta
        ) * np.log(at[0] / k)

    return log_n_opt


def target_sd(fit: Fit, x, d, sigma: float, target) -> float:
    """The linearised standard deviation of ``target(θ)`` for a study of the points (x, d):
    σ·√(gᵀ(JᵀJ)⁻¹g), J the Jacobian of the log predictions, g the target's gradient."""
    _, J = _predict(fit.raw[None], _grid_design(fit.form, x, d))
    info = J[0].T @ J[0]
    info += 1e-9 * np.trace(info) * np.eye(len(info))  # a parameter the points cannot fix
    g = _gradient(target, fit.raw)
    return float(sigma * np.sqrt(g @ np.linalg.solve(info, g)))


def _gradient(f, theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    steps = np.eye(len(theta)) * h
    return np.array([(f(theta + s) - f(theta - s)) / (2 * h) for s in steps])


def suggest(fit: Fit, x, d, sigma: float, candidates: list[dict], target, k: int = 2,
            enough: float = 0.0) -> list[dict]:  # fmt: skip
    """Pick up to ``k`` runs among ``candidates`` (dicts with n, d (or None) and flops),
    greedily: each the one that lowers the target's linearised standard deviation most per
    FLOP, until it is at most ``enough``. A candidate may be picked again (another seed).
    Returns the picks, each with ``sd_before``, ``sd_after`` and ``gain_per_flop``."""
    x = list(np.asarray(x, float))
    d = None if d is None else list(np.asarray(d, float))
    picks = []
    for _ in range(k):
        before = target_sd(fit, x, d, sigma, target)
        if before <= enough:
            break
        scored = []
        for cand in candidates:
            after = target_sd(fit, x + [cand["n"]], None if d is None else d + [cand["d"]],
                              sigma, target)  # fmt: skip
            scored.append(((before - after) / cand["flops"], after, cand))
        gain, after, best = max(scored, key=lambda s: s[0])
        picks.append({**best, "sd_before": before, "sd_after": after, "gain_per_flop": gain})
        x.append(best["n"])
        if d is not None:
            d.append(best["d"])
    return picks
