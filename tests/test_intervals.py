"""Honest numbers from small studies: intervals that cover, words for what is not identified,
goodness of fit, and a prediction check with a verdict."""

import json

import numpy as np
import pandas as pd
import pytest

from scaling.analysis import intervals
from scaling.analysis.fit import fit_law
from scaling.analysis.laws import _design, _lbfgs
from scaling.analysis.study import analyze
from scaling.cli import main
from scaling.report.plots import loss_vs_size_figure

TRUE_1D = {"E": 0.28, "A": 13.4, "alpha": 0.38}  # the default study's law
SIZES_1D = np.logspace(3, 5.5, 6)  # 6 sizes over 2.5 decades


def _law_1d(n):
    return TRUE_1D["E"] + TRUE_1D["A"] * n ** -TRUE_1D["alpha"]


@pytest.mark.slow
def test_intervals_of_a_six_size_study_cover_the_truth():
    """2% noise, 60 simulated studies: α's and E's 95% intervals hold the truth 88–99% of the
    time, none is degenerate, α's are at most 1.5× the width its spread calls for, and the
    prediction of a new run at a held-out size covers it as often."""
    rng = np.random.default_rng(0)
    covered, widths, alphas, predicted = {"E": 0, "alpha": 0}, [], [], 0
    studies = 60
    for s in range(studies):
        y = _law_1d(SIZES_1D) * np.exp(0.02 * rng.standard_normal(6))
        fit = fit_law(SIZES_1D, y, bootstrap=200, seed=s)
        assert fit.interval_method == "parametric, studentized"
        for name in covered:
            lo, hi = fit.ci[name]
            assert hi > lo and lo > 1e-6  # not degenerate: neither zero width nor at E's floor
            covered[name] += lo <= TRUE_1D[name] <= hi
        widths.append(fit.ci["alpha"][1] - fit.ci["alpha"][0])
        alphas.append(fit.params["alpha"])
        smaller = fit_law(SIZES_1D[:5], y[:5], bootstrap=200, seed=s)  # the largest held out
        lo, hi = smaller.predict_interval(SIZES_1D[5:], noise=True)
        new_run = _law_1d(SIZES_1D[5]) * np.exp(0.02 * rng.standard_normal())
        predicted += lo[0] <= new_run <= hi[0]
    for name, hits in covered.items():
        assert 0.88 <= hits / studies <= 0.99, (name, hits)
    assert 0.88 <= predicted / studies <= 0.99, predicted
    assert np.median(widths) <= 1.5 * 3.92 * np.std(alphas)


@pytest.mark.slow
def test_intervals_of_a_ten_by_six_grid_cover_the_truth():
    true = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}
    n, d = (a.ravel() for a in np.meshgrid(np.logspace(7, 9.5, 10), np.logspace(9, 11.5, 6)))
    law = true["E"] + true["A"] * n ** -true["alpha"] + true["B"] * d ** -true["beta"]
    rng = np.random.default_rng(1)
    covered, widths, alphas, studies = dict.fromkeys(("E", "alpha", "beta"), 0), [], [], 80
    for s in range(studies):
        fit = fit_law(n, law * np.exp(0.02 * rng.standard_normal(len(n))), d, form="chinchilla",
                      bootstrap=200, seed=s)  # fmt: skip
        assert fit.interval_method == "pairs"  # 10 sizes: the runs themselves are resampled
        for name in covered:
            lo, hi = fit.ci[name]
            assert hi > lo and lo > 1e-6
            covered[name] += lo <= true[name] <= hi
        widths.append(fit.ci["alpha"][1] - fit.ci["alpha"][0])
        alphas.append(fit.params["alpha"])
    for name, hits in covered.items():
        assert 0.88 <= hits / studies <= 0.99, (name, hits)
    assert np.median(widths) <= 1.5 * 3.92 * np.std(alphas)


def test_an_asymptote_the_points_do_not_show_is_not_identified():
    """A pure power law fitted with a floor: E's interval reaches 0 and says so, instead of
    the degenerate [4e-9, 7e-9] that refits stuck at the point estimate gave."""
    rng = np.random.default_rng(3)
    y = 9.0 * SIZES_1D**-0.3 * np.exp(0.02 * rng.standard_normal(6))
    fit = fit_law(SIZES_1D, y, bootstrap=200)
    lo, hi = fit.ci["E"]
    assert lo < 0.01 * y.min() and hi > 1e-3  # the refits left the point estimate
    assert "E" in fit.not_identified and "reaches 0" in fit.not_identified["E"]
    assert analyze(pd.DataFrame({"params": SIZES_1D, "val_loss": y}), bootstrap=200).notes


def test_refits_reach_the_optimum_and_say_when_they_did_not():
    rng = np.random.default_rng(4)
    logn, y = np.log(SIZES_1D), _law_1d(SIZES_1D) * np.exp(0.02 * rng.standard_normal(6))
    design, logy = _design("saturating", logn, None), np.log(y)
    start = np.array([[0.0, 2.0, 0.5]])
    theta, loss, ok = intervals.irls(start, design, logy[None], np.ones((1, 6)))
    best = _lbfgs(start[0], design, logy, np.ones(6))
    assert ok[0] and loss[0] <= best.fun + 1e-6
    _, _, ok = intervals.irls(start, design, logy[None], np.ones((1, 6)), iters=2)
    assert not ok[0]  # stopped before its loss settled: counted as failed


def test_a_law_needs_more_points_than_parameters():
    with pytest.raises(ValueError, match="needs 4 or more"):
        fit_law([1e3, 1e4, 1e5], [2.0, 1.5, 1.2])
    analysis = analyze(pd.DataFrame({"params": [1e3, 1e4, 1e5], "val_loss": [2.0, 1.5, 1.2]}))
    assert analysis.fits == [] and any("needs 4 or more" in n for n in analysis.notes)


def _six_sizes(in_tmp, wrong=False):
    rng = np.random.default_rng(5)
    y = _law_1d(SIZES_1D) * np.exp(0.003 * rng.standard_normal(6))
    if wrong:
        y[-1] *= 1.3  # the largest size falls off the law
    path = in_tmp / "six.csv"
    pd.DataFrame({"N": SIZES_1D, "loss": y}).to_csv(path, index=False)
    return path


def test_the_prediction_check_gives_a_verdict(in_tmp, capsys):
    assert (
        main(["fit", str(_six_sizes(in_tmp)), "--x", "N", "--y", "loss", "--bootstrap", "200"]) == 0
    )
    check = json.loads((in_tmp / "six_analysis" / "fits.json").read_text())["extrapolation"][
        "saturating"
    ][0]
    assert check["passed"] and check["inside"] and check["held_out"] == [SIZES_1D[-1]]
    assert "PASS: predicted within 5%?" in capsys.readouterr().out

    assert (
        main(
            [
                "fit",
                str(_six_sizes(in_tmp, wrong=True)),
                "--x",
                "N",
                "--y",
                "loss",
                "--bootstrap",
                "200",
            ]
        )
        == 0
    )
    fits = json.loads((in_tmp / "six_analysis" / "fits.json").read_text())
    check = fits["extrapolation"]["saturating"][0]
    assert not check["passed"] and check["rows"][0]["rel_error"] < -0.05
    assert "FAIL" in capsys.readouterr().out
    assert any("leans on single points" in n for n in fits["notes"])  # one size bends the law


def test_goodness_of_fit_measures_the_residuals_against_the_seeds_noise():
    rng = np.random.default_rng(6)
    n = np.repeat(SIZES_1D, 3)  # three seeds per size
    bent = _law_1d(n) * (1 + 0.08 * np.sin(np.log(n)))  # a law the points do not follow
    df = pd.DataFrame({"params": n, "val_loss": bent * np.exp(0.005 * rng.standard_normal(len(n)))})
    analysis = analyze(df, bootstrap=100)
    assert (
        analysis.noise is not None and analysis.noise.source == "seeds" and analysis.noise.dof == 12
    )
    g = analysis.goodness["saturating"]
    assert len(g.rows) == len(df) and g.rms_log > 2 * analysis.noise.sigma
    assert any("does not describe them" in note for note in analysis.notes)


def test_the_figure_draws_the_law_the_tables_give(in_tmp):
    df = pd.read_csv(_six_sizes(in_tmp)).rename(columns={"N": "params", "loss": "val_loss"})
    analysis = analyze(df, bootstrap=100)
    fig = loss_vs_size_figure(df, analysis)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    law = next(text for text in labels if text.startswith("law: "))
    params = analysis.record()["fits"][0]["params"]  # what fits.json holds
    assert law == "law: " + analysis.fits[0].describe(tex=True)
    assert f"{params['E']:.3f}" in law and f"{params['alpha']:.3f}" in law
    lo, hi = analysis.fits[0].ci["alpha"]
    assert any(f"[{lo:.3f}, {hi:.3f}]" in text for text in labels)
    small = analysis.extrapolation["saturating"][0][0]
    assert "fitted without the largest: " + small.describe(tex=True) in labels  # its own curve
    assert len(fig.axes) == 2  # and the residuals under it


def _two_training_sets(in_tmp):
    n, d = (a.ravel() for a in np.meshgrid(np.logspace(7, 9, 5), np.logspace(9, 11, 4)))
    rows = []
    for name, floor in (("c4", 2.0), ("pile", 2.4)):
        loss = floor + 400 * n**-0.34 + 400 * d**-0.28
        rows.append(pd.DataFrame({"N": n, "D": d, "loss": loss, "dataset": name}))
    path = in_tmp / "mixed.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


def test_a_grouping_column_gives_one_law_per_value(in_tmp, capsys):
    args = [
        "fit",
        str(_two_training_sets(in_tmp)),
        "--x",
        "N",
        "--d",
        "D",
        "--y",
        "loss",
        "--bootstrap",
        "50",
    ]
    assert main(args) == 0
    fits = json.loads((in_tmp / "mixed_analysis" / "fits.json").read_text())
    assert any("differ in dataset" in n and "--group dataset" in n for n in fits["notes"])
    assert fits["spread"] == [] and fits["noise"] is None  # two training sets are not two seeds
    assert main([*args, "--group", "dataset"]) == 0
    fits = json.loads((in_tmp / "mixed_analysis" / "fits.json").read_text())
    floors = {k: g["fits"][0]["params"]["E"] for k, g in fits["groups"].items()}
    assert floors == pytest.approx({"c4": 2.0, "pile": 2.4}, rel=1e-3)
    assert "dataset = pile" in capsys.readouterr().out
    assert main(["report", str(_two_training_sets(in_tmp)), "--x", "N", "--d", "D", "--y", "loss",
                 "--bootstrap", "50", "--group", "dataset"]) == 0  # fmt: skip
    assert (in_tmp / "mixed_analysis" / "plots" / "compare_N.png").exists()
