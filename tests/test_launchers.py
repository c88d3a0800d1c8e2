"""The same sweep through Hydra's launchers: every point ok, exactly once."""

import threading
import time

import pandas as pd
import pytest
from conftest import TINY

from scaling.cli import main
from scaling.launch.resources import device_slot


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

    from scaling.config.compose import hydra_context

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


@pytest.mark.parametrize("n_devices,count", [(2, 1), (4, 2)])  # one GPU a job; a 2-process group
def test_concurrent_jobs_never_share_a_device(tmp_path, n_devices, count):
    held, seen, lock = set(), [], threading.Lock()

    def job():
        with device_slot(n_devices, tmp_path, poll=0.01, count=count) as got:
            devices = {got} if count == 1 else set(got)
            with lock:
                assert len(devices) == count and not held & devices  # no two jobs on one device
                held.update(devices)
                seen.extend(devices)
            time.sleep(0.05)
            with lock:
                held.difference_update(devices)

    threads = [threading.Thread(target=job) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 6 * count and set(seen) == set(range(n_devices))  # every job got its own
