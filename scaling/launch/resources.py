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


MAX_SLOTS = 8  # places a device can have; a process group holds them all


@contextlib.contextmanager
def device_slot(n_devices: int, lock_dir: Path = GPU_LOCKS, poll: float = 1.0, count: int = 1,
                slots: int = 1, admits=None, patience: float = 60.0):  # fmt: skip
    """Hold ``count`` of ``n_devices`` devices for the duration of the block: yields their indices
    (one index when ``count`` is 1).

    Each device has ``slots`` places; a point of one process takes one, a process group every
    place of ``count`` devices. A lock file per place, named by the physical device (through
    ``CUDA_VISIBLE_DEVICES``), so concurrent jobs on one machine (joblib workers, Ray tasks,
    several sweeps) never crowd a device beyond its places and none runs on none; a job that
    finds too few free waits, holding none. ``admits(i)`` says whether device ``i`` has room
    now (its free memory); once a free place has been refused for ``patience`` seconds, a job
    takes it regardless (an out-of-memory error is then its row). The locks are released if
    the job dies.
    """
    refused_since = None
    while True:
        held, refused = [], False
        impatient = refused_since is not None and time.monotonic() - refused_since > patience
        try:
            for i in range(n_devices):
                places = _whole(lock_dir, i) if count > 1 else _place(lock_dir, i, slots)
                if not places:
                    continue
                if admits is not None and not impatient and not admits(i):
                    refused = True
                    for place in places:
                        place.release()
                    continue
                held.append((i, places))
                if len(held) == count:
                    yield held[0][0] if count == 1 else [i for i, _ in held]
                    return
        finally:  # after the block, or when too few were free
            for _, places in held:
                for place in places:
                    place.release()
        refused_since = (refused_since or time.monotonic()) if refused else None
        time.sleep(poll)


def _physical(device: int) -> str:
    """Which GPU this process's ``cuda:<device>`` is: its entry in ``CUDA_VISIBLE_DEVICES`` (an
    index or a UUID), else its own index."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",")] if visible else []
    return ids[device] if device < len(ids) else str(device)


def _lock_name(device: int, j: int) -> str:
    physical = _physical(device)
    return f"device{physical}.lock" if j == 0 else f"device{physical}.slot{j}.lock"


def _place(lock_dir: Path, device: int, slots: int) -> list:
    """A free place on ``device``, locked (a list of its one lock), or an empty list."""
    for j in range(min(slots, MAX_SLOTS)):
        place = store.try_lock(lock_dir / _lock_name(device, j))
        if place is not None:
            return [place]
    return []


def _whole(lock_dir: Path, device: int) -> list:
    """Every place of ``device``, locked, or none (an empty list) when any is taken."""
    held = []
    for j in range(MAX_SLOTS):
        place = store.try_lock(lock_dir / _lock_name(device, j))
        if place is None:
            for other in held:
                other.release()
            return []
        held.append(place)
    return held


PER_PARAM = 20  # bytes a trained parameter holds: fp32 weight, gradient, Adam's two moments, slack
PER_PROCESS = 1 << 29  # a CUDA context and a small model's activations: 512 MiB


def need_bytes(params: int) -> int:
    """The device memory a point of ``params`` parameters is expected to hold (by default)."""
    return PER_PARAM * params + PER_PROCESS


def slots_per_device(trainer, params: int, free: int, n_devices: int) -> int:
    """Points at once per GPU: ``trainer.gpu_slots``, or as many as fit in half the free memory
    (``need_bytes`` each), at most 8 and at most the CPU cores per GPU (each process launches
    its own kernels)."""
    if trainer.gpu_slots:
        return min(trainer.gpu_slots, MAX_SLOTS)
    cores = max(1, (os.cpu_count() or 1) // max(1, n_devices))
    return max(1, min(MAX_SLOTS, cores, free // 2 // need_bytes(params)))


def threads_per_job(launcher: dict, nproc: int) -> int | None:
    """Each of a local launcher's concurrent jobs (joblib's processes, the threads launcher's
    threads) gets its share of the cores, split again between the processes of a group
    (None: another launcher, torch's own default)."""
    n_jobs = launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs <= 0:
        return None
    return max(1, (os.cpu_count() or 1) // (n_jobs * nproc))


@contextlib.contextmanager
def job_resources(trainer, threads: int | None = None, params: int = 0):
    """Per job, not per process (joblib reuses workers): the job's threads and, with GPUs, a
    place on one (``slots_per_device`` per GPU, where its free memory admits the point) or
    ``trainer.nproc`` GPUs of its own for a process group. Yields the job's ``Resources``."""
    threads = trainer.threads or threads
    n_gpus = torch.cuda.device_count() if trainer.device in ("auto", "cuda") else 0
    nproc = trainer.nproc
    if n_gpus == 0 or nproc > n_gpus or in_group() or (nproc > 1 and n_gpus == 1):
        yield Resources(threads=threads)  # no GPU, or a scheduler's group
        return
    if nproc == 1:
        free = free_bytes(0)
        free = torch.cuda.get_device_properties(0).total_memory if free is None else free
        slots = slots_per_device(trainer, params, free, n_gpus)
        with device_slot(n_gpus, slots=slots, admits=lambda i: _room(i, params)) as held:
            yield Resources(device=f"cuda:{held}", threads=threads)
        return
    with device_slot(n_gpus, count=nproc) as held:
        # the group's torchrun sees only its GPUs (its own environment: jobs in threads of
        # one process share this one's)
        yield Resources(threads=threads, visible=",".join(_physical(i) for i in held))


def _room(device: int, params: int) -> bool:
    """Whether GPU ``device`` has the memory a point needs free now, or could never have it
    (True where its free memory cannot be read)."""
    free, need = free_bytes(device), need_bytes(params)
    if free is None or free >= need:
        return True
    return need > torch.cuda.get_device_properties(device).total_memory


def free_bytes(device: int) -> int | None:
    """The free memory of CUDA device ``device`` (as this process numbers it) from NVML, which
    reads it without opening a CUDA context on the device (``torch.cuda.mem_get_info`` would
    leave one, some 500 MB, on every device a job looked at); None without NVML."""
    try:
        import pynvml

        pynvml.nvmlInit()
        name = _physical(device)
        handle = (pynvml.nvmlDeviceGetHandleByIndex(int(name)) if name.isdigit()
                  else pynvml.nvmlDeviceGetHandleByUUID(name))  # fmt: skip
        return int(pynvml.nvmlDeviceGetMemoryInfo(handle).free)
    except Exception:  # noqa: BLE001 - no NVML (package, driver or device): no reading
        return None
