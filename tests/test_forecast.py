"""A running point's forecast of its final loss, from its sweep's finished points."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.curves import loss_at, loss_to_loss
from scaling.cli import main
from scaling.config.schema import OptimConfig
from scaling.store import collect
from scaling.training.forecast import same_schedule
from scaling.training.loop import Course
from scaling.training.optim import lr_at

STEPS = np.arange(100, 2001, 100)


def _curves(rng, n, noise=0.0):
    """Synthetic runs of one schedule whose log loss at every step is linear in a per-run
    quality u, in log lr and in log N: log L(t) = g(t) + h(t)·u + k(t)·log lr + m(t)·log N
    (+ noise at the end)."""
    t = STEPS / STEPS[-1]
    g, h, k, m = -1.5 * t, 0.5 + 1.7 * t, 0.1 - 0.3 * t, -0.05 - 0.1 * t
    u = rng.uniform(0, 1.5, n)
    log_lr = rng.uniform(math.log(0.003), math.log(0.05), n)
    log_n = rng.uniform(math.log(1e3), math.log(1e6), n)
    log_loss = g + np.outer(u, h) + np.outer(log_lr, k) + np.outer(log_n, m)
    finals = np.exp(log_loss[:, -1] + noise * rng.standard_normal(n))
    return np.exp(log_loss), np.exp(log_lr), np.exp(log_n), finals


def test_the_final_loss_of_a_known_curve_is_forecast_from_its_first_quarter():
    losses, lrs, sizes, finals = _curves(np.random.default_rng(0), 9)
    early = [loss_at(STEPS, curve, [400, 500]) for curve in losses]
    f = loss_to_loss(early[:8], lrs[:8], sizes[:8], finals[:8], early[8], lrs[8], sizes[8], 500, 2000)
    assert f.loss == pytest.approx(finals[8], rel=1e-9)  # the relation is exact: so is the forecast
    assert f.lo <= f.loss <= f.hi and f.refs == 8 and f.step == 500
    # the first quarter's loss alone is far off: the loss falls on after it
    assert abs(math.exp(early[8]) / finals[8] - 1) > 0.1


def test_the_forecast_interval_holds_the_final_loss_as_often_as_it_says():
    rng = np.random.default_rng(1)
    inside = []
    for _ in range(300):
        losses, lrs, sizes, finals = _curves(rng, 12, noise=0.03)
        early = [loss_at(STEPS, curve, [400, 500]) for curve in losses]
        f = loss_to_loss(early[:11], lrs[:11], sizes[:11], finals[:11], early[11], lrs[11],
                         sizes[11], 500, 2000)  # fmt: skip
        inside.append(f.lo <= finals[11] <= f.hi)
    # a 90% interval; the leave-one-out scale makes it a little wide when the relation is exact
    assert 0.87 <= np.mean(inside) <= 0.98


def test_too_few_finished_runs_give_no_forecast():
    losses, lrs, sizes, finals = _curves(np.random.default_rng(2), 6)
    early = [loss_at(STEPS, curve, [400, 500]) for curve in losses]
    one = [1e4] * 6  # one size: its column drops out
    # (1, early, log lr): three coefficients need five runs for two degrees of freedom
    assert loss_to_loss(early[:4], lrs[:4], one[:4], finals[:4], early[5], lrs[5], 1e4, 500, 2000) is None
    assert loss_to_loss(early[:5], lrs[:5], one[:5], finals[:5], early[5], lrs[5], 1e4, 500, 2000)
    # (1, early, log lr, log N): four need six
    assert (
        loss_to_loss(early[:5], lrs[:5], sizes[:5], finals[:5], early[5], lrs[5], sizes[5], 500, 2000)
        is None
    )
    assert loss_at(STEPS, losses[0], [150, 200]) is None  # no evaluation at step 150
    assert loss_at([100, 200], [0.5, float("nan")], [100, 200]) is None  # nor a loss to read


def test_a_run_unlike_its_references_in_what_they_share_gets_no_forecast():
    losses, lrs, sizes, finals = _curves(np.random.default_rng(3), 8)
    early = [loss_at(STEPS, curve, [400, 500]) for curve in losses]
    one = [0.01] * 8  # every reference at one lr, the run at another: no basis
    assert loss_to_loss(early[:7], one[:7], sizes[:7], finals[:7], early[7], 0.01, sizes[7], 500, 2000)
    assert loss_to_loss(early[:7], one[:7], sizes[:7], finals[:7], early[7], 0.02, sizes[7], 500, 2000) is None
    # a reference evaluated at other steps is read at the run's own steps, or not at all
    assert early[0] == pytest.approx(np.mean(np.log(losses[0][3:5])))
    assert loss_at(np.arange(150, 2001, 150), losses[0][:13], [400, 500]) is None


def test_only_runs_of_the_same_schedule_are_references():
    cosine = OptimConfig(schedule="cosine", warmup=0.05)
    course = Course(400, cosine, 0.02, 100, None, 16, 16, False, "x")
    steps = np.arange(100, 401, 100)
    history = pd.DataFrame({"step": steps, "lr": [lr_at(s - 1, 400, cosine, 0.005) for s in steps]})
    assert same_schedule(history, 0.005, course)  # another peak lr, the same schedule
    wsd = OptimConfig(schedule="wsd", warmup=0.05)
    history["lr"] = [lr_at(s - 1, 400, wsd, 0.005) for s in steps]
    assert not same_schedule(history, 0.005, course)


TINY = ["trainer.device=cpu", "trainer.batch_size=16", "trainer.steps=80",
        "trainer.eval_interval=10", "tune.lrs=[]", "--bootstrap", "0"]  # fmt: skip


def test_each_point_forecasts_from_the_finished_ones_and_the_report_scores_them(in_tmp, capsys):
    assert main(["sweep", "model.width=4,6,8,12,16,24,32", *TINY, "--out", "study"]) == 0
    out = capsys.readouterr().out
    rows = collect(in_tmp / "study").sort_values("params")
    done = rows[rows["forecast_loss"].notna()]
    # one lr, seven sizes: (1, early, log N) need five finished runs of the schedule
    assert len(done) == 2 and list(done["forecast_refs"]) == [5, 6]
    assert (done["forecast_step"] == 20).all()  # 25% of 80 steps, with two evaluations
    assert (
        (done["forecast_lo"] < done["forecast_loss"])
        & (done["forecast_loss"] < done["forecast_hi"])
    ).all()
    # the display's forecast is renewed at every evaluation after: the last one's, from the
    # same references, is the loss reached at the end (to the regression's fit)
    last = done.iloc[-1]
    shown = json.loads((in_tmp / "study" / "points" / last["point_id"] / "forecast.json").read_text())
    assert shown["step"] == 80 and shown["refs"] == last["forecast_refs"]
    assert abs(shown["loss"] / last["val_loss"] - 1) < abs(last["forecast_loss"] / last["val_loss"] - 1) + 0.02
    assert "(forecast " in out
    report = (in_tmp / "study" / "report.md").read_text()
    assert "## Forecasts of the final loss" in report and "2 forecasts of the final loss" in report
    assert (in_tmp / "study" / "plots" / "forecasts.png").is_file()
    # switched off, no point forecasts
    assert (
        main(
            ["sweep", "model.width=4,6,8,12,16,24,32", *TINY, "trainer.forecast=0", "--out", "off"]
        )
        == 0
    )
    assert collect(in_tmp / "off")["forecast_loss"].isna().all()


def test_packed_seeds_share_one_forecast_from_their_mean_early_loss(in_tmp):
    """Two seeds a width, packed: each pack's seeds get one forecast, the one its
    references give for their mean log loss at the forecast's steps."""
    assert main(["sweep", "model.width=4,6,8,12,16,24,32", *TINY, "trainer.pack_seeds=2",
                 "--out", "study"]) == 0  # fmt: skip
    rows = collect(in_tmp / "study")
    done = rows[rows["forecast_loss"].notna()]
    assert len(done) >= 2
    for _, pack in done.groupby("params"):
        assert len(pack) == 2 and pack["forecast_loss"].nunique() == 1
    pack = done[done["params"] == done["params"].max()]
    step = int(pack["forecast_step"].iloc[0])
    history = {p: pd.read_csv(in_tmp / "study" / "points" / p / "history.csv") for p in pack["point_id"]}
    early = [loss_at(h["step"], h["val_loss"], [step - 10, step]) for h in history.values()]
    assert abs(early[0] - early[1]) > 1e-4  # the seeds differ early; the forecast takes their mean
    finished = rows[rows["params"] < pack["params"].iloc[0]]  # the packs ran smallest first
    assert len(finished) == pack["forecast_refs"].iloc[0]
    refs = [(loss_at(h["step"], h["val_loss"], [step - 10, step]), r["lr"], r["params"], r["val_loss"])
            for r, h in ((r, pd.read_csv(in_tmp / "study" / "points" / r["point_id"] / "history.csv"))
                         for _, r in finished.iterrows())]  # fmt: skip
    expected = loss_to_loss(*zip(*refs), float(np.mean(early)), pack["lr"].iloc[0],
                            pack["params"].iloc[0], step, 80)  # fmt: skip
    assert pack["forecast_loss"].iloc[0] == pytest.approx(expected.loss, rel=1e-9)


def test_a_bad_forecast_share_is_one_line_and_exit_2(in_tmp, capsys):
    assert main(["sweep", "model.width=4", *TINY, "trainer.forecast=1.5"]) == 2
    err = capsys.readouterr().err
    assert "trainer.forecast" in err and len(err.strip().splitlines()) == 1


def _grid(rng, luck=0.1):
    """A tuning grid: five lrs at each of three sizes, whose final log loss is curved in log
    lr about each size's best rate (as tuning runs' are) and otherwise linear in the early
    log loss and log N; the early loss (at a quarter of the run) carries each run's own luck
    ``u``, of which a quarter lasts to the end."""

    def run(lr, size, u):
        x = math.log(lr)
        best = math.log(0.02) - 0.3 * math.log(size / 1e3)
        early = 0.4 - 0.1 * math.log(size) - 0.2 * x
        final = -0.5 - 0.2 * math.log(size) + 0.08 * (x - best) ** 2 + 2 * (early - 0.4) + u / 4
        return early + u, math.exp(final)

    grid = [(lr, size) for size in (1e3, 1e4, 1e5) for lr in (0.005, 0.01, 0.02, 0.04, 0.08)]
    runs = [(lr, size, *run(lr, size, luck * rng.standard_normal())) for lr, size in grid]
    return runs, run


def test_a_run_inside_its_sizes_tuning_grid_is_read_off_the_grid_curve():
    rng = np.random.default_rng(4)
    plane_errors, errors, inside = [], [], []
    for _ in range(100):
        runs, run = _grid(rng)
        lrs, sizes, early, finals = (list(c) for c in zip(*runs))
        lr = math.exp(rng.uniform(math.log(0.006), math.log(0.07)))  # between the grid's lrs
        e0, truth = run(lr, 1e4, 0.1 * rng.standard_normal())
        f = loss_to_loss(early, lrs, sizes, finals, e0, lr, 1e4, 500, 2000)
        # log final loss is a parabola in log lr here; a plane through the grid misreads it
        X = np.column_stack([np.ones(15), early, np.log(lrs), np.log(sizes)])
        coef = np.linalg.lstsq(X, np.log(finals), rcond=None)[0]
        plane = math.exp(np.array([1, e0, math.log(lr), math.log(1e4)]) @ coef)
        plane_errors.append(abs(plane / truth - 1))
        errors.append(abs(f.loss / truth - 1))
        inside.append(f.lo <= truth <= f.hi)
    assert np.median(plane_errors) > 0.05
    assert np.median(errors) < 0.03 and np.median(errors) < 0.4 * np.median(plane_errors)
    assert np.mean(inside) >= 0.9
    # outside the grid's lrs, or at a size it has no grid for, the plane is all there is
    for lr, size in ((0.2, 1e4), (0.0283, 3e4)):
        e0 = run(lr, size, 0.0)[0]
        x0 = np.array([1, e0, math.log(lr), math.log(size)])
        f = loss_to_loss(early, lrs, sizes, finals, e0, lr, size, 500, 2000)
        assert f.loss == pytest.approx(math.exp(x0 @ coef), rel=1e-9)


def test_a_grid_steeper_above_its_best_lr_is_read_near_the_points_lr():
    """Loss rises faster above the best lr than below it (as tuning grids' do): a parabola
    through the whole grid of 16× misses a run near the best lr; weighting the grid's runs by
    their distance from its lr reads the curve where the run is."""

    def final(lr, size):
        d = math.log(lr) - (math.log(0.02) - 0.3 * math.log(size / 1e3))
        return math.exp(-0.5 - 0.2 * math.log(size) + 0.08 * d * d * (6 if d > 0 else 1))

    rng = np.random.default_rng(5)
    grid = [(lr, size) for size in (1e3, 1e4, 1e5) for lr in (0.005, 0.01, 0.02, 0.04, 0.08)]
    lrs, sizes = zip(*grid)
    finals = [final(*g) for g in grid]
    early = [0.3] * len(grid)  # one early loss: only the lr tells the runs apart
    here = np.log(lrs[5:10])  # the grid of size 1e4, whose best lr is 0.01
    errors, whole = [], []
    for lr in np.exp(math.log(0.01) + rng.uniform(-0.35, 0.35, 50)):
        truth = final(lr, 1e4)
        forecast = loss_to_loss(early, lrs, sizes, finals, 0.3, lr, 1e4, 500, 2000)
        errors.append(abs(forecast.loss / truth - 1))
        parabola = np.polyval(np.polyfit(here, np.log(finals[5:10]), 2), math.log(lr))
        whole.append(abs(math.exp(parabola) / truth - 1))
    assert np.median(whole) > 0.03
    assert np.median(errors) < 0.015 and max(errors) < 0.04


def test_runs_at_one_lr_count_once_in_a_sizes_grid():
    """Two runs whose lrs differ by a rounding (1e-10) are one lr of the grid: with one more
    lr there are two, too few for a parabola, and the plane gives the forecast."""
    edge = round(math.log(0.01), 9) + 0.5e-9 - 0.5e-10  # the two sit astride a rounding
    lrs = [math.exp(edge), math.exp(edge + 1e-10), 0.02, 0.03, 0.01, 0.02]
    sizes = [1e4, 1e4, 1e4, 1e3, 1e5, 1e5]
    early, finals = [0.1, 0.12, 0.05, 0.2, 0.0, -0.05], [0.5, 0.52, 0.4, 0.7, 0.35, 0.3]
    f = loss_to_loss(early, lrs, sizes, finals, 0.07, 0.015, 1e4, 500, 2000)
    assert f is not None
    X = np.column_stack([np.ones(6), early, np.log(lrs), np.log(sizes)])
    coef = np.linalg.lstsq(X, np.log(finals), rcond=None)[0]
    plane = math.exp(np.array([1, 0.07, math.log(0.015), math.log(1e4)]) @ coef)
    assert f.loss == pytest.approx(plane, rel=1e-9)
