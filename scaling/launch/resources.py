"""What a job gets of its machine: CPU threads, and on a multi-GPU node GPUs of its own."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch

from .. import store
from ..training.parallel import in_group
from ..training.runner import Resources

GPU_LOCKS = Path(tempfile.gettempdir()) / "scaling-gpu-locks"


@contextlib.contextmanager
def device_slot(n_devices: int, lock_dir: Path = GPU_LOCKS, poll: float = 1.0, count: int = 1):
    """Hold ``count`` of ``n_devices`` devices for the duration of the block: yields their indices
    (one index when ``count`` is 1).

    A lock file per device, so concurrent jobs on one machine (joblib workers, several
    sweeps) never share a device and none runs on none; a job that finds too few devices
    free waits, holding none. The locks are released if the job dies.
    """
    while True:
        held = []
        try:
            for i in range(n_devices):
                device_lock = store.try_lock(lock_dir / f"device{i}.lock")
                if device_lock is None:
                    continue
                held.append((i, device_lock))
                if len(held) == count:
                    yield held[0][0] if count == 1 else [i for i, _ in held]
                    return
        finally:  # after the block, or when too few were free
            for _, device_lock in held:
                device_lock.release()
        time.sleep(poll)


def threads_per_job(launcher: dict, nproc: int) -> int | None:
    """Each of joblib's concurrent jobs gets its share of the cores, split again between the
    processes of a group (None: not joblib, torch's own default)."""
    n_jobs = (
        launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")).lower() else None
    )
    if not n_jobs or n_jobs <= 0:
        return None
    return max(1, (os.cpu_count() or 1) // (n_jobs * nproc))


@contextlib.contextmanager
def job_resources(trainer, threads: int | None = None):
    """Per job, not per process (joblib reuses workers): the job's threads and, on a multi-GPU
    node, ``trainer.nproc`` GPUs held for the block. Yields the job's ``Resources``."""
    threads = trainer.threads or threads
    n_gpus = torch.cuda.device_count() if trainer.device in ("auto", "cuda") else 0
    nproc = trainer.nproc
    if n_gpus <= 1 or nproc > n_gpus or in_group():  # one GPU, or a scheduler's group
        yield Resources(threads=threads)
        return
    with device_slot(n_gpus, count=nproc) as held:
        if nproc == 1:
            yield Resources(device=f"cuda:{held}", threads=threads)
            return
        # the group's torchrun sees only its GPUs
        before = os.environ.get("CUDA_VISIBLE_DEVICES")
        visible = before.split(",") if before else [str(i) for i in range(n_gpus)]
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(visible[i] for i in held)
        try:
            yield Resources(threads=threads)
        finally:
            if before is None:
                os.environ.pop("CUDA_VISIBLE_DEVICES")
            else:
                os.environ["CUDA_VISIBLE_DEVICES"] = before
