import pytest
import torch

from scaling import plan, train_point
from scaling.data import DataSpec
from scaling.measure import param_counts
from scaling.models import build_model

FAMILY_DATA = [
    ("mlp", "mnist1d"),
    ("mlp", "teacher"),
    ("linear", "digits"),
    ("cnn", "mnist1d"),
    ("cnn", "digits"),
    ("rnn", "mnist1d"),
    ("rnn", "text"),
    ("transformer", "text"),
    ("transformer", "digits"),
]


@pytest.mark.parametrize("family,data", FAMILY_DATA)
def test_every_family_trains_a_few_steps(compose, family, data):
    cfg = compose(
        f"model={family}",
        f"data={data}",
        "model.size=debug" if family != "linear" else "data.seed=0",
    )
    row = train_point(plan(cfg)[0])
    assert row["status"] == "ok", row["error"]
    assert row["steps"] == 4
    assert row["params"] > 0 and row["flops_per_step"] > 0
    assert row["val_loss"] > 0 and torch.isfinite(torch.tensor(row["val_loss"]))
    if row["task"] == "classification":
        assert 0 <= row["val_f1"] <= 1 and 0 <= row["val_accuracy"] <= 1
    if row["task"] == "lm":
        assert row["val_bpb"] == pytest.approx(
            row["val_loss"] / torch.log(torch.tensor(2.0)).item()
        )
        assert row["train_tokens"] == 4 * 16 * 64


def test_gru_cell_trains(point):
    row = train_point(point("model=rnn", "model.cell=gru", "model.hidden=8"))
    assert row["status"] == "ok"


def test_mlp_params_match_closed_form(compose):
    cfg = compose("model=mlp", "model.width=24", "model.depth=3")
    model = build_model(cfg.model, DataSpec("vector", "classification", (40,), 10))
    sizes = [40, 24, 24, 24, 10]
    expected = sum(i * o + o for i, o in zip(sizes, sizes[1:]))
    assert param_counts(model)["total"] == expected


@pytest.mark.parametrize("cell,gates", [("lstm", 4), ("gru", 3)])
@pytest.mark.parametrize("layers", [1, 2])
def test_rnn_params_match_closed_form(compose, cell, gates, layers):
    cfg = compose("model=rnn", f"model.cell={cell}", "model.hidden=20", f"model.layers={layers}")
    spec = DataSpec("image", "classification", (1, 8, 8), 10)  # a row of 8 pixels per step
    h, n_in = 20, 8
    # each layer: gates × (input and recurrent matrices + two biases); then the linear head
    per_layer = [gates * h * (n + h) + 2 * gates * h for n in [n_in] + [h] * (layers - 1)]
    assert param_counts(build_model(cfg.model, spec))["total"] == sum(per_layer) + h * 10 + 10


def test_gpt2_small_shape_has_published_parameter_count(compose):
    cfg = compose("model=transformer", "model.size=gpt2", "data=text", "data.seq_len=1024")
    with torch.device("meta"):
        model = build_model(cfg.model, DataSpec("tokens", "lm", (1024,), 50257))
    counts = param_counts(model)
    assert counts["total"] == 124_439_808
    assert counts["embedding"] == 50257 * 768 + 1024 * 768


def test_size_knob_sets_depth_and_width_together(compose):
    cfg = compose("model=transformer", "model.size=3")
    assert (cfg.model.n_layer, cfg.model.d_model, cfg.model.n_head) == (3, 96, 6)


def test_model_that_cannot_read_the_data_is_a_clear_error():
    from scaling.models import cnn

    with pytest.raises(ValueError, match="cannot train on tokens data"):
        build_model(cnn.Config(), DataSpec("tokens", "lm", (64,), 256))


def test_shared_hidden_layers_cost_the_flops_of_their_depth_with_fewer_parameters():
    import torch

    from scaling.measure import param_counts, training_flops
    from scaling.models import mlp
    from scaling.training.evaluate import loss_fn_for

    spec = DataSpec("vector", "classification", (40,), 10)
    x, y = torch.randn(8, 40), torch.randint(0, 10, (8,))
    counts, flops = {}, {}
    for share in (False, True):
        model = build_model(mlp.Config(width=32, depth=4, share_layers=share), spec)
        counts[share] = param_counts(model)["total"]
        f = training_flops(model, x, y, loss_fn_for("classification"))
        assert f["total"] == f["analytic"]
        flops[share] = f["total"]
    assert counts[False] - counts[True] == 2 * (32 * 32 + 32)  # two of three hidden matrices gone
    assert flops[True] == flops[False]
