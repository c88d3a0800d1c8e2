"""The laws in log space: their forms, the grid of starts, the Huber objective and L-BFGS.

Each law is a log-sum-exp of terms linear in its parameters (e = log E, a = log A,
b = log B, and the exponents): log L = logsumexp_k (θ · M_k). Pure functions on arrays.
"""

from __future__ import annotations

import itertools

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


def ranked_starts(form: str, design: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """The grid of starts, scored in one vectorised pass on these points, best first."""
    starts = np.array(list(itertools.product(*(GRID[k] for k in FORMS[form]["raw"]))), float)
    loss, _ = _objective(starts, design, logy, np.ones((len(starts), len(logy))))
    return starts[np.argsort(loss)]


def _lbfgs(start: np.ndarray, design, logy, weights):
    """L-BFGS from one start, on the points weighted by their multiplicity."""

    def fun(theta):
        loss, grad = _objective(theta[None], design, logy, weights[None])
        return loss[0], grad[0]

    # on problems this small a multi-threaded BLAS inside L-BFGS costs ~20x its work
    with threadpool_limits(1):
        return minimize(fun, start, jac=True, method="L-BFGS-B")


def natural(form: str, theta: np.ndarray) -> np.ndarray:
    """Parameter sets in log space (R × p) in natural units: E, A, alpha (, B, beta)."""
    theta = np.atleast_2d(theta)
    cols = dict(zip(FORMS[form]["raw"], theta.T))
    with np.errstate(over="ignore"):
        out = [np.exp(cols["e"])] if "e" in cols else []
        out += [np.exp(cols["a"]), cols["alpha"]]
        if "b" in cols:
            out += [np.exp(cols["b"]), cols["beta"]]
    return np.stack(out, axis=1)


def log_predict(form: str, theta: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Log predictions (R × n) of R parameter sets on a design."""
    terms = np.einsum("rp,kpn->rkn", np.atleast_2d(theta), design)
    top = terms.max(axis=1)
    return top + np.log(np.exp(terms - top[:, None]).sum(axis=1))
