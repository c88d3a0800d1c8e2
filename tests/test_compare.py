"""`scale compare`: the compute multiplier of a variant over a baseline, with intervals."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY
from scipy.optimize import minimize_scalar

from scaling.analysis.compare import ComputeLaw, compare, compute_law, multiplier
from scaling.analysis.fit import fit_law
from scaling.cli import main

C = np.geomspace(1e9, 1e11, 7)
E, ALPHA = 1.0, 0.3
A = 1.5 * 1e9**ALPHA  # the reducible loss at the smallest compute is 1.5


def _study(c, e, a, alpha, sigma, rng) -> pd.DataFrame:
    y = (e + a * c**-alpha) * np.exp(sigma * rng.standard_normal(len(c)))
    return pd.DataFrame({"flops_total": c, "params": c / 1e6, "val_loss": y})


def _planted(kind: str):
    """A variant's law in compute whose multiplier over the baseline is planted: constant
    1.5×, or 1.2× at 1e9 growing as C^0.1. Returns (A, α, multiplier as a function of C)."""
    if kind == "constant":
        return A * 1.5**-ALPHA, ALPHA, lambda c: 1.5
    # L_v(C) = L_b(m(C)·C) with m(C) = 1.2·(C/1e9)^0.1
    return A * 1.2**-ALPHA * 1e9 ** (0.1 * ALPHA), 1.1 * ALPHA, lambda c: 1.2 * (c / 1e9) ** 0.1


def test_the_multiplier_obeys_the_identity_of_a_shared_law():
    rng = np.random.default_rng(0)
    law = ComputeLaw(np.array([E]), np.array([A]), np.array([ALPHA]))
    c = np.geomspace(1e9, 1e12, 9)
    variant_loss = law.loss(c)[0] * rng.uniform(0.8, 0.99, len(c))  # better, above E
    variant = ComputeLaw(np.zeros(1), np.ones(1), np.zeros(1))  # only its losses matter
    m = law.compute_for(variant_loss[None]) / c
    identity = ((law.loss(c)[0] - E) / (variant_loss - E)) ** (1 / ALPHA)
    np.testing.assert_allclose(m[0], identity, rtol=1e-10)
    # and through multiplier(): a variant equal to the baseline at 2× compute is worth 2×
    shifted = ComputeLaw(np.array([E]), np.array([A * 2**-ALPHA]), np.array([ALPHA]))
    np.testing.assert_allclose(multiplier(law, shifted, c)[0], 2.0, rtol=1e-10)
    assert variant.E[0] == 0  # an unused law stays as made
    below = law.compute_for(np.array([[E * 0.99]]))
    assert np.isinf(below).all()  # no compute reaches a loss below the floor


def test_the_envelope_of_l_n_d_is_the_compute_optimal_loss():
    n = np.geomspace(1e5, 1e8, 6)
    d = np.geomspace(1e6, 1e10, 6)
    N, D = (g.ravel() for g in np.meshgrid(n, d))
    loss = 1.7 + 400 * N**-0.34 + 1800 * D**-0.28
    fit = fit_law(N, loss, D, form="chinchilla")
    envelope = compute_law(fit, fit.raw[None], k=6.0)
    for c in (1e15, 1e19):

        def loss(logn, c=c):
            return fit.predict(np.exp(logn), c / (6 * np.exp(logn)))[0]

        best = minimize_scalar(loss, bounds=(0, 40), method="bounded")
        assert envelope.loss(c)[0, 0] == pytest.approx(best.fun, rel=1e-6)


def test_noise_free_multipliers_are_recovered_exactly():
    rng = np.random.default_rng(0)
    for kind in ("constant", "growing"):
        a_v, alpha_v, planted = _planted(kind)
        base, variant = _study(C, E, A, ALPHA, 0, rng), _study(C, E, a_v, alpha_v, 0, rng)
        result = compare(base, variant, resamples=50)
        for row in result.budgets:
            assert row["multiplier"] == pytest.approx(planted(row["compute"]), rel=1e-3)
        assert result.trend["slope"] == pytest.approx(0 if kind == "constant" else 0.1, abs=1e-3)


def test_planted_multipliers_lie_in_their_90_percent_intervals():
    """48 simulated pairs of 7-point studies with 2% noise: a constant 1.5× and one that grows
    with compute. The 90% interval at the middle budget, and that of the trend's slope, must
    hold the planted values in at least 85% of the cases."""
    covered, trend, slopes = [], [], {"constant": [], "growing": []}
    for case in range(48):
        rng = np.random.default_rng(case)
        kind = ("constant", "growing")[case % 2]
        a_v, alpha_v, planted = _planted(kind)
        base, variant = _study(C, E, A, ALPHA, 0.02, rng), _study(C, E, a_v, alpha_v, 0.02, rng)
        result = compare(base, variant, resamples=200, seed=case)
        mid = result.budgets[3]
        lo, hi = mid["ci90"]
        covered.append(lo <= planted(mid["compute"]) <= hi)
        lo, hi = result.trend["ci90"]
        trend.append(lo <= (0 if kind == "constant" else 0.1) <= hi)
        slopes[kind].append(result.trend["slope"])
    assert np.mean(covered) >= 0.85, np.mean(covered)
    assert np.mean(trend) >= 0.85, np.mean(trend)
    # the intervals are not merely wide: the growing multiplier's slope is found on average
    assert np.median(slopes["growing"]) > np.median(slopes["constant"]) + 0.03


def _two_recipes(path):
    rng = np.random.default_rng(1)
    a_v, alpha_v, _ = _planted("constant")
    base, variant = _study(C, E, A, ALPHA, 0.01, rng), _study(C, E, a_v, alpha_v, 0.01, rng)
    base["recipe"], variant["recipe"] = "adamw", "lion"
    base["wall_time_s"], variant["wall_time_s"] = C / 1e8, C / 5e7  # the variant is 2× slower
    pd.concat([base, variant]).to_csv(path, index=False)


def test_compare_by_a_column_writes_its_report_and_json(in_tmp, capsys):
    _two_recipes(in_tmp / "recipes.csv")
    argv = ["compare", "recipes.csv", "--by", "recipe", "--target", "1e12", "--bootstrap", "200"]
    assert main([*argv, "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["baseline"]["name"] == "recipe=adamw"
    middle = record["budgets"][3]
    assert middle["ci90"][0] < 1.5 < middle["ci90"][1]
    assert record["target"]["extrapolated"] is True
    # the wall clock pays for the variant's halved throughput
    assert record["wall_clock"]["ratio"] == pytest.approx(0.5)
    out = in_tmp / "recipes_analysis" / "compare_recipe"
    assert {"compare.json", "compare.png", "compare.svg", "compare.md", "compare.html"} <= {
        p.name for p in out.iterdir()
    }
    assert "compute multiplier" in (out / "compare.md").read_text()
    assert main([*argv, "--baseline", "lion"]) == 0  # the other way round: below 1
    swapped = json.loads((out / "compare.json").read_text())
    assert swapped["budgets"][3]["multiplier"] < 1


@pytest.mark.parametrize("argv, message", [
    (["compare", "recipes.csv"], "BASELINE VARIANT"),
    (["compare", "recipes.csv", "--by", "nothing"], "no such column"),
    (["compare", "recipes.csv", "--by", "recipe", "--baseline", "sgd"], "takes adamw or lion"),
    (["compare", "recipes.csv", "--by", "params"], "exactly 2 values"),
    (["compare", "recipes.csv", "missing.csv"], "no sweep folder or file"),
])  # fmt: skip
def test_bad_comparisons_are_one_line_and_exit_2(in_tmp, capsys, argv, message):
    _two_recipes(in_tmp / "recipes.csv")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_compare_two_sweeps(in_tmp, capsys):
    """Two real sweeps, the variant a change of activation: both fitted in compute, a figure."""
    sizes = "model.width=4,8,16,32"
    for out, extra in (("relu", []), ("gelu", ["model.activation=gelu"])):
        argv = ["sweep", sizes, *TINY, "trainer.steps=20", *extra, "--out", out, "--bootstrap", "0"]
        assert main(argv) == 0
    capsys.readouterr()
    assert main(["compare", "relu", "gelu", "--bootstrap", "100", "--out", "cmp"]) == 0
    text = capsys.readouterr().out
    assert "gelu against relu" in text and "At equal size" in text
    record = json.loads((in_tmp / "cmp" / "compare.json").read_text())
    assert len(record["sizes"]) == 4 and record["wall_clock"]["rate_baseline"] > 0
    assert (in_tmp / "cmp" / "compare.png").stat().st_size > 10_000
