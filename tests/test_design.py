"""`scale design`: the intervals a grid can expect, and the next points of a finished study."""

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from scaling.analysis import design
from scaling.cli import main

X = np.geomspace(1e3, 3e5, 6)


def test_simulated_studies_hold_the_prior_and_scale_with_the_noise():
    fit = design.prior_fit("saturating", design.default_prior(X), X)
    target = (4 * X.max(),)
    wide = design.simulate(fit, X, sigma=0.02, studies=300, target=target)
    narrow = design.simulate(fit, X, sigma=0.01, studies=300, target=target)
    assert wide.studies >= 290
    for q, (est, lo, hi) in wide.ranges.items():
        assert lo < est < hi, q
    ratio = [
        (w[2] - w[1]) / (n[2] - n[1]) for w, n in zip(wide.ranges.values(), narrow.ranges.values())
    ]
    assert all(1.6 < r < 2.5 for r in ratio), ratio  # half the noise, about half the width


def test_the_linearised_sd_matches_simulated_studies():
    fit = design.prior_fit("saturating", {"E": 0.5, "A": 30.0, "alpha": 0.4}, X)
    n_target = 4 * X.max()
    sd = design.target_sd(fit, X, None, 0.01, design.target_function(fit, "loss", (n_target,)))
    sim = design.simulate(fit, X, sigma=0.01, studies=400, target=(n_target,))
    _, lo, hi = sim.ranges["loss at target"]
    simulated = (np.log(hi) - np.log(lo)) / (2 * 1.96)
    assert sd == pytest.approx(simulated, rel=0.3)


def test_the_default_prior_centres_the_middle_budget():
    budgets = {1e11: [5e3, 2e4, 8e4], 1e12: [5e3, 2e4, 8e4], 1e13: [5e3, 2e4, 8e4]}
    n = np.concatenate(list(budgets.values()))
    d = np.repeat(list(budgets), 3) / (6 * n)
    fit = design.prior_fit("chinchilla", design.default_prior(n, d, budgets), n, d)
    rows = design.optima(fit, budgets)
    assert rows[1]["off_centre"] == pytest.approx(1.0)
    # the same sizes at every budget: the optimum moves as C^0.5 past them
    assert rows[0]["off_centre"] > 1 > rows[2]["off_centre"]
    assert rows[2]["off_centre"] == pytest.approx(10**-0.5, rel=1e-6)


def test_suggest_buys_information_per_flop_and_stops_when_tight():
    fit = design.prior_fit("saturating", {"E": 0.5, "A": 30.0, "alpha": 0.4}, X)
    target = design.target_function(fit, "loss", (4 * X.max(),))
    big = {"n": 4 * X.max(), "d": None, "flops": 1e12, "kind": "new size"}
    costly = {**big, "flops": 1e15}  # the same run at a thousand times the price
    small = {"n": X[0], "d": None, "flops": 1e9, "kind": "repeat"}
    picks = design.suggest(fit, X, None, 0.01, [costly, big, small], target, k=3)
    assert all(p["flops"] != 1e15 for p in picks)
    sds = [picks[0]["sd_before"]] + [p["sd_after"] for p in picks]
    assert all(a > b for a, b in zip(sds, sds[1:]))
    assert design.suggest(fit, X, None, 0.01, [big], target, k=3, enough=1.0) == []


def test_design_check_of_a_grid(in_tmp, capsys):
    assert main(["design", "check", "model.width=4,8,16,32,64", *TINY]) == 0
    out = capsys.readouterr().out
    assert "Design of mlp_width" in out and "alpha" in out and "Cost" in out
    assert main(["design", "check", "model.width=-4", *TINY]) == 2
    err = capsys.readouterr().err
    assert "model.width must be > 0" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit) as stop:
        main(["design", "check", "--noise", "-0.1"])
    assert stop.value.code == 2 and "--noise: must be > 0" in capsys.readouterr().err


def test_suggested_points_run_as_a_preset_into_the_study(in_tmp, capsys):
    study = ["sweep", "model.width=4,8,16,32,64", *TINY, "trainer.steps=20", "--out", "pilot"]
    assert main([*study, "--bootstrap", "0"]) == 0
    before = pd.read_csv(in_tmp / "pilot" / "results.csv")
    argv = ["design", "suggest", "pilot", "--k", "2", "--preset-out", "sweeps/more.yaml"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Next points for pilot" in out and "scale sweep more --out" in out
    assert "The next size of the grid instead (model.width=128" in out
    assert main(["sweep", "more", "--out", "pilot", "--bootstrap", "0"]) == 0
    after = pd.read_csv(in_tmp / "pilot" / "results.csv")
    # the pilot's points were found done; only the two picks trained
    assert len(after) == len(before) + 2 and (after["status"] == "ok").all()
    assert set(before["point_id"]) < set(after["point_id"])
    assert main(["design", "suggest", "pilot", "--tight", "10"]) == 0
    assert "nothing to run" in capsys.readouterr().out
