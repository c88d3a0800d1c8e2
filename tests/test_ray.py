"""Sweeps on the project's Ray launcher (hydra/launcher=ray), on a local Ray instance: every
point ok once, a failing point its own row, and a killed sweep resumed without retraining."""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import TINY
from test_reliability import _results

from scaling.cli import main
from scaling.store import collect

RAY = ["hydra/launcher=ray", "hydra.launcher.num_cpus=2"]


@pytest.mark.slow
def test_ray_runs_each_point_once_and_a_failure_is_its_row(in_tmp, monkeypatch):
    """Four points on a local Ray instance: a failing one is its own row and the others go
    on; retried, it alone trains again, and the sweep has four ok rows, each once."""
    monkeypatch.setenv("SCALING_FAULT", "raise@1:width=8")  # the workers inherit it
    args = ["model=faulty", "model.width=4,8,12,16", *TINY, *RAY]
    assert main(["sweep", *args]) == 1  # a point failed; the others went on
    df = collect(in_tmp / "outputs" / "mlp_width").set_index("model.width")
    assert len(df) == 4 and df["point_id"].is_unique
    assert df.loc[8, "status"] == "failed" and "boom" in df.loc[8, "error"]
    assert set(df.drop(8)["status"]) == {"ok"}
    monkeypatch.delenv("SCALING_FAULT")
    before = dict(zip(df["point_id"], df["finished_at"]))
    assert main(["sweep", *args, "--retry-failed"]) == 0  # only the failed point trains again
    after = collect(in_tmp / "outputs" / "mlp_width")
    assert len(after) == 4 and after["point_id"].is_unique and set(after["status"]) == {"ok"}
    again = [p for p, t in zip(after["point_id"], after["finished_at"]) if before[p] != t]
    assert again == [df.loc[8, "point_id"]]


@pytest.mark.slow
def test_a_killed_ray_sweep_resumes_without_retraining_finished_points(in_tmp):
    args = ["model.width=4,8,12,16,20,24", "trainer.steps=600", "trainer.eval_interval=50",
            "trainer.batch_size=16", "tune.lrs=[]", *RAY]  # fmt: skip
    sweep_dir = in_tmp / "outputs" / "mlp_width"
    # its own session, killed whole as a scheduler kills a job: the driver and Ray's processes
    proc = subprocess.Popen([sys.executable, "-m", "scaling.cli", "sweep", *args], cwd=in_tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 180
    while sum(r["status"] == "ok" for r in _results(sweep_dir).values()) < 2:
        assert time.time() < deadline and proc.poll() is None
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(1)  # a Ray worker of the killed sweep may still be writing its point's result
    before = {k: v["finished_at"] for k, v in _results(sweep_dir).items() if v["status"] == "ok"}
    assert 2 <= len(before) < 6
    assert main(["sweep", *args]) == 0
    after = _results(sweep_dir)
    assert len(after) == 6 and all(v["status"] == "ok" for v in after.values())
    assert all(after[k]["finished_at"] == t for k, t in before.items())  # not trained again
    assert collect(sweep_dir)["point_id"].is_unique


def test_ray_init_options_reach_ray_as_plain_containers():
    """Hydra hands the launcher its settings as OmegaConf nodes; ray.init checks the types of
    a runtime_env's lists and dicts."""
    from omegaconf import OmegaConf

    from hydra_plugins.scaling_ray.launcher import RayLauncher

    init = OmegaConf.create({"runtime_env": {"pip": ["numpy"], "env_vars": {"A": "1"}}})
    launcher = RayLauncher(init=init)
    assert type(launcher.init["runtime_env"]["pip"]) is list
    assert type(launcher.init["runtime_env"]["env_vars"]) is dict
