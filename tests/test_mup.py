import math

import pandas as pd
import pytest
import torch
from conftest import TINY
from torch import nn

from scaling.analysis.transfer import coord_growth, transfer_table
from scaling.commands.train import coord_specs
from scaling.data import DataSpec
from scaling.errors import BadInput
from scaling.measure import param_counts
from scaling.models import build_model
from scaling.models.parametrization import Readout, base_config
from scaling.report.study_sections import transfer_section
from scaling.studies.mup import param_groups
from scaling.training.coord import coord_check

VECTOR = DataSpec("vector", "classification", (40,), 10)
TOKENS = DataSpec("tokens", "lm", (32,), 256)
FAMILIES = [("mlp", "model.width"), ("transformer", "model.d_model")]
SMALL_DATA = ["data=mnist1d", "data.train_size=2000", "data.val_size=500"]  # generated once


def _build(cfg, spec, seed=0):
    torch.manual_seed(seed)
    return build_model(cfg.model, spec)


@pytest.mark.parametrize("family,field", FAMILIES)
def test_sp_models_are_plain_and_mup_keeps_their_shapes(compose, family, field):
    sp = _build(compose(f"model={family}", f"{field}=128"), VECTOR)
    mup = _build(compose(f"model={family}", f"{field}=128", "model.parametrization=mup"), VECTOR)
    assert not any(isinstance(m, Readout) for m in sp.modules())
    assert all(getattr(m, "scale", None) is None for m in sp.modules())
    assert param_counts(sp) == param_counts(mup)
    readout = [m for m in mup.modules() if isinstance(m, Readout)]
    assert len(readout) == 1 and readout[0].mult == 0.5
    assert torch.count_nonzero(readout[0].weight) == 0


def test_sp_mlp_is_the_stack_of_linears_it_always_was(compose):
    cfg = compose("model=mlp", "model.width=32", "model.depth=2")
    model = _build(cfg, VECTOR, seed=3)
    torch.manual_seed(3)
    ref = nn.Sequential(nn.Flatten(), nn.Linear(40, 32), nn.GELU(), nn.Linear(32, 32), nn.GELU(),
                        nn.Linear(32, 10))  # fmt: skip
    x = torch.randn(5, 40)
    assert torch.equal(model(x), ref(x))


@pytest.mark.parametrize("family,field", FAMILIES)
def test_mup_at_base_width_is_sp_but_for_the_zero_readout(compose, family, field):
    sp = _build(compose(f"model={family}", f"{field}=64"), VECTOR)
    mup = _build(compose(f"model={family}", f"{field}=64", "model.parametrization=mup"), VECTOR)
    sp_state, mup_state = sp.state_dict(), mup.state_dict()
    head = [k for k in sp_state if k.startswith(("head.", "5."))]
    for k in sp_state:
        if k not in head:
            assert torch.equal(sp_state[k], mup_state[k]), k
    mup.load_state_dict(sp_state)  # the readout too
    x = torch.randn(6, 40)
    assert torch.equal(sp(x), mup(x))


def test_tied_transformer_head_is_not_zeroed_and_matches_sp_at_base_width(compose):
    sp = _build(compose("model=transformer", "model.d_model=64"), TOKENS)
    mup = _build(
        compose("model=transformer", "model.d_model=64", "model.parametrization=mup"), TOKENS
    )
    assert mup.head.weight is mup.wte.weight
    x = torch.randint(0, 256, (2, 32))
    assert torch.equal(sp(x), mup(x))


def test_mup_transformer_scales_hidden_init_and_attention(compose):
    cfg = compose("model=transformer", "model.d_model=256", "model.n_head=4",
                  "model.parametrization=mup")  # fmt: skip
    model = _build(cfg, VECTOR)
    assert model.blocks[0].attn.scale == pytest.approx(4 / 64)  # √head_dim / d_head, not 1/8
    std = model.blocks[0].mlp[0].weight.std().item()
    assert std == pytest.approx(0.02 / 2, rel=0.05)  # 0.02/√m with m = 4
    assert model.wpe.weight.std().item() == pytest.approx(0.02, rel=0.05)


def _groups(cfg, spec):
    model = _build(cfg, spec)
    named = dict(model.named_parameters())
    ids = {id(p): n for n, p in named.items()}
    base = None
    if cfg.model.parametrization == "mup":
        with torch.device("meta"):
            base = {
                n: p.shape for n, p in build_model(base_config(cfg.model), spec).named_parameters()
            }
    groups = param_groups(named, base, cfg.optim.name == "sgd", cfg.optim.weight_decay)
    return {n: g["lr_mult"] for g in groups for n in map(ids.get, map(id, g["params"]))}


def test_param_groups_put_hidden_matrices_in_the_one_over_m_group(compose):
    mults = _groups(compose("model=mlp", "model.width=256", "model.parametrization=mup"), VECTOR)
    assert mults["3.weight"] == 0.25  # hidden 256×256
    for name in ("1.weight", "1.bias", "3.bias", "5.weight", "5.bias"):  # input, biases, readout
        assert mults[name] == 1.0, name
    cfg = compose("model=transformer", "model.d_model=128", "model.parametrization=mup")
    mults = _groups(cfg, VECTOR)
    hidden = {
        n for n in mults if n.startswith("blocks.") and n.endswith("weight") and ".ln_" not in n
    }
    assert len(hidden) == 4 * cfg.model.n_layer
    assert all(mults[n] == 0.5 for n in hidden)
    assert all(mults[n] == 1.0 for n in mults if n not in hidden)
    assert set(_groups(compose("model=mlp", "model.width=256"), VECTOR).values()) == {1.0}


def test_param_groups_follow_the_sgd_rules(compose):
    cfg = compose("model=mlp", "model.width=256", "model.parametrization=mup", "optim=sgd")
    mults = _groups(cfg, VECTOR)
    assert mults["3.weight"] == 1.0  # hidden: fan_out/fan_in multipliers cancel
    assert mults["1.weight"] == mults["3.bias"] == mults["5.weight"] == 4.0  # vector-like ×m
    assert mults["5.bias"] == 1.0  # does not grow


def test_composing_refuses_what_mup_does_not_cover(compose):
    compose("model=cnn")  # sp: nothing to check
    with pytest.raises(BadInput, match="not cnn"):
        compose("model=cnn", "model.parametrization=mup")
    with pytest.raises(BadInput, match="lr_scaling"):
        compose("model.parametrization=mup", "optim.lr_scaling=width")
    compose("model.parametrization=mup", "optim=sgd")  # SGD has its own rules


def test_coordinate_check_grows_under_sp_and_stays_flat_under_mup():
    point = ["model=mlp", *SMALL_DATA, "optim.grad_clip=0", "trainer.batch_size=256"]
    coords = coord_check(coord_specs(point, None, [64, 256, 1024], steps=5, lr=0.03))
    assert set(coords.columns) == {"parametrization", "width", "step", "layer", "act"}
    logits = coord_growth(coords, "logits", step=4)
    hidden = coord_growth(coords, "3", step=4)
    assert logits["sp"] > 3 and hidden["sp"] > 2.5  # measured: ×4.8 and ×4.1
    assert 0.75 < logits["mup"] < 1.33 and 0.75 < hidden["mup"] < 1.33  # ×1.17 and ×1.11


@pytest.mark.slow
def test_lr_transfer_sweep_and_coordinate_check_make_their_report_sections(in_tmp):
    from scaling.cli import main

    grid = ["model.width=8,16,32", "optim.lr=1e-3,1e-2", *SMALL_DATA[1:], *TINY]
    assert main(["sweep", "lr_transfer", *grid, "--bootstrap", "0"]) == 0
    sweep = in_tmp / "outputs/lr_transfer"
    df = pd.read_csv(sweep / "results.csv")
    assert len(df) == 12 and set(df["model.parametrization"]) == {"sp", "mup"}
    table = transfer_table(df)
    assert len(table) == 6 and table["lr_opt"].isin([1e-3, 1e-2]).all()
    assert transfer_section(df[df["model.parametrization"] == "sp"]) is None
    report = (sweep / "report.md").read_text()
    assert "## Width transfer (μP)" in report and "](plots/lr_transfer.png)" in report
    assert "## Coordinate check" not in report  # a report trains nothing

    # the coordinate check is its own command; the next report shows it
    check = ["coord-check", "lr_transfer", *SMALL_DATA[1:], "--widths", "16,32", "--steps", "2"]
    assert main(check) == 0
    assert (sweep / "plots/coord_check.png").exists() and (sweep / "plots/coord_check.csv").exists()
    assert main(["report", "lr_transfer", "--bootstrap", "0"]) == 0
    report = (sweep / "report.md").read_text()
    assert "## Coordinate check" in report and "](plots/coord_check.png)" in report


def test_transfer_table_counts_diverged_points_as_worse():
    df = pd.DataFrame({
        "model.parametrization": ["sp"] * 3, "model.width": [64] * 3,
        "optim.lr": [1e-3, 1e-2, 1e-1], "val_loss": [1.0, 0.5, math.nan],
        "status": ["ok", "ok", "diverged"],
    })  # fmt: skip
    row = transfer_table(df).iloc[0]
    assert row["lr_opt"] == 1e-2 and not row["at_edge"]
    df.loc[2, ["val_loss", "status"]] = [0.1, "diverged"]  # a loss from a diverged row never wins
    assert transfer_table(df).iloc[0]["lr_opt"] == 1e-2
