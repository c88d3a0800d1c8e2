import json

import pytest
import torch
from conftest import TINY

from scaling import plan, train_point
from scaling.cli import main
from scaling.store import read_result
from scaling.training.runner import train_points
from scaling.training.steppers import clip_per_model


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.width=8", "trainer.steps=20", "trainer.eval_interval=10"],
        # tied embedding and head, attention through SDPA
        ["model=transformer", "model.size=debug", "data=text", "data.max_bytes=20000"],
    ],
)
def test_a_packed_seed_gives_the_row_of_its_own_run(compose, overrides, point):
    specs = plan(compose(*overrides, "trainer.seed=3", "trainer.pack_seeds=2"))
    assert [s.role for s in specs] == ["packed", "packed"]
    packed = train_points(specs, [None, None])
    for row in packed:
        alone = train_point(point(*overrides, f"trainer.seed={row['seed']}"))
        assert row["status"] == alone["status"] == "ok"
        assert row["point_id"] == alone["point_id"]
        assert row["val_loss"] == pytest.approx(alone["val_loss"], rel=1e-4)
        assert row["train_loss"] == pytest.approx(alone["train_loss"], rel=1e-4)
        assert row["flops_total"] == alone["flops_total"]
    assert [r["seed"] for r in packed] == [3, 4]
    assert packed[0]["val_loss"] != packed[1]["val_loss"]


def test_clipping_is_per_model():
    torch.manual_seed(0)
    grads = [
        torch.randn(3, 4, 5) * torch.tensor([0.1, 1.0, 10.0])[:, None, None],
        torch.randn(3, 7),
    ]
    stacked = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(stacked, grads):
        p.grad = g.clone()
    clip_per_model(stacked, 1.0)
    for k in range(3):
        alone = [torch.zeros_like(g[k], requires_grad=True) for g in grads]
        for p, g in zip(alone, grads):
            p.grad = g[k].clone()
        torch.nn.utils.clip_grad_norm_(alone, 1.0)
        for p, q in zip(stacked, alone):
            torch.testing.assert_close(p.grad[k], q.grad)


def test_a_packed_sweep_writes_a_row_per_seed_and_resumes_per_seed(in_tmp):
    argv = ["sweep", "mlp_width", "model.width=4,8", "trainer.pack_seeds=3", *TINY]
    assert main([*argv, "--bootstrap", "0"]) == 0
    sweep = in_tmp / "outputs" / "mlp_width"
    grid = json.loads((sweep / "grid.json").read_text())["points"]
    assert len(grid) == 6
    assert sorted(p["label"] for p in grid)[0] == "width=4 seed=0"
    rows = [read_result(sweep / "points" / p["point_id"]) for p in grid]
    assert {(r["model.width"], r["seed"], r["status"]) for r in rows} == {
        (w, s, "ok") for w in (4, 8) for s in (0, 1, 2)
    }
    # one seed lost: the re-run trains that seed alone and leaves the others' files as they were
    lost = grid[1]["point_id"]
    (sweep / "points" / lost / "result.json").unlink()
    kept = {p["point_id"]: (sweep / "points" / p["point_id"] / "result.json").stat().st_mtime_ns
            for p in grid if p["point_id"] != lost}  # fmt: skip
    assert main([*argv, "--bootstrap", "0"]) == 0
    assert read_result(sweep / "points" / lost)["status"] == "ok"
    for pid, mtime in kept.items():
        assert (sweep / "points" / pid / "result.json").stat().st_mtime_ns == mtime


def test_a_seed_that_diverges_leaves_the_others_untouched(compose, point, monkeypatch):
    monkeypatch.setenv("SCALING_FAULT", "naninit:seed=1")  # seed 1 starts with a NaN weight
    cfg = compose("model=faulty", "model.width=8", "trainer.pack_seeds=2")
    ok, bad = train_points(plan(cfg), [None, None])
    assert bad["status"] == "diverged" and bad["failed_at_step"] == 2 and "nan" in bad["error"]
    assert ok["status"] == "ok"
    assert ok["val_loss"] == pytest.approx(
        train_point(point("model=faulty", "model.width=8"))["val_loss"], rel=1e-4
    )
