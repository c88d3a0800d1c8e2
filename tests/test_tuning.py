"""A learning rate per size: the best lr of a size, lr*(N) through them, rules, and a tuned sweep."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY

from scaling.analysis.lr import best_lr, fit_lr_law, tune_table
from scaling.cli import main
from scaling.config.studies import TuneConfig
from scaling.tuning import tuned_sizes


def test_best_lr_is_the_parabolas_vertex_and_an_edge_is_named():
    lrs = np.geomspace(1e-3, 1e-1, 5)
    truth = 0.02
    losses = 1.0 + 0.3 * (np.log(lrs) - np.log(truth)) ** 2
    assert best_lr(lrs, losses).lr == pytest.approx(truth, rel=1e-6)
    assert best_lr(lrs, losses).edge is None
    falling = 2.0 - np.log(lrs)  # still falling at the largest lr tried
    best = best_lr(lrs, falling)
    assert best.edge == "largest" and best.lr == pytest.approx(0.1)
    diverged = losses.copy()
    diverged[2] = np.nan  # the run nearest the optimum failed: the best finished run wins
    assert best_lr(lrs, diverged).lr in (pytest.approx(lrs[1]), pytest.approx(lrs[3]))


@pytest.mark.parametrize("gamma", [0.0, 0.35, 0.8])
def test_tuned_lr_recovers_a_planted_power(gamma):
    """Loss is a bowl in log lr around lr*(N) = 0.5·N^-γ, with 1% noise: tuning the three
    smallest of six sizes on a five-lr grid finds γ within ±0.1, in every one of 20 studies."""
    rng = np.random.default_rng(0)
    sizes = np.geomspace(1e3, 3e5, 6)[:3]
    for _ in range(20):
        rows = []
        for n in sizes:
            optimum = 0.5 * n**-gamma
            grid = optimum * np.exp(rng.uniform(-0.5, 0.5)) * np.geomspace(1 / 9, 9, 5)
            for lr in grid:
                loss = (3.0 * n**-0.3 + 0.2) * (1 + 0.15 * np.log(lr / optimum) ** 2)
                rows.append({"params_nonembedding": n, "lr": lr, "status": "ok",
                             "val_loss": loss * (1 + 0.01 * rng.standard_normal())})  # fmt: skip
        law = fit_lr_law(tune_table(pd.DataFrame(rows), "params_nonembedding"))
        assert abs(law.gamma - gamma) < 0.1
        assert law.gamma_ci[0] < law.gamma_ci[1]


@pytest.mark.parametrize(
    "count, spread, expected",
    [(3, False, {1, 2, 3}), (3, True, {1, 3, 5}), (2, True, {1, 5}), (1, True, {1}),
     (5, True, {1, 2, 3, 4, 5}), (6, True, {1, 2, 3, 4, 5, 6})],
)
def test_spread_tuning_sizes_span_all_but_the_largest(count, spread, expected):
    tune = TuneConfig(lrs=[0.01, 0.03, 0.1], sizes=count, spread=spread)
    assert tuned_sizes([1, 2, 3, 4, 5, 6], tune) == expected


def test_spread_sizes_find_a_bending_lr_law_that_the_smallest_miss():
    """lr*(N) bends (flat among small sizes, ∝ N^-0.5 among large ones, as input and output
    layers give way to hidden ones) and each tuned optimum carries 10% noise: lr*(N) fitted
    at the three smallest of six sizes misses the largest size's best lr by half as much
    again, in the median of 50 studies, as fitted at sizes spread up to the second largest
    (about twice as much at seeds 0-2)."""
    rng = np.random.default_rng(0)
    sizes = list(np.geomspace(1e3, 3e5, 6))
    truth = lambda n: 0.03 / np.sqrt(1 + n / 3e4)  # noqa: E731
    misses = {False: [], True: []}
    for _ in range(50):
        for spread in misses:
            rows = []
            for n in sorted(tuned_sizes(sizes, TuneConfig(lrs=[1.0] * 3, sizes=3, spread=spread))):
                optimum = truth(n) * np.exp(0.1 * rng.standard_normal())
                for lr in optimum * np.geomspace(1 / 4, 4, 5):
                    rows.append({"params_nonembedding": n, "lr": lr, "status": "ok",
                                 "val_loss": 1 + 0.15 * np.log(lr / optimum) ** 2})  # fmt: skip
            law = fit_lr_law(tune_table(pd.DataFrame(rows), "params_nonembedding"))
            misses[spread].append(abs(np.log(law(sizes[-1]) / truth(sizes[-1]))))
    assert np.median(misses[False]) > 1.5 * np.median(misses[True])


def test_seeds_of_one_lr_are_averaged_and_failed_runs_ignored():
    rows = pd.DataFrame({
        "params": [10] * 6, "lr": [0.01, 0.01, 0.03, 0.03, 0.1, 0.1],
        "val_loss": [1.0, 1.2, 0.8, 0.9, 5.0, np.nan], "status": ["ok"] * 5 + ["diverged"],
    })  # fmt: skip
    (best,) = tune_table(rows)
    assert best.losses == pytest.approx([1.1, 0.85, 5.0])
    assert 0.01 < best.lr < 0.1 and best.edge is None


@pytest.mark.parametrize(
    "rule, expected",
    [
        ("olmo", lambda n, c: 0.0047 * (n / 108e6) ** (-1 / 3)),
        ("deepseek", lambda n, c: 0.3118 * c**-0.125),
    ],
)
def test_published_lr_rules(point, rule, expected):
    small, large = (point(f"model.width={w}", f"optim.lr_scaling={rule}") for w in (16, 256))
    for spec in (small, large):
        flops = spec.flops["total"] * spec.steps
        assert spec.lr == pytest.approx(expected(spec.params["nonembedding"], flops))
        assert spec.lr_source == f"rule: {rule}"
    assert large.lr < small.lr  # both rules lower the lr as the model grows


def test_a_tuned_sweep_runs_its_grid_first_then_every_size_at_its_fitted_lr(in_tmp):
    argv = ["sweep", *TINY, "model.width=4,8,16,32", "tune.lrs=[0.003,0.01,0.03,0.1]",
            "tune.sizes=2", "tune.spread=false", "tune.check=true"]  # fmt: skip
    assert main(argv) == 0
    out = in_tmp / "outputs" / "mlp_width"
    df = pd.read_csv(out / "results.csv")
    law = json.loads((out / "lr_law.json").read_text())
    tuning = df[df["lr_source"] == "tuning"]
    assert len(tuning) >= 6 and set(tuning["model.width"]) == {4, 8}  # two may be a size's point
    assert set(df.loc[df["role"] == "tuning", "lr_source"]) == {"tuning", "tuning check"}
    tuned = df[df["lr_source"] == "tuned"].set_index("model.width")
    assert sorted(tuned.index) == [4, 8, 16, 32]  # every size, once, at its own lr
    for _, row in tuned.iterrows():
        fitted = law["c"] * row["params_nonembedding"] ** -law["gamma"]
        assert row["lr"] == pytest.approx(fitted, rel=1e-3)
        assert row["optim.lr"] == row["lr"]
    check = df[df["lr_source"] == "tuning check"]
    assert set(check["model.width"]) == {32} and len(check) == 2
    step = (0.1 / 0.003) ** (1 / 3)  # the grid's mean step
    assert sorted(check["lr"] / tuned.loc[32, "lr"]) == pytest.approx([1 / step, step], rel=1e-3)
    fits = json.loads((out / "fits.json").read_text())
    assert fits["excluded"].get("learning-rate tuning runs", 0) >= 6  # the law sees one row a size
    assert "Learning rate per size" in (out / "report.md").read_text()
    assert (out / "plots" / "lr_per_size.png").is_file()
    finished = {p.name: p.stat().st_mtime for p in (out / "points").iterdir()}
    assert main(argv) == 0  # a re-run finds the same points done
    assert {p.name: p.stat().st_mtime for p in (out / "points").iterdir()} == finished


def test_a_sizes_lrs_packed_train_as_they_do_one_by_one(in_tmp, capsys):
    argv = ["sweep", "trainer.device=cpu", "trainer.batch_size=16", "trainer.steps=30",
            "trainer.eval_interval=10", "model.width=4,8,16", "tune.lrs=[0.003,0.01,0.03]",
            "tune.sizes=2", "--bootstrap", "0"]  # fmt: skip
    assert main([*argv, "--out", "alone"]) == 0
    assert main([*argv, "tune.pack=true", "--out", "packed"]) == 0
    assert "(6 runs, packed in 2 jobs)" in " ".join(capsys.readouterr().out.split())
    alone, packed = (pd.read_csv(in_tmp / d / "results.csv").set_index("point_id")
                     for d in ("alone", "packed"))  # fmt: skip
    assert sorted(alone.index) == sorted(packed.index)  # the same points, the same ids
    tuning = alone[alone["role"] == "tuning"].index
    assert len(tuning) >= 4
    # each lr's model, trained in the pack, ends where it ends alone (up to rounding)
    assert packed.loc[tuning, "val_loss"].to_numpy() == pytest.approx(
        alone.loc[tuning, "val_loss"].to_numpy(), rel=1e-4)  # fmt: skip
    for pid in tuning:  # its own lr in its history, step by step
        lrs = [pd.read_csv(in_tmp / d / "points" / pid / "history.csv")["lr"] for d in ("alone", "packed")]
        assert lrs[1].tolist() == pytest.approx(lrs[0].tolist(), rel=1e-9)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "tune.lrs=[0.01,0.1]"], "three or more"),
        (["sweep", "lstm_width", "tune.lrs=[0.01,0.03,0.1]", "tune.pack=true"], "tune.pack: the rnn"),
        (["sweep", "tune.lrs=[0.01,0.03,0.1]", "optim.lr_scaling=width"], "drop optim.lr_scaling"),
        (["run", "optim.lr_scaling=kaplan"], "optim.lr_scaling must be one of"),
    ],
)
def test_bad_tuning_settings_are_one_line(in_tmp, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_published_batch_rules(point):
    """OLMo: 160·2048·(N/108M)^(2/3) tokens a batch; DeepSeek: 0.2920·C^0.3271 tokens for a run
    of C FLOPs. Batches are whole sequences, and the steps follow the budget."""
    lm = ["model=transformer", "data=text", "data.seq_len=32", "trainer.budget=tokens_per_param",
          "trainer.tokens_per_param=5"]  # fmt: skip
    small, large = (point(*lm, f"model.size={k}", "trainer.batch_scaling=olmo") for k in (1, 3))
    for spec in (small, large):
        tokens = 160 * 2048 * (spec.params["nonembedding"] / 108e6) ** (2 / 3)
        assert spec.cfg.trainer.batch_size == round(tokens / 32)
        assert spec.steps == -(-5 * spec.params["total"] // (32 * spec.cfg.trainer.batch_size))
    assert large.cfg.trainer.batch_size > small.cfg.trainer.batch_size
    deep = point(*lm, "model.size=2", "trainer.batch_scaling=deepseek")
    compute = deep.flops["total"] * deep.steps
    assert deep.cfg.trainer.batch_size == pytest.approx(0.2920 * compute**0.3271 / 32, abs=1.5)


def test_the_deepseek_batch_needs_a_budget_that_does_not_follow_the_batch(in_tmp, capsys):
    assert main(["run", "trainer.batch_scaling=deepseek"]) == 2
    assert "trainer.budget=tokens_per_param or flops" in capsys.readouterr().err


def test_a_tuning_run_stuck_at_its_first_loss_counts_as_failed(tmp_path):
    """lr 0.01 never leaves chance (2.30 from first to last evaluation): it is no point of the
    bowl, so the best lr is the grid's 0.005, not a parabola's vertex dragged below it."""
    from types import SimpleNamespace

    from scaling import store
    from scaling.tuning import tuning_runs

    losses = {0.0025: (2.3, 1.4), 0.005: (2.3, 0.3), 0.01: (2.3026, 2.3025)}
    specs = []
    for i, (lr, (first, last)) in enumerate(losses.items()):
        spec = SimpleNamespace(point_id=f"p{i}", role="tuning")
        folder = store.point_folder(tmp_path, spec.point_id)
        folder.mkdir(parents=True)
        store.write_result(folder, {"point_id": spec.point_id, "status": "ok", "lr": lr,
                                    "params_nonembedding": 4810, "val_loss": last})  # fmt: skip
        evals = [dict.fromkeys(store.HISTORY_COLUMNS) | {"step": k, "val_loss": v}
                 for k, v in ((100, first), (200, last))]  # fmt: skip
        store.write_history(folder, evals)
        specs.append(spec)
    specs.append(SimpleNamespace(point_id="other", role="point"))  # not a tuning run: not read
    runs = tuning_runs(tmp_path, specs)
    assert list(runs["status"]) == ["ok", "ok", "no learning"]
    (best,) = tune_table(runs, "params_nonembedding")
    assert best.lr == pytest.approx(0.005)
