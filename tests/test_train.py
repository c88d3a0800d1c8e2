import math

import pandas as pd
import pytest

from scaling import plan, train_point
from scaling.cli import main
from scaling.planning import plan_steps
from scaling.training.optim import lr_at


def test_same_seed_same_losses_on_cpu(point):
    a = train_point(point("model.width=8"))
    b = train_point(point("model.width=8"))
    assert a["val_loss"] == b["val_loss"] and a["train_loss"] == b["train_loss"]
    c = train_point(point("model.width=8", "trainer.seed=1"))
    assert c["val_loss"] != a["val_loss"]


def test_epochs_budget_covers_the_training_set(point):
    row = train_point(
        point("model.width=8", "data.train_size=160", "trainer.budget=epochs", "trainer.epochs=2")
    )
    assert row["steps"] == 2 * 160 // 16
    assert row["train_examples"] == 2 * 160


def test_tokens_per_param_budget(point):
    row = train_point(
        point("model.width=4", "trainer.budget=tokens_per_param", "trainer.tokens_per_param=2")
    )
    assert row["steps"] == math.ceil(2 * row["params"] / 16)
    assert row["train_examples"] >= 2 * row["params"]


def test_flops_budget(point):
    probe = train_point(point("model.width=8"))
    target = 10.5 * probe["flops_per_step"]
    row = train_point(
        point("model.width=8", "trainer.budget=flops", f"trainer.target_flops={target}")
    )
    assert row["steps"] == 10 and row["flops_total"] <= target


def test_a_budget_of_zero_steps_is_refused():
    class T:
        budget, target_flops = "flops", 10.0

    with pytest.raises(ValueError, match="0 steps"):
        plan_steps(T, 100, 16, 1000, flops_per_step=1000)


def test_early_stopping_stops_when_validation_stalls(compose):
    # a learning rate of ~0 keeps the validation loss flat, so patience runs out
    cfg = compose(
        "model.width=8",
        "optim.lr=1e-12",
        "optim.warmup=0",
        "trainer.steps=40",
        "trainer.eval_interval=2",
        "trainer.early_stop_patience=2",
        tiny=False,
    )
    row = train_point(plan(cfg)[0])
    assert row["status"] == "ok" and row["steps"] < 40


def test_warmup_then_cosine(compose):
    optim = compose().optim
    steps = 100
    lrs = [lr_at(s, steps, optim, optim.lr) for s in range(steps)]
    warm = int(optim.warmup * steps)
    assert lrs[warm - 1] == pytest.approx(optim.lr)
    assert lrs[0] < lrs[warm - 1]
    assert lrs[-1] == pytest.approx(optim.lr * optim.min_lr_ratio, rel=0.01)
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1 :]))


def test_sgd_trains(point):
    assert train_point(point("optim=sgd", "model.width=8"))["status"] == "ok"


def test_a_failing_point_is_a_row_and_the_sweep_goes_on(in_tmp, monkeypatch):
    monkeypatch.setenv("SCALING_FAULT", "raise@1:width=8")
    code = main(["sweep", "model=faulty", "model.width=4,8,12", "trainer.steps=3", "tune.lrs=[]",
                 "trainer.eval_interval=2", "trainer.batch_size=16"])  # fmt: skip
    assert code == 1
    df = pd.read_csv(in_tmp / "outputs" / "mlp_width" / "results.csv").set_index("model.width")
    assert df.loc[8, "status"] == "failed" and "boom" in df.loc[8, "error"]
    assert df.loc[4, "status"] == "ok" and df.loc[12, "status"] == "ok"


def test_learning_rate_can_follow_width(point):
    narrow = train_point(
        point("model.width=32", "optim.lr_scaling=width", "optim.base_width=64", "optim.lr=0.002")
    )
    wide = train_point(
        point("model.width=128", "optim.lr_scaling=width", "optim.base_width=64", "optim.lr=0.002")
    )
    assert narrow["lr"] == pytest.approx(0.004) and wide["lr"] == pytest.approx(0.001)


def test_cuda_graphs_apply_only_where_a_step_can_be_captured(point):
    import torch

    from scaling.config.schema import TrainerConfig
    from scaling.training.graphs import graphs_apply

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    on = TrainerConfig(cuda_graphs=True)
    assert graphs_apply(on, cuda)
    assert not graphs_apply(TrainerConfig(cuda_graphs=False), cuda)
    auto = TrainerConfig()  # by default: small models only
    assert graphs_apply(auto, cuda, params=10**6) and not graphs_apply(auto, cuda, params=10**8)
    assert graphs_apply(on, cuda, params=10**8)  # asked for: any size
    assert not graphs_apply(on, cpu)
    assert not graphs_apply(on, cuda, "sgd")  # its foreach step reads the lr on the host
    for other in ({"precision": "fp16"}, {"compile": True}, {"nproc": 2},
                  {"micro_batch_size": 32}):  # fmt: skip
        assert not graphs_apply(TrainerConfig(cuda_graphs=True, **other), cuda), other
    # on a CPU the setting changes nothing: the same losses as without it
    from scaling import train_point

    plain = train_point(point("model.width=8"))
    graphed = train_point(point("model.width=8", "trainer.cuda_graphs=true"))
    assert graphed["val_loss"] == plain["val_loss"] and graphed["status"] == "ok"
