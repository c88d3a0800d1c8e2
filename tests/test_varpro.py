"""L(N, D) by variable projection: the N_opt exponent without the per-budget parabola's bias."""

import numpy as np
import pytest

from scaling.analysis.checks import isoflop_minima
from scaling.analysis.varpro import varpro_fit


def _isoflop(E=1.7, A=400.0, B=1200.0, alpha=0.2, beta=0.4, width=8.0, drift=1.5):
    """Noise-free IsoFLOP points: 5 budgets, 9 sizes each spanning ±``width``× around a centre
    that drifts ``drift``× per decade of compute away from the true optimum."""
    a = beta / (alpha + beta)
    g = (alpha * A / (beta * B)) ** (1 / (alpha + beta))
    budgets = np.geomspace(1e17, 1e21, 5)
    rows = []
    for c in budgets:
        centre = g * (c / 6) ** a * drift ** np.log10(c / budgets[0])
        for n in centre * np.geomspace(1 / width, width, 9):
            d = c / (6 * n)
            rows.append((n, d, c, E + A * n**-alpha + B * d**-beta))
    return a, g, *map(np.array, zip(*rows))


@pytest.mark.parametrize("width", [8.0, 16.0])
def test_variable_projection_has_no_parabola_bias_on_an_off_centre_grid(width):
    a, g, n, d, c, loss = _isoflop(width=width)
    fit = varpro_fit(n, d, loss)
    parabola = isoflop_minima(n, loss, c).exponent
    assert abs(fit.a - a) < 0.005
    assert abs(parabola - a) > 0.015  # the bias the fit removes, on the same points
    assert fit.n_opt(1e19) == pytest.approx(g * (1e19 / 6) ** a, rel=1e-3)


def test_isoflop_minima_give_the_fitted_exponent_and_flag_off_centre_grids():
    """Grid centres 1, 1.5, 2.25, 3.4 and 5.1× from the optimum: the last three are flagged;
    two budgets give no exponent of either kind."""
    a, _, n, d, c, loss = _isoflop()
    iso = isoflop_minima(n, loss, c, bootstrap=20)
    assert abs(iso.fit_exponent - a) < 0.005 and abs(iso.exponent - a) > 0.015
    assert iso.fit_ci[0] - 1e-6 <= iso.fit_exponent <= iso.fit_ci[1] + 1e-6
    assert [b["off_centre"] > 2 for b in iso.budgets] == [False, False, True, True, True]
    two = c <= np.unique(c)[1]
    few = isoflop_minima(n[two], loss[two], c[two])
    assert few.exponent is None and few.fit_exponent is None
