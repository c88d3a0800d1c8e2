"""The same sweep through Hydra's launchers: every point ok, exactly once."""

import threading
import time

import pandas as pd
import pytest

from scaling.cli import main
from scaling.sweep import device_slot

TINY = ["trainer.steps=4", "trainer.eval_interval=2", "trainer.batch_size=16", "trainer.device=cpu"]


def _all_ok_once(sweep_dir, n):
    df = pd.read_csv(sweep_dir / "results.csv")
    assert len(df) == n and df["point_id"].is_unique and set(df["status"]) == {"ok"}
    assert len(list(sweep_dir.glob("points/*/result.json"))) == n
    return df


@pytest.mark.slow
def test_joblib_two_workers(in_tmp):
    args = ["model.width=4,8,12,16", *TINY, "hydra/launcher=local", "hydra.launcher.n_jobs=2"]
    assert main(["sweep", *args]) == 0
    df = _all_ok_once(in_tmp / "outputs" / "mlp_width", 4)
    assert set(df["trainer.threads"]) == {1}  # 2 cores shared by 2 workers
    assert main(["sweep", *args]) == 0  # resume: nothing to do, nothing duplicated
    _all_ok_once(in_tmp / "outputs" / "mlp_width", 4)


@pytest.mark.slow
def test_submitit_local(in_tmp):
    args = [
        "model.width=4,8,12,16",
        *TINY,
        "hydra/launcher=submitit_local",
        "hydra.launcher.timeout_min=10",
    ]
    assert main(["sweep", *args]) == 0
    _all_ok_once(in_tmp / "outputs" / "mlp_width", 4)


def test_slurm_preset_composes_with_cluster_settings(in_tmp):
    from hydra import compose

    from scaling.sweep import hydra_context

    with hydra_context():
        cfg = compose(
            "config",
            overrides=[
                "hydra/launcher=slurm",
                "hydra.launcher.partition=gpu",
                "hydra.launcher.account=lab",
            ],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher.partition == "gpu" and launcher.account == "lab" and launcher.gpus_per_node == 1
    assert "SlurmLauncher" in launcher._target_


def test_concurrent_jobs_never_share_a_device(tmp_path):
    held, seen, lock = set(), [], threading.Lock()

    def job():
        with device_slot(2, tmp_path, poll=0.01) as i:
            with lock:
                assert i not in held  # no two jobs on one device
                held.add(i)
                seen.append(f"cuda:{i}")
            time.sleep(0.05)
            with lock:
                held.remove(i)

    threads = [threading.Thread(target=job) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 6 and set(seen) == {"cuda:0", "cuda:1"}  # every job got one


def test_groups_hold_their_devices_together(tmp_path):
    """Jobs of 2-process points on a 4-GPU node: two at a time, on disjoint pairs."""
    held, pairs, lock = set(), [], threading.Lock()

    def job():
        with device_slot(4, tmp_path, poll=0.01, count=2) as devices:
            with lock:
                assert len(devices) == 2 and not held & set(devices)
                held.update(devices)
                pairs.append(tuple(devices))
            time.sleep(0.05)
            with lock:
                held.difference_update(devices)

    threads = [threading.Thread(target=job) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(pairs) == 5
