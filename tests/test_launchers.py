"""The same sweep through Hydra's launchers: every point ok, exactly once."""

import os
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


def test_threads_launcher_trains_each_job_in_a_thread_with_the_rows_of_processes(
    in_tmp, monkeypatch
):
    import scaling.launch.hydra as launching

    names, train_job = set(), launching.train_job

    def spy(*args, **kwargs):
        names.add(threading.current_thread().name)
        return train_job(*args, **kwargs)

    monkeypatch.setattr(launching, "train_job", spy)
    grid = ["model.width=4,8,12,16", *TINY, "trainer.steps=20", "trainer.threads=1",
            "--bootstrap", "0"]  # fmt: skip
    threads = ["hydra/launcher=threads", "hydra.launcher.n_jobs=2"]
    assert main(["sweep", *grid, *threads, "--out", str(in_tmp / "threads")]) == 0
    assert len(names) == 2 and all(n.startswith("job") for n in names)  # two threads, not main
    together = _all_ok_once(in_tmp / "threads", 4).set_index("point_id")
    assert main(["sweep", *grid, "--out", str(in_tmp / "alone")]) == 0  # one after another
    alone = _all_ok_once(in_tmp / "alone", 4).set_index("point_id")
    # each drew its own initialisation and batches, as alone
    assert together["val_loss"].to_dict() == alone["val_loss"].to_dict()


def test_a_thread_holds_the_rngs_while_it_draws():
    import torch

    from scaling.training.device import seeded

    inside, draws = threading.Event(), {}

    def first():
        with seeded(0):
            a = torch.rand(3)
            inside.set()
            time.sleep(0.1)  # another thread seeds meanwhile, or waits
            draws[0] = torch.cat([a, torch.rand(3)])

    def second():
        inside.wait()
        with seeded(1):
            draws[1] = torch.rand(6)

    threads = [threading.Thread(target=f) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for seed in (0, 1):
        torch.manual_seed(seed)
        assert torch.equal(draws[seed], torch.rand(6))


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


def test_a_gpu_runs_as_many_points_at_once_as_it_has_places(tmp_path):
    held, most, lock = {0: 0, 1: 0}, {0: 0, 1: 0}, threading.Lock()

    def job():
        with device_slot(2, tmp_path, poll=0.01, slots=3) as got:
            with lock:
                held[got] += 1
                most[got] = max(most[got], held[got])
            time.sleep(0.05)
            with lock:
                held[got] -= 1

    threads = [threading.Thread(target=job) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most == {0: 3, 1: 3}  # three at once on each, never a fourth


def test_a_process_group_holds_whole_devices(tmp_path, monkeypatch):
    from scaling.launch.resources import MAX_SLOTS, _place, _whole

    single = _place(tmp_path, 0, 4)
    assert single and _whole(tmp_path, 0) == []  # a point on the device: no group there
    for lock in single:
        lock.release()
    group = _whole(tmp_path, 0)
    assert len(group) == MAX_SLOTS and _place(tmp_path, 0, 4) == []  # nor points beside a group
    for lock in group:
        lock.release()
    # places are the physical device's: GPU 3 seen as cuda:0 in one job, as cuda:1 in another
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    held = _place(tmp_path, 0, 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert held and _place(tmp_path, 1, 1) == [] and _place(tmp_path, 0, 1)


def test_a_process_groups_gpus_go_to_its_torchrun_not_to_this_process(monkeypatch):
    from types import SimpleNamespace

    import torch

    from scaling.launch.resources import job_resources

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    trainer = SimpleNamespace(threads=None, device="auto", nproc=2, gpu_slots=None)
    with job_resources(trainer) as resources:
        assert resources.visible == "5,7"  # the physical GPUs, for the group's environment
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "5,7"  # shared by jobs in threads: kept


def test_a_point_waits_for_a_device_with_room_then_runs_regardless(tmp_path):
    with device_slot(2, tmp_path, poll=0.01, admits=lambda i: i == 1) as got:
        assert got == 1  # device 0 has no room: the point goes where there is
    start = time.monotonic()
    with device_slot(2, tmp_path, poll=0.01, admits=lambda i: False, patience=0.2) as got:
        assert got == 0 and time.monotonic() - start >= 0.2  # no room anywhere: after patience


def test_places_per_gpu_from_the_setting_or_the_free_memory(monkeypatch):
    from scaling.config.schema import TrainerConfig
    from scaling.launch.resources import need_bytes, slots_per_device

    monkeypatch.setattr("os.cpu_count", lambda: 16)
    small, big = 300_000, 2_000_000_000
    assert slots_per_device(TrainerConfig(gpu_slots=3), small, 1 << 36, 1) == 3
    assert slots_per_device(TrainerConfig(), small, 140 << 30, 1) == 8  # at most 8
    assert slots_per_device(TrainerConfig(), small, 140 << 30, 4) == 4  # 16 cores, 4 GPUs
    assert slots_per_device(TrainerConfig(), big, 80 << 30, 1) == 1  # 40 GB each: one
    assert slots_per_device(TrainerConfig(), small, 4 * need_bytes(small), 1) == 2  # half the free
    with pytest.raises(ValueError, match="gpu_slots"):
        TrainerConfig(gpu_slots=0)
    with pytest.raises(ValueError, match="gpu_slots is at most 8"):
        TrainerConfig(gpu_slots=9)


def test_without_nvml_a_gpus_free_memory_is_not_read(monkeypatch):
    """No NVML (no driver, or no GPU): no reading, and a point is admitted on its place."""
    import pynvml

    from scaling.launch import resources

    def no_driver():
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    assert resources.free_bytes(0) is None
    assert resources._room(0, 10**12)
