"""L(N, D) = E + A·N^-α + B·D^-β by variable projection, for IsoFLOP studies.

For fixed exponents the law is linear in (E, A, B): a non-negative least-squares problem with
an exact solution. Only the two exponents are searched, on a grid and then by Nelder-Mead.
Fitted to every IsoFLOP point at once, this gives N_opt(C) without the bias of a parabola per
budget, which drifts when a budget's grid is wide or off-centre or when α ≠ β (Czech et al.).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize, nnls

EXPONENTS = np.linspace(0.05, 1.5, 30)  # the starting grid of α and β


@dataclass(frozen=True)
class VarProFit:
    E: float
    A: float
    B: float
    alpha: float
    beta: float
    rss: float  # sum of squared residuals of the loss

    @property
    def a(self) -> float:
        """N_opt ∝ C^a."""
        return self.beta / (self.alpha + self.beta)

    def n_opt(self, compute, k: float = 6.0):
        """The compute-optimal N for C = k·N·D: G·(C/k)^a, G = (αA/(βB))^(1/(α+β))."""
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / (self.alpha + self.beta))
        return g * (np.asarray(compute, float) / k) ** self.a


def _solve(alpha: float, beta: float, n, d, loss):
    """(E, A, B) and the residual norm for fixed exponents."""
    X = np.column_stack([np.ones_like(n), n**-alpha, d**-beta])
    scale = np.linalg.norm(X, axis=0)  # NNLS on unit columns: N^-α spans many decades
    coef, norm = nnls(X / scale, loss)
    return coef / scale, norm


def varpro_fit(n, d, loss) -> VarProFit:
    """Fit L(N, D) to every point: (α, β) searched, (E, A, B) solved for each."""
    n, d, loss = (np.asarray(v, float) for v in (n, d, loss))

    def rss(p) -> float:
        if min(p) <= 0:
            return np.inf
        return _solve(p[0], p[1], n, d, loss)[1] ** 2

    start = min(((a, b) for a in EXPONENTS for b in EXPONENTS), key=rss)
    best = minimize(rss, start, method="Nelder-Mead",
                    options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 4000})  # fmt: skip
    alpha, beta = best.x
    (E, A, B), norm = _solve(alpha, beta, n, d, loss)
    return VarProFit(float(E), float(A), float(B), float(alpha), float(beta), float(norm**2))
