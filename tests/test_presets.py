import pytest

from scaling.config.presets import find_preset, packaged_sweeps
from scaling.planning import plan_sweep

PRESETS = sorted(p.stem for p in packaged_sweeps().glob("*.yaml"))


def test_every_family_has_a_preset():
    assert {
        "mlp_width",
        "mlp_depth",
        "cnn_width",
        "lstm_width",
        "transformer_lm",
        "data_size",
    } <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_every_point_of_every_preset_composes_and_validates(name, tmp_path):
    points = [s.entry() for s in plan_sweep(name, find_preset(name), [], tmp_path).specs]
    assert len(points) >= 4
    assert len({p["point_id"] for p in points}) == len(points)
    assert all(p["params"] > 0 for p in points)


def test_default_study_spans_six_sizes_and_thirty_fold(tmp_path):
    points = [
        s.entry() for s in plan_sweep("mlp_width", find_preset("mlp_width"), [], tmp_path).specs
    ]
    sizes = sorted(p["params"] for p in points)
    assert len(sizes) >= 6 and sizes[-1] / sizes[0] >= 30


def test_command_line_overrides_replace_the_preset_grid(tmp_path):
    overrides = ["model.width=4,8", "trainer.seed=0,1"]
    points = [
        s.entry()
        for s in plan_sweep("mlp_width", find_preset("mlp_width"), overrides, tmp_path).specs
    ]
    assert len(points) == 4
    assert {p["label"] for p in points} == {
        "width=4 seed=0",
        "width=4 seed=1",
        "width=8 seed=0",
        "width=8 seed=1",
    }


@pytest.mark.parametrize("name", ["mlp_width", "cnn_width", "lstm_width", "transformer_lm"])
def test_size_studies_have_five_sizes_over_thirty_fold_each_at_its_own_lr(name, tmp_path):
    """A study that is to predict its largest size: five or more sizes spanning 30× or more,
    the lr tuned per size (its tuning runs first, the sizes after)."""
    from scaling.tuning import tuned_sizes, tuning_stage

    sweep = plan_sweep(name, find_preset(name), [], tmp_path)
    assert tuning_stage(sweep) is not None
    sizes = sorted({job[0].params["nonembedding"] for job in sweep.deferred})
    assert len(sizes) >= 5 and sizes[-1] / sizes[0] >= 30
    assert {s.lr_source for s in sweep.specs} == {"tuning"}
    tuned = {job[0].params["nonembedding"] for job in sweep.jobs}
    assert len(tuned) == 3 and tuned == tuned_sizes(sizes, sweep.deferred[0][0].cfg.tune)
