"""A point whose forecast is off the law through its study's finished points: said in the log
and the progress display, and with trainer.stop_hopeless stopped, to be resumed later."""

import json

import numpy as np
import pandas as pd
import pytest

from scaling.analysis.curves import Forecast, Trend, off_trend, trend
from scaling.cli import main
from scaling.console import sweeps_table
from scaling.store import collect
from scaling.training import forecast as forecasting

SIZES = np.array([1e3, 3e3, 1e4, 3e4, 1e5, 3e5])


def _study(rng, noise=0.02):
    """Final losses of six sizes on L = 0.2 + 30·N^-0.5, with run-to-run noise in log loss."""
    return (0.2 + 30 * SIZES**-0.5) * np.exp(noise * rng.standard_normal(len(SIZES)))


def test_a_forecast_apart_from_the_law_is_off_trend_and_one_that_meets_it_is_not():
    rng = np.random.default_rng(0)
    law = trend(SIZES[:5], _study(rng)[:5], 3e5)
    truth = 0.2 + 30 * 3e5**-0.5
    assert law.points == 5
    assert law.lo < truth < law.hi and law.hi / law.lo < 1.5  # a new run's loss there, 95%
    near = Forecast(truth * 1.03, truth * 0.95, truth * 1.1, 500, 8)
    assert off_trend(near, law) is None
    assert off_trend(Forecast(truth * 2, truth * 1.7, truth * 2.3, 500, 8), law) == "above"
    assert off_trend(Forecast(truth / 2, truth / 2.3, truth / 1.7, 500, 8), law) == "below"
    # a wide forecast meets the law however far off its middle is
    assert off_trend(Forecast(truth * 2, truth * 0.9, truth * 4, 500, 8), law) is None


def test_fewer_than_five_sizes_give_no_law():
    finals = _study(np.random.default_rng(1))
    assert trend(SIZES[:4], finals[:4], 3e5) is None  # one residual cannot judge a point
    seeds = np.r_[SIZES[:4], SIZES[:4]]
    assert trend(seeds, np.r_[finals[:4], finals[:4]], 3e5) is None  # seeds are not sizes
    assert trend(SIZES[:5], finals[:5], 3e5).points == 5  # five sizes are enough


def test_a_law_that_levels_off_does_not_flag_the_larger_sizes():
    """Losses that level off (E > 0): a power law through the smaller sizes would expect too
    little of the larger ones. The saturating law's interval holds them."""
    rng = np.random.default_rng(3)
    flagged = 0
    for _ in range(20):
        finals = _study(rng, noise=0.01)
        law = trend(SIZES[:5], finals[:5], SIZES[5])
        healthy = Forecast(finals[5] * 1.02, finals[5] * 0.92, finals[5] * 1.12, 500, 8)
        flagged += off_trend(healthy, law) is not None
    assert flagged <= 2


def test_law_intervals_hold_new_runs_about_as_often_as_they_say():
    rng = np.random.default_rng(2)
    inside = []
    for _ in range(60):
        finals = _study(rng, noise=0.03)
        law = trend(SIZES[:5], finals[:5], 3e5)
        inside.append(law.lo <= finals[5] <= law.hi)
    assert np.mean(inside) >= 0.85  # 95% nominal; a false alarm needs the forecast off as well


TINY = ["model.width=4,6,8,12,16,24,32", "trainer.device=cpu", "trainer.batch_size=16",
        "trainer.steps=80", "trainer.eval_interval=10", "tune.lrs=[]", "--bootstrap", "0"]  # fmt: skip


def _far_below(monkeypatch):
    """A law that puts every size's loss far below any forecast: each forecast is off it."""
    low = Trend(0.01, 0.009, 0.011, 5)
    monkeypatch.setattr(forecasting, "trend", lambda sizes, finals, size0: low)


def test_an_off_trend_point_is_said_so_and_trains_on(in_tmp, monkeypatch, capsys):
    _far_below(monkeypatch)
    assert main(["sweep", *TINY, "--out", "study"]) == 0
    out = capsys.readouterr().out
    rows = collect(in_tmp / "study")
    forecast = rows[rows["forecast_loss"].notna()]
    assert len(forecast) == 2 and (forecast["status"] == "ok").all()
    assert out.count("off-trend: its forecast") == 2 and "lies above the law" in out
    shown = json.loads(
        (in_tmp / "study" / "points" / forecast["point_id"].iloc[0] / "forecast.json").read_text()
    )
    assert shown["off_trend"].startswith("off-trend: its forecast")
    # the row keeps the law beside the forecast; the report counts the points off it
    assert (forecast["forecast_law"] == 0.01).all() and rows["forecast_law"].notna().sum() == 2
    report = (in_tmp / "study" / "report.md").read_text()
    assert (
        "Off-trend (the forecast's interval apart from the law's): 2 finished points, 2 of which ended"
        in report
    )


def test_a_hopeless_point_stops_keeps_its_place_and_resumes_when_asked(in_tmp, monkeypatch, capsys):
    _far_below(monkeypatch)
    # stopped on purpose, not failed: --max-failures does not count them
    assert (
        main(
            ["sweep", *TINY, "trainer.stop_hopeless=true", "--max-failures", "1", "--out", "study"]
        )
        == 1
    )
    rows = collect(in_tmp / "study").set_index("point_id")
    hopeless = rows[rows["status"] == "hopeless"]
    assert len(hopeless) == 2 and (rows["status"] == "ok").sum() == 5  # the rest trained on
    assert hopeless["error"].str.startswith("off-trend: its forecast").all()
    points = in_tmp / "study" / "points"
    for pid in hopeless.index:
        history = pd.read_csv(points / pid / "history.csv")
        assert history["step"].max() == 20  # stopped at its forecast, 25% of 80 steps
        assert (points / pid / "checkpoint.pt").is_file()
    report = (in_tmp / "study" / "report.md").read_text()
    assert (
        "2 stopped as hopeless (trainer.stop_hopeless)" in report
        and report.count("| stopped ") == 2
    )
    table = sweeps_table(in_tmp)  # scale ls: a column for the status, where a sweep has it
    assert [c.header for c in table.columns] == ["sweep", "points", "ok", "hopeless", "pending"]
    # a plain re-run leaves it be; asked, it resumes where it stopped and finishes
    capsys.readouterr()
    assert main(["sweep", *TINY, "trainer.stop_hopeless=true", "--out", "study"]) == 1
    assert "resuming" not in capsys.readouterr().out
    monkeypatch.setattr(forecasting, "trend", trend)  # the real law: the points are on it
    assert main(["sweep", *TINY, "--retry-failed", "--out", "study"]) == 0
    assert capsys.readouterr().out.count("resuming from the checkpoint at step 20") == 2
    again = collect(in_tmp / "study").set_index("point_id")
    assert (again["status"] == "ok").all() and len(again) == 7  # the same points, resumed
    for pid in hopeless.index:
        history = pd.read_csv(points / pid / "history.csv")
        assert list(history["step"]) == list(range(10, 81, 10))
        assert not (points / pid / "checkpoint.pt").exists()
        # its first forecast and the law it was stopped on stay in the row, as made then
        assert again.loc[pid, "forecast_step"] == 20 and again.loc[pid, "forecast_law"] == 0.01
        assert again.loc[pid, "forecast_loss"] == pytest.approx(hopeless.loc[pid, "forecast_loss"])


@pytest.mark.parametrize("bad", [["trainer.forecast=0"], ["trainer.nproc=2"]])
def test_stop_hopeless_without_a_forecast_or_with_processes_is_one_line_and_exit_2(
    in_tmp, capsys, bad
):
    assert (
        main(["sweep", "model.width=4", "trainer.device=cpu", "trainer.stop_hopeless=true", *bad])
        == 2
    )
    err = capsys.readouterr().err
    assert "trainer.stop_hopeless" in err and len(err.strip().splitlines()) == 1


def test_packed_seeds_share_the_verdict_and_stop_together(in_tmp, monkeypatch):
    _far_below(monkeypatch)
    assert (
        main(
            ["sweep", *TINY, "trainer.pack_seeds=2", "trainer.stop_hopeless=true", "--out", "study"]
        )
        == 1
    )
    rows = collect(in_tmp / "study")
    hopeless = rows[rows["status"] == "hopeless"]
    # every pack that forecast stopped, both its seeds; the packs before had no references
    assert len(hopeless) >= 4 and hopeless.groupby("params").size().eq(2).all()
    assert (rows["forecast_loss"].notna() == rows["status"].eq("hopeless")).all()
    assert (hopeless["forecast_step"] == 20).all() and (rows["status"] == "ok").sum() >= 4
    for pid in hopeless["point_id"]:  # a pack keeps no checkpoint: it trains again when asked
        assert pd.read_csv(in_tmp / "study" / "points" / pid / "history.csv")["step"].max() == 20


def test_the_report_reads_forecasts_with_no_law_beside_them():
    """Rows read back from result files hold None where no law was fitted (an object
    column): the forecast table has no law column then, and counts nothing off-trend."""
    from scaling.report.forecasts import forecasts_section

    rows = pd.DataFrame({"point_id": ["a", "b"], "status": ["ok", "ok"], "params": [10, 20],
                         "lr": [0.01, 0.01], "steps": [80, 80], "val_loss": [1.0, 0.9],
                         "forecast_loss": [1.1, 0.85], "forecast_lo": [0.9, 0.7],
                         "forecast_hi": [1.3, 1.0], "forecast_step": [20, 20],
                         "forecast_refs": [5, 6], "forecast_law": [None, None],
                         "forecast_law_lo": [None, None], "forecast_law_hi": [None, None]})  # fmt: skip
    section = forecasts_section(rows)
    text, frame = section.blocks[0], section.blocks[1].table
    assert "Off-trend" not in text and "law (95%)" not in frame.columns and len(frame) == 2
    rows.loc[1, ["forecast_law", "forecast_law_lo", "forecast_law_hi"]] = [0.5, 0.45, 0.55]
    section = forecasts_section(rows)
    assert "1 finished point, 1 of which ended outside the law's interval" in section.blocks[0]


def test_a_law_that_cannot_be_fitted_leaves_the_forecast(in_tmp, monkeypatch):
    def fails(sizes, finals, size0):
        raise ValueError("no law")

    monkeypatch.setattr(forecasting, "trend", fails)
    assert main(["sweep", *TINY, "trainer.stop_hopeless=true", "--out", "study"]) == 0
    rows = collect(in_tmp / "study")
    assert rows["forecast_loss"].notna().sum() == 2 and rows["forecast_law"].isna().all()


def test_the_law_takes_each_finished_size_once_at_its_best_lr(in_tmp, monkeypatch):
    calls = []

    def recorded(sizes, finals, size0):
        calls.append((list(sizes), list(finals), size0))
        return trend(sizes, finals, size0)

    monkeypatch.setattr(forecasting, "trend", recorded)
    assert main(["sweep", *TINY, "optim.lr=0.003,0.03", "--out", "study"]) == 0
    rows = collect(in_tmp / "study")
    assert calls and all(len(set(sizes)) == len(sizes) for sizes, _, _ in calls)
    sizes, finals, size0 = calls[-1]  # the last point's: every other one had finished
    assert len(sizes) >= 3 and size0 == rows["params"].max()
    for size, final in zip(sizes, finals):
        losses = rows.loc[rows["params"] == size, "val_loss"]
        if size != size0:  # two lrs a size: the better one's loss
            assert final == pytest.approx(losses.min())
        else:  # its own size: the run at the other lr, finished before it
            assert min(abs(losses - final)) < 1e-9
