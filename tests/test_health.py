"""Run health (``analysis.health.check``): each finding fires on a study that has the problem
and stays quiet on a near-identical study that does not.

Every study here starts from one healthy language-model study (six sizes over 100×, a loss
that falls smoothly with size, 20 tokens per parameter, a short warmup, histories that have
flattened out) and changes one thing."""

import numpy as np
import pandas as pd

from scaling.analysis.health import check

SIZES = np.logspace(4, 6, 6)  # 6 sizes over 100×
WIDTHS = [16, 32, 64, 128, 256, 512]  # one per size: what tells the sizes apart in the settings
STEPS = np.arange(100, 1001, 100)  # the evaluations of a history


def _loss(n):
    return 2 + 50 * n**-0.3  # neighbouring sizes differ by 0.25 or more


def _study(sizes=SIZES, widths=WIDTHS, tokens_per_param=20.0, **columns) -> pd.DataFrame:
    """A healthy study's results table, one row per size; ``columns`` replace or add columns."""
    sizes = np.asarray(sizes, float)
    rows = pd.DataFrame({
        "status": "ok",
        "point_id": [f"p{w}" for w in widths],
        "label": [f"width={w}" for w in widths],
        "task": "lm",
        "role": "point",
        "lr_source": "config",
        "params": sizes,
        "params_nonembedding": 0.8 * sizes,
        "train_tokens": tokens_per_param * 0.8 * sizes,
        "steps": 1000,
        "val_loss": _loss(sizes),
        "best_val_loss": _loss(sizes),
        "optim.lr": 3e-3,
        "optim.warmup": 0.05,  # 0.05 × 20 = 1 token per parameter of warmup
        "trainer.batch_size": 32,
        "trainer.seed": 0,
        "model.width": widths,
    })  # fmt: skip
    for name, values in columns.items():
        rows[name] = values
    return rows


def _history(final: float) -> pd.DataFrame:
    """Evaluations whose validation loss has flattened out at ``final`` by the end."""
    val = final * (1 + 0.5 * np.exp(-STEPS / 150))
    return pd.DataFrame({"step": STEPS, "train_loss": 0.97 * val, "val_loss": val})


def _histories(rows: pd.DataFrame) -> dict:
    return {row.point_id: _history(row.val_loss) for row in rows.itertuples()}


def _grid(column: str, key: str, values) -> pd.DataFrame:
    """The study at every one of ``values`` of a setting, the middle value best at every size."""
    parts = []
    for i, v in enumerate(values):
        part = _study(**{column: v})
        part["point_id"] += f"-{key}{v:g}"
        part["label"] += f" {key}={v:g}"
        part["val_loss"] += 0.1 * (i - len(values) // 2) ** 2
        part["best_val_loss"] = part["val_loss"]
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _seeded(scatter: float) -> pd.DataFrame:
    """The study with two seeds per size, their losses ``scatter`` either side of the law."""
    a, b = _study(), _study()
    b["trainer.seed"] = 1
    b["point_id"] += "-s1"
    a["val_loss"] += scatter
    b["val_loss"] -= scatter
    for part in (a, b):
        part["best_val_loss"] = part["val_loss"]
    return pd.concat([a, b], ignore_index=True)


def _kinds(findings) -> list[str]:
    return [f.kind for f in findings]


def _of(findings, kind):
    return [f for f in findings if f.kind == kind]


def test_a_healthy_study_has_no_findings():
    rows = _study()
    assert check(rows, _histories(rows)) == []
    assert check(rows) == []  # without histories too


# overfitting


def test_a_final_loss_above_its_best_is_overfitting():
    rows = _study()
    rows.loc[2, "val_loss"] = rows.loc[2, "best_val_loss"] * 1.05
    histories = _histories(rows)
    h = histories["p64"]  # the best at step 600, then a rise to the final loss
    h["val_loss"] = np.interp(STEPS, [100, 600, 1000],
                              [2 * rows.loc[2, "val_loss"], rows.loc[2, "best_val_loss"],
                               rows.loc[2, "val_loss"]])  # fmt: skip
    [finding] = _of(check(rows, histories), "overfitting")
    assert "width=64" in finding.text and "5.0%" in finding.text
    assert "at step 600" in finding.text
    assert "best_val_loss" in finding.fix


def test_a_final_loss_within_a_percent_of_its_best_is_not_overfitting():
    rows = _study()
    rows.loc[2, "val_loss"] = rows.loc[2, "best_val_loss"] * 1.005
    assert "overfitting" not in _kinds(check(rows, _histories(rows)))


# under-training


def _still_falling(rows, pid, fall_over_last_tenth):
    """Histories in which one point's validation loss falls linearly to its end."""
    histories = _histories(rows)
    final = rows.set_index("point_id").loc[pid, "val_loss"]
    histories[pid]["val_loss"] = final * (1 + 10 * fall_over_last_tenth * (1 - STEPS / 1000))
    return histories


def test_a_loss_still_falling_at_the_end_is_under_training():
    rows = _study()
    findings = check(rows, _still_falling(rows, "p128", 0.05))  # 5% over the last 100 steps
    [finding] = _of(findings, "under-training")
    assert "width=128" in finding.text
    assert "4.8%" in finding.text  # 1.05 → 1: a fall of 1 - 1/1.05


def test_an_annealing_gain_at_the_end_is_not_under_training():
    """A loss that fell from 3 to 1.05 and gains 5% more as the lr decays at the end: the last
    tenth brings 2.5% of the whole fall, which a run that has learned what it can shows."""
    rows = _study()
    histories = _histories(rows)
    final = rows.set_index("point_id").loc["p128", "val_loss"]
    h = histories["p128"]
    h["val_loss"] = np.where(h["step"] <= 900, final * 1.05, final)
    h.loc[0, "val_loss"] = 3 * final
    assert "under-training" not in _kinds(check(rows, histories))


def test_a_loss_that_barely_falls_at_the_end_is_not_under_training():
    rows = _study()
    findings = check(rows, _still_falling(rows, "p128", 0.01))  # 1%: under the 2% threshold
    assert "under-training" not in _kinds(findings)


# edge: the best of three or more values tried is the smallest or largest


def test_an_lr_best_at_the_edge_of_the_grid_is_found():
    rows = _grid("optim.lr", "lr", [1e-3, 3e-3, 1e-2])
    largest_at_low_lr = rows["model.width"].eq(512) & rows["optim.lr"].eq(1e-3)
    rows.loc[largest_at_low_lr, "val_loss"] -= 0.5
    rows["best_val_loss"] = rows["val_loss"]
    [finding] = _of(check(rows), "edge")
    assert finding.text.startswith("width=512: ")  # the size, without the lr of its label
    assert "lr=" not in finding.text
    assert "(0.001)" in finding.text and "smallest" in finding.text
    assert "down" in finding.fix


def test_an_lr_best_inside_the_grid_is_not_at_the_edge():
    rows = _grid("optim.lr", "lr", [1e-3, 3e-3, 1e-2])
    assert "edge" not in _kinds(check(rows))


def test_two_lrs_are_too_few_to_have_an_edge():
    rows = _grid("optim.lr", "lr", [1e-3, 3e-3, 1e-2])
    rows = rows[rows["optim.lr"].ne(1e-2)]  # the better of two is always at an end
    assert "edge" not in _kinds(check(rows))


def test_a_batch_size_best_at_the_edge_is_found():
    rows = _grid("trainer.batch_size", "batch_size", [16, 32, 64])
    smallest_at_large_batch = rows["model.width"].eq(16) & rows["trainer.batch_size"].eq(64)
    rows.loc[smallest_at_large_batch, "val_loss"] -= 0.5
    rows["best_val_loss"] = rows["val_loss"]
    [finding] = _of(check(rows), "edge")
    assert finding.text.startswith("width=16: ")
    assert "batch size" in finding.text and "(64)" in finding.text and "largest" in finding.text


def test_a_batch_size_best_inside_the_grid_is_not_at_the_edge():
    rows = _grid("trainer.batch_size", "batch_size", [16, 32, 64])
    assert "edge" not in _kinds(check(rows))


def test_an_lr_next_to_one_that_diverged_is_not_at_the_edge():
    """The grid went up to 0.03, which diverged: 0.01 being best among the finished runs is not
    the edge of what was tried, and trying larger lrs (the fix) was already done."""
    rows = _grid("optim.lr", "lr", [1e-3, 3e-3, 1e-2, 3e-2])  # best at 0.01 at every size
    assert "edge" not in _kinds(check(rows))
    diverged = rows["model.width"].eq(16) & rows["optim.lr"].eq(3e-2)
    rows.loc[diverged, ["status", "val_loss", "best_val_loss"]] = ["diverged", np.nan, np.nan]
    assert "edge" not in _kinds(check(rows))


def test_an_lr_next_to_one_stopped_as_hopeless_is_not_at_the_edge():
    """A run stopped as hopeless (trainer.stop_hopeless) was tried: its loss at the stop is
    not a final loss, and the lr it ran at is no better than the finished ones. Rows retried
    with stop_hopeless=false are still one setting's runs."""
    rows = _grid("optim.lr", "lr", [1e-3, 3e-3, 1e-2, 3e-2])
    hopeless = rows["model.width"].eq(16) & rows["optim.lr"].eq(3e-2)
    rows.loc[hopeless, "status"] = "hopeless"
    rows["trainer.stop_hopeless"] = hopeless  # the others finished with it off
    assert "edge" not in _kinds(check(rows))
    rows.loc[hopeless, "status"] = "ok"  # the same loss, had it finished, is the largest lr's
    assert "edge" not in _kinds(check(rows))


# sizes


def test_four_sizes_are_too_few():
    rows = _study(SIZES[:4], WIDTHS[:4])  # 4 sizes spanning ~16×
    [finding] = _of(check(rows, _histories(rows)), "sizes")
    assert finding.text.startswith("4 sizes")


def test_a_span_under_thirty_times_is_too_narrow():
    rows = _study(np.logspace(4, 5, 6))  # 6 sizes over 10×
    [finding] = _of(check(rows), "sizes")
    assert "6 sizes spanning 10×" in finding.text


def test_five_sizes_over_thirty_times_are_enough():
    rows = _study(np.logspace(4, 5.5, 5), WIDTHS[:5])  # 5 sizes over ~32×
    assert "sizes" not in _kinds(check(rows))


def test_failed_runs_are_not_sizes():
    rows = _study()
    rows.loc[[4, 5], "status"] = "failed"  # 4 sizes left, over ~16×
    assert "sizes" in _kinds(check(rows))


# tokens (language models)


def test_under_ten_tokens_per_parameter_is_found():
    rows = _study()
    rows.loc[0, "train_tokens"] = 8 * rows.loc[0, "params_nonembedding"]
    [finding] = _of(check(rows), "tokens")  # one: 20 / 8 is no spread
    assert "1 of 6" in finding.text and "as few as 8" in finding.text


def test_tokens_per_parameter_that_vary_more_than_four_times_are_found():
    rows = _study()
    rows["train_tokens"] = 20 * rows["params_nonembedding"].max()  # steps, not tokens per param
    [finding] = _of(check(rows), "tokens")  # 20 to 2000: a spread, none under 10
    assert "range from 20 to 2e+03" in finding.text


def test_tokens_per_parameter_that_vary_three_times_are_not_a_spread():
    rows = _study()
    rows["train_tokens"] = np.linspace(20, 60, 6) * rows["params_nonembedding"]
    assert "tokens" not in _kinds(check(rows))


def test_tokens_are_not_checked_beyond_language_models():
    rows = _study(task="classification")
    rows["train_tokens"] = 1.0 * rows["params_nonembedding"]
    assert "tokens" not in _kinds(check(rows))


# warmup (language models)


def test_a_warmup_over_more_than_five_tokens_per_parameter_is_found():
    rows = _study()
    rows.loc[0, "optim.warmup"] = 0.3  # 0.3 × 20 = 6 tokens per parameter
    [finding] = _of(check(rows), "warmup")
    assert finding.text.startswith("1 ") and "up to 6" in finding.text


def test_a_warmup_over_four_tokens_per_parameter_is_short_enough():
    rows = _study()
    rows.loc[0, "optim.warmup"] = 0.2  # 0.2 × 20 = 4 tokens per parameter
    assert "warmup" not in _kinds(check(rows))


# divergence and spikes


def _with_run(status: str) -> pd.DataFrame:
    rows = _study()
    extra = _study([1e7], [1024]).assign(status=status, val_loss=np.nan, best_val_loss=np.nan,
                                         failed_at_step=300)  # fmt: skip
    return pd.concat([rows, extra], ignore_index=True)


def test_a_diverged_run_is_found():
    rows = _with_run("diverged")
    findings = check(rows, _histories(rows[rows["status"].eq("ok")]))
    [finding] = _of(findings, "divergence")
    assert "width=1024" in finding.text and "step 300" in finding.text
    assert _kinds(findings) == ["divergence"]  # and nothing else about the row


def test_a_run_that_failed_otherwise_is_not_a_divergence():
    rows = _with_run("failed")
    assert "divergence" not in _kinds(check(rows, _histories(rows[rows["status"].eq("ok")])))


def _spiked(at: int, factor: float):
    rows = _study()
    histories = _histories(rows)
    histories["p64"].loc[at, "train_loss"] *= factor
    return rows, histories


def test_a_train_loss_spike_is_found():
    [finding] = _of(check(*_spiked(5, 1.5)), "spikes")  # the evaluation at step 600
    assert "width=64" in finding.text and "at step 600" in finding.text


def test_a_jump_in_the_first_interval_is_warmup_not_a_spike():
    assert "spikes" not in _kinds(check(*_spiked(1, 1.5)))


def test_a_small_rise_is_not_a_spike():
    assert "spikes" not in _kinds(check(*_spiked(5, 1.2)))


# seeds


def test_seeds_scattering_more_than_sizes_differ_are_found():
    rows = _seeded(0.3)  # an SD of 0.42 against neighbouring sizes 0.25 apart
    [finding] = _of(check(rows), "seeds")
    assert "0.424" in finding.text


def test_seeds_that_agree_are_not_a_finding():
    rows = _seeded(0.01)
    assert "seeds" not in _kinds(check(rows))


def test_runs_that_differ_in_more_than_the_seed_are_not_seeds():
    rows = _seeded(0.3)
    rows.loc[rows["trainer.seed"].eq(1), "optim.warmup"] = 0.04  # another experiment, not a seed
    assert "seeds" not in _kinds(check(rows))


# tuning runs


def _tuned(best_lr: float) -> pd.DataFrame:
    """Four sizes (too few, over too narrow a span) and, at two smaller sizes, tuning runs at
    three lrs, one of which is best; the one at 0.001 overfit."""
    rows = _study(SIZES[2:], WIDTHS[2:])
    tuning = []
    for lr in (1e-3, 3e-3, 1e-2):
        part = _study(SIZES[:2], WIDTHS[:2], role="tuning", lr_source="tuning")
        part["optim.lr"] = lr
        part["point_id"] += f"-lr{lr:g}"
        part["label"] += f" lr={lr:g}"
        part["val_loss"] += 0.0 if lr == best_lr else 0.2
        part["best_val_loss"] = part["val_loss"] / (1.1 if lr == 1e-3 else 1.0)
        tuning.append(part)
    return pd.concat([rows, *tuning], ignore_index=True)


def test_tuning_runs_are_not_sizes_and_not_checked_for_overfitting():
    rows = _tuned(best_lr=3e-3)
    findings = check(rows, _histories(rows))
    [sizes] = _of(findings, "sizes")
    assert sizes.text.startswith("4 sizes")  # the tuning runs' two smaller sizes left out
    assert "overfitting" not in _kinds(findings)


def test_tuning_runs_show_an_lr_at_the_edge():
    rows = _tuned(best_lr=1e-2)
    edges = _of(check(rows, _histories(rows)), "edge")
    assert [f.text.split(":")[0] for f in edges] == ["width=16", "width=32"]
    assert all("(0.01)" in f.text and "largest" in f.text for f in edges)


def test_tuning_runs_best_inside_their_grid_are_not_at_the_edge():
    rows = _tuned(best_lr=3e-3)
    assert "edge" not in _kinds(check(rows, _histories(rows)))


# no gain: the largest size no better than a smaller one


def test_a_largest_size_no_better_than_a_smaller_one_is_found():
    rows = _study()
    largest = rows["params"].idxmax()
    second = rows["params"].nlargest(2).index[-1]
    rows.loc[largest, "val_loss"] = rows.loc[second, "val_loss"] + 0.01
    rows["best_val_loss"] = rows["val_loss"]
    [finding] = _of(check(rows), "no gain")
    assert f"{rows.loc[second, 'val_loss']:.4g}" in finding.text


def test_a_largest_size_that_is_best_is_a_gain():
    rows = _study()
    assert "no gain" not in _kinds(check(rows))
    largest = rows["params"].idxmax()
    rows.loc[largest, "val_loss"] = rows["val_loss"].drop(largest).min() - 1e-3  # barely best
    rows["best_val_loss"] = rows["val_loss"]
    assert "no gain" not in _kinds(check(rows))


# no learning: a run whose validation loss never left where it started


def test_a_run_that_never_learned_is_found():
    rows = _study()
    histories = _histories(rows)
    histories["p128"]["val_loss"] = 2.3026  # chance for ten classes, from start to end
    [finding] = _of(check(rows, histories), "no learning")
    assert "width=128" in finding.text and "lower its lr" in finding.fix


def test_a_run_that_learned_is_not_stuck():
    rows = _study()
    assert "no learning" not in _kinds(check(rows, _histories(rows)))
