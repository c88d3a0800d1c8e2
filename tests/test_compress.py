import pandas as pd
import pytest
import torch
from conftest import TINY
from torch import nn

from scaling.cli import main
from scaling.data import DataSpec
from scaling.models import build_model
from scaling.store import load_table
from scaling.studies.compress import nonzero_params, prunable, pruned, sparsity, stored_bytes


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(40, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)
    )


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_pruning_zeroes_the_smallest_weights(scope):
    model = _mlp()
    small = pruned(model, 0.8, scope)
    assert sparsity(small) == pytest.approx(0.8, abs=1e-3)
    assert sparsity(model) == 0  # the trained model is left as it was
    for (m, name), (m0, _) in zip(prunable(small), prunable(model)):
        w, w0 = getattr(m, name), getattr(m0, name)
        kept = w != 0
        assert torch.equal(w[kept], w0[kept])
        if scope == "layer":  # each layer keeps its own largest 20%
            assert kept.float().mean().item() == pytest.approx(0.2, abs=0.01)
            assert w0[~kept].abs().max() <= w0[kept].abs().min()
    biases = sum(m.bias.numel() for m in small if isinstance(m, nn.Linear))
    weights = sum(m.weight.numel() for m in small if isinstance(m, nn.Linear))
    assert nonzero_params(small) == pytest.approx(biases + 0.2 * weights, abs=3)
    assert stored_bytes(pruned(model, 0.95)) < stored_bytes(model) / 2


def test_a_tied_embedding_and_head_are_not_pruned():

    from scaling.models import transformer

    cfg = transformer.Config(d_model=32, n_layer=1, n_head=2)
    model = build_model(cfg, DataSpec("tokens", "lm", (16,), 64))
    small = pruned(model, 0.5)
    assert torch.equal(small.wte.weight, model.wte.weight)
    assert small.head.weight is small.wte.weight
    assert small.blocks[0].mlp[0].weight.eq(0).float().mean() > 0.3


def test_a_pruning_study_has_a_row_per_level_and_fits_only_the_trained_models(in_tmp):
    argv = ["sweep", "mlp_width", "model.width=8,16,32", "compress=prune",
            "compress.levels=[0.5,0.9]", *TINY, "--bootstrap", "0"]  # fmt: skip
    assert main(argv) == 0
    df = pd.read_csv(in_tmp / "outputs" / "mlp_width" / "results.csv")
    assert len(df) == 9 and (df["status"] == "ok").all()
    for width, group in df.groupby("model.width"):
        g = group.set_index(group["compress_level"].fillna(0.0))
        assert g.loc[0.0, "compression"] == "none" and g.loc[0.9, "compression"] == "prune"
        assert g.loc[0.5, "sparsity"] == pytest.approx(0.5, abs=0.01)
        assert (
            g.loc[0.0, "params_nonzero"]
            > g.loc[0.5, "params_nonzero"]
            > g.loc[0.9, "params_nonzero"]
        )
        assert g.loc[0.9, "model_bytes"] < g.loc[0.0, "model_bytes"]
        assert g.loc[0.9, "val_loss"] != g.loc[0.0, "val_loss"]
        assert g.loc[0.9, "label"] == f"width={width} sparsity0.9"
    table = load_table(str(in_tmp / "outputs" / "mlp_width"), ["params", "val_loss"])
    assert len(table.ok) == 3 and table.excluded["compressed variant"] == 6
    report = (in_tmp / "outputs" / "mlp_width" / "report.md").read_text()
    assert "## Compression" in report and "sparsity 0.9" in report
    assert (in_tmp / "outputs" / "mlp_width" / "plots" / "accuracy_vs_bytes.png").is_file()
    assert (in_tmp / "outputs" / "mlp_width" / "plots" / "loss_vs_sparsity.png").is_file()


@pytest.mark.parametrize("method,levels", [("quantize", "[int8]"), ("cast", "[bf16,fp16]")])
def test_quantized_and_cast_models_are_smaller_and_close(in_tmp, method, levels):
    assert main(["run", "model.width=64", f"compress={method}", f"compress.levels={levels}",
                 "trainer.steps=60", "trainer.device=cpu"]) == 0  # fmt: skip
    df = pd.read_csv(in_tmp / "outputs" / "run" / "results.csv")
    base = df[df["compression"] == "none"].iloc[0]
    variants = df[df["compression"] == method]
    assert len(variants) == len(levels.split(","))
    for _, v in variants.iterrows():
        assert v["status"] == "ok", v["error"]
        assert v["model_bytes"] < base["model_bytes"]
        assert v["val_loss"] == pytest.approx(base["val_loss"], rel=0.05)
        assert v["params"] == base["params"] and v["flops_total"] == base["flops_total"]


@pytest.mark.parametrize(
    "override,message",
    [
        ("compress.levels=[1.5]", "sparsities lie in [0, 1)"),
        ("compress=quantize compress.levels=[int4]", "choose from int8"),
        ("compress.method=zip", "compress.method must be one of"),
        ("compress=prune compress.scope=row", "compress.scope must be one of global, layer"),
    ],
)
def test_bad_compression_settings_are_refused(in_tmp, capsys, override, message):
    argv = ["run", *override.split()]
    if "compress=" not in override:
        argv.insert(1, "compress=prune")
    assert main(argv) == 2
    assert message in capsys.readouterr().err
