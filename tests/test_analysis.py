import json

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.checks import extrapolation_check, isoflop_minima
from scaling.analysis.fit import fit_law
from scaling.cli import main

CH = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}


def chinchilla(n, d):
    return CH["E"] + CH["A"] * n ** -CH["alpha"] + CH["B"] * d ** -CH["beta"]


@pytest.fixture
def runs_csv(in_tmp):
    """A published-style table: N, D and loss from Chinchilla's law with 1% noise, plus a failed row."""
    rng = np.random.default_rng(0)
    n = np.repeat(np.logspace(7, 10, 7), 4)
    d = np.tile(np.logspace(9, 12, 4), 7)
    df = pd.DataFrame(
        {
            "N": n,
            "D": d,
            "loss": chinchilla(n, d) * np.exp(rng.normal(0, 0.01, len(n))),
            "status": "ok",
        }
    )
    df.loc[len(df)] = {"N": 1e11, "D": 1e12, "loss": np.nan, "status": "failed"}
    df.to_csv(in_tmp / "runs.csv", index=False)
    return in_tmp / "runs.csv"


def test_extrapolation_to_held_out_sizes_is_close_on_a_true_law():
    rng = np.random.default_rng(1)
    n = np.logspace(3, 7, 9)
    y = (0.8 + 40 * n**-0.3) * np.exp(rng.normal(0, 0.005, len(n)))
    fit, check = extrapolation_check(lambda x, y, d: fit_law(x, y), n, y, holdout=2)
    assert check.held_out == list(n[-2:])
    assert check.mean_abs_rel_error < 0.03 and check.rms_log_error < 0.03
    assert fit.n_points == 7


def test_a_held_out_size_at_several_seeds_is_judged_by_their_mean():
    """Five seeds of each size with 6% noise: one seed's luck at the held-out size is not the
    law's error. Its mean is compared with the prediction, one row for the size, and the
    interval is the mean's: the law's uncertainty with the noise over √5."""
    rng = np.random.default_rng(3)
    n = np.repeat(np.logspace(3, 6, 6), 5)
    y = (0.1 + 40 * n**-0.5) * np.exp(rng.normal(0, 0.06, len(n)))
    y[-5:] = (0.1 + 40 * n[-1] ** -0.5) * np.array([0.88, 1.01, 1.0, 1.02, 1.09])  # mean ≈ 1
    fit_fn = lambda x, y, d: fit_law(x, y, bootstrap=200)  # noqa: E731
    small, check = extrapolation_check(fit_fn, n, y)
    (row,) = check.rows
    assert row["runs"] == 5 and row["y"] == pytest.approx(y[-5:].mean())
    assert check.mean_abs_rel_error == pytest.approx(abs(row["predicted"] / row["y"] - 1))
    keep = n < n[-1]
    alone = extrapolation_check(fit_fn, np.append(n[keep], n[-1]), np.append(y[keep], y[-5]))[1]
    assert alone.rows[0]["runs"] == 1 and abs(alone.rows[0]["rel_error"]) > abs(row["rel_error"])
    (mean_lo,), (mean_hi,) = small.predict_interval([n[-1]], noise=True, runs=[5])
    assert (row["lo"], row["hi"]) == pytest.approx((mean_lo, mean_hi))
    law, one, mean = (np.log(np.divide(*small.predict_interval([n[-1]], noise=noise, runs=runs)[::-1]))
                      for noise, runs in ((False, 1), (True, 1), (True, 5)))  # fmt: skip
    assert law < mean < one  # the mean of five runs: wider than the law alone, narrower than a run


def test_isoflop_minima_give_the_chinchilla_exponent():
    budgets = [1e17, 1e18, 1e19, 1e20]
    n = np.concatenate([np.logspace(-1.2, 1.2, 7) * 0.1 * np.sqrt(c / 6) ** 0.9 for c in budgets])
    c = np.repeat(budgets, 7)
    iso = isoflop_minima(n, chinchilla(n, c / (6 * n)), c)
    assert len(iso.budgets) == 4 and not any(b["at_edge"] for b in iso.budgets)
    assert iso.exponent == pytest.approx(0.28 / 0.62, abs=0.03)


def test_isoflop_minimum_at_the_edge_is_flagged():
    n = np.array([1e6, 2e6, 4e6, 8e6])
    iso = isoflop_minima(n, 3 - 0.1 * np.log(n), np.full(4, 1e18))
    assert iso.budgets[0]["at_edge"] and iso.exponent is None


def test_report_on_a_csv_with_two_variables(runs_csv, capsys):
    assert (
        main(["report", str(runs_csv), "--x", "N", "--y", "loss", "--d", "D", "--bootstrap", "100"])
        == 0
    )
    out = runs_csv.parent / "runs_analysis"
    fits = json.loads((out / "fits.json").read_text())
    forms = [f["form"] for f in fits["fits"]]
    assert forms == ["chinchilla"]  # D varies: a law in N alone would mix data sizes
    assert any("D varies" in n for n in fits["notes"])
    chin = fits["fits"][0]
    assert chin["params"]["alpha"] == pytest.approx(0.34, abs=0.06)
    assert fits["frontier"]["a"] == pytest.approx(0.28 / 0.62, abs=0.06)
    assert fits["excluded"] == {"status failed": 1}
    assert fits["spread"] == []  # rows at one N differ in D: they are not repeated runs
    assert "chinchilla" in fits["extrapolation"]
    md = (out / "report.md").read_text()
    assert (
        "Compute-optimal frontier" in md
        and "Prediction of held-out sizes" in md
        and "1 point left out" in md
    )
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and "<table" in page
    assert (out / "plots" / "loss_vs_N.svg").exists()


def test_a_law_whose_loss_rises_with_data_has_no_frontier(in_tmp):
    """More data raising the loss (overfit runs, or mixed settings) fits β < 0: there is no
    compute-optimal split to draw, and nothing complex leaks into the figures."""
    import warnings

    n = np.repeat(np.logspace(5, 7, 5), 4)
    d = np.tile(np.logspace(7, 9, 4), 5)
    loss = 1.5 + 40 * n**-0.3 + 0.02 * d**0.1
    pd.DataFrame({"N": n, "D": d, "loss": loss, "flops_total": 6 * n * d}).to_csv("rising.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        assert main(["report", "rising.csv", "--x", "N", "--y", "loss", "--d", "D", "--bootstrap", "0"]) == 0
    fits = json.loads((in_tmp / "rising_analysis" / "fits.json").read_text())
    assert fits["fits"][0]["params"]["beta"] < 0
    assert fits["frontier"] is None
    assert any("no compute-optimal frontier" in n for n in fits["notes"])


def test_fit_prints_the_law_and_saves_fits(runs_csv, capsys):
    assert main(["fit", str(runs_csv), "--x", "N", "--y", "loss", "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "L = E + A·N^-α" in printed and "95% CI" in printed
    assert (runs_csv.parent / "runs_analysis" / "fits.json").exists()


def test_plot_compares_studies(runs_csv, in_tmp):
    other = in_tmp / "other.csv"
    df = pd.read_csv(runs_csv)
    df.assign(loss=df["loss"] * 1.1).to_csv(other, index=False)
    assert (
        main(
            [
                "plot",
                str(runs_csv),
                str(other),
                "--x",
                "N",
                "--y",
                "loss",
                "--bootstrap",
                "20",
                "--out",
                "cmp",
            ]
        )
        == 0
    )
    assert (in_tmp / "cmp" / "compare_N.png").stat().st_size > 0


BAD_TABLES = [
    ("size,loss\n1e3,2\n1e4,1.5\n1e5,1.2\n", "has no column N"),
    ("N,loss\n1e3,2\n1e4,abc\n1e5,1.2\n", "non-numeric"),
    ("N,loss\n1e3,2\n1e4,-1\n1e5,1.2\n1e6,1\n", "values ≤ 0"),
    ("N,loss\n1e3,2\n1e4,1.5\n", "distinct N values"),
    ("", "cannot read"),
]


@pytest.mark.parametrize("text,message", BAD_TABLES)
def test_bad_tables_are_one_line_errors(in_tmp, capsys, text, message):
    (in_tmp / "t.csv").write_text(text)
    assert main(["fit", "t.csv", "--x", "N", "--y", "loss"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_a_report_of_too_few_sizes_has_its_points_and_says_why_there_is_no_law(in_tmp, capsys):
    (in_tmp / "t.csv").write_text("N,loss\n1e3,2\n1e4,1.5\n1e5,1.2\n")
    assert main(["report", "t.csv", "--x", "N", "--y", "loss"]) == 0
    md = (in_tmp / "t_analysis" / "report.md").read_text()
    assert "## Points" in md and "3 distinct N values" in md and "needs 4 or more" in md


def test_a_ladder_at_one_tokens_per_parameter_is_fitted_in_n(tmp_path):
    """D = 20·N at every size: L(N, D) cannot tell N from D, so the law is L(N), said in a note;
    the same sizes at two data sizes each get L(N, D)."""
    from scaling.analysis.study import analyze
    from scaling.store import Table

    n = np.geomspace(1e4, 1e6, 6)
    ladder = pd.DataFrame({"params": n, "train_tokens": 20 * n, "val_loss": 0.5 + 40 * n**-0.3,
                           "model.width": np.arange(6)})  # fmt: skip
    result = analyze(Table(ladder, ladder, tmp_path, tmp_path, {}), bootstrap=20)
    assert result.d is None and result.fits[0].form != "chinchilla"
    assert any("train_tokens follows params" in note for note in result.notes)
    grid = pd.concat(
        [ladder, ladder.assign(train_tokens=80 * n, val_loss=ladder["val_loss"] - 0.05)]
    )
    assert analyze(Table(grid, grid, tmp_path, tmp_path, {}), bootstrap=20).d == "train_tokens"
