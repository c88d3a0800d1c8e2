"""One run per size, many data budgets: a constant-lr trunk and a cooldown branch per budget."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from scaling.cli import main
from scaling.config.schema import OptimConfig
from scaling.store import collect, load_table
from scaling.training.optim import decay_start, lr_at

BASE = ["trainer.device=cpu", "trainer.batch_size=16", "trainer.eval_interval=20", "tune.lrs=[]",
        "optim.schedule=wsd"]  # fmt: skip


def _rows(folder) -> pd.DataFrame:
    return collect(folder).set_index("point_id")


def test_wsd_warms_up_holds_and_cools_down_in_its_shape():
    o = OptimConfig(schedule="wsd", warmup=0.1, decay=0.2, min_lr_ratio=0.1)
    lrs = [lr_at(s, 100, o, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0  # 10 steps of warmup
    assert decay_start(100, 0.2) == 80 and set(lrs[10:80]) == {1.0}
    assert lrs[-1] == pytest.approx(0.1)  # the floor on the last step
    assert all(a > b for a, b in zip(lrs[80:], lrs[81:]))
    # 1 − √t: at half the cooldown the lr has fallen by 1/√2 of its way
    assert lrs[89] == pytest.approx(1 - 0.9 * (10 / 20) ** 0.5)
    linear = OptimConfig(schedule="wsd", decay=0.2, decay_shape="linear", min_lr_ratio=0.0)
    assert lr_at(89, 100, linear, 1.0, warmup=0) == pytest.approx(0.5)


def test_a_branch_is_the_wsd_run_of_its_budget(in_tmp, capsys):
    grid = ["model.width=8,16", *BASE, "trainer.branches=[60,120,240]", "--bootstrap", "0"]
    assert main(["sweep", *grid, "--out", "branched"]) == 0
    assert "6 branches from 2 trunks spent" in capsys.readouterr().out
    report = (in_tmp / "branched" / "report.md").read_text()
    assert "## Branches" in report and (in_tmp / "branched" / "plots" / "branches.png").is_file()
    rows = _rows(in_tmp / "branched")
    assert sorted(rows["role"]) == ["branch"] * 6 + ["trunk"] * 2
    trunk = rows[rows["role"] == "trunk"].iloc[0]
    assert trunk["steps"] == decay_start(240, 0.2) == 192
    trunk_dir = in_tmp / "branched" / "points" / trunk.name / "snapshots"
    assert sorted(p.name for p in trunk_dir.iterdir()) == ["step_192.pt", "step_48.pt", "step_96.pt"]
    branches = rows[rows["role"] == "branch"]
    assert (branches["flops_total"] == branches["steps"] * branches["flops_per_step"]).all()
    assert (branches["branch_start"] == branches["steps"].map(lambda n: decay_start(n, 0.2))).all()
    # the trunk's constant phase is never a fit point
    assert "trunks (the constant-lr phase of branches)" in load_table(str(in_tmp / "branched"), ["params", "val_loss"]).excluded
    # the same budget as its own run (its warmup is the branches': 5% of the shortest)
    alone = ["model.width=16", *BASE, "trainer.steps=120", "optim.warmup_steps=3", "--bootstrap", "0"]
    assert main(["sweep", *alone, "--out", "alone"]) == 0
    run = _rows(in_tmp / "alone").iloc[0]
    assert run.name in rows.index  # the same point, so the same id
    assert rows.loc[run.name, "val_loss"] == pytest.approx(run["val_loss"], rel=1e-5)


def test_a_budget_added_later_trains_only_its_branch(in_tmp):
    grid = ["model.width=8", *BASE, "--bootstrap", "0", "--out", "study"]
    assert main(["sweep", *grid, "trainer.branches=[60,120]"]) == 0
    before = _rows(in_tmp / "study")
    assert main(["sweep", *grid, "trainer.branches=[60,120,240]"]) == 0
    after = _rows(in_tmp / "study")
    old = before[before["role"] == "branch"]
    assert (after.loc[old.index, "finished_at"] == old["finished_at"]).all()  # not retrained
    new = after[(after["role"] == "branch") & ~after.index.isin(old.index)]
    assert len(new) == 1 and new["status"].iloc[0] == "ok"
    trunk = after[after["role"] == "trunk"]
    assert len(trunk) == 1 and trunk["steps"].iloc[0] == 192  # the one trunk, continued


@pytest.mark.parametrize("argv, message", [
    (["trainer.branches=[60,120]", "optim.schedule=cosine"], "set optim.schedule=wsd"),
    (["trainer.branches=[60,0]"], "positive budgets"),
    (["trainer.branches=[60,120]", "trainer.pack_seeds=2"], "cannot be combined with trainer.pack_seeds"),
    (["trainer.branches=[60,120]", "tune.lrs=[0.01,0.02,0.04]"], "cannot be combined with tune.lrs"),
])  # fmt: skip
def test_bad_branches_are_one_line_and_exit_2(in_tmp, capsys, argv, message):
    assert main(["sweep", "model.width=8", *BASE, *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def _wait_for_history(folder, proc, role_dirs, timeout=120):
    """Until one of ``role_dirs()`` has written history but no result: it is training."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for d in role_dirs():
            if (d / "history.csv").exists() and not (d / "result.json").exists():
                return d
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.01)
    raise TimeoutError


@pytest.mark.parametrize("victim", ["trunk", "branch"])
def test_killed_trunks_and_branches_resume_and_nothing_finished_trains_again(in_tmp, victim):
    args = ["model.width=8,16", *BASE, "trainer.batch_size=32", "trainer.eval_interval=40",
            "trainer.checkpoint_every=100"]  # fmt: skip
    # a branch long enough to be caught in its cooldown
    args.append("trainer.branches=[400,1600]" if victim == "trunk" else "trainer.branches=[400,3200]")
    out = in_tmp / "outputs" / "mlp_width"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scaling.cli", "sweep", *args], cwd=in_tmp,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip

    def dirs():
        grid = out / "grid.json"
        points = json.loads(grid.read_text())["points"] if grid.exists() else []
        # the second size's, so that the first's trunk and branches are finished before
        return [out / "points" / p["point_id"] for p in points if p["role"] == victim][-1:]

    killed = _wait_for_history(out, proc, dirs)
    time.sleep(0.3 if victim == "trunk" else 0)  # into its steps
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    finished = {k: v["finished_at"] for k, v in _results(out).items() if v["status"] == "ok"}
    assert killed.name not in finished and len(finished) >= 3  # the first size's trunk and branches
    assert main(["sweep", *args, "--bootstrap", "0"]) == 0
    after = _results(out)
    assert len(after) == 6 and all(v["status"] == "ok" for v in after.values())
    branches = {k for k, v in after.items() if v.get("branch_start") is not None}
    assert all(after[k]["finished_at"] == t for k, t in finished.items() if k in branches)
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 6 and df["point_id"].is_unique


def _results(out):
    return {p.parent.name: json.loads(p.read_text()) for p in out.glob("points/*/result.json")}
