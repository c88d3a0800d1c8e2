"""Sweeps on Hydra's launchers (basic, joblib, submitit, Ray), as Hydra's own multirun runs
them after its sweeper has expanded a grid.

Each job's planned points are written to a file in the sweep folder; the launcher composes
only the small ``job`` config (the file's path) for each, and the job reads its points
and trains them. Each job writes its own files; the end of the sweep reads them from
disk. Hydra's private API is used here and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.callbacks import Callbacks
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf, open_dict

from .. import store
from ..config.compose import hydra_context
from ..training.parallel import in_group
from .jobs import train_job
from .resources import job_resources, threads_per_job

JOBS = ".jobs"  # the sweep folder's job files while it runs


@dataclass(frozen=True)
class Job:
    """What one launched job trains, and how."""

    specs: list  # its planned points: one, or a pack's seeds
    out: Path
    threads: int | None = None  # its share of the machine's cores (joblib)
    max_failures: int | None = None  # not started after this many failures in a row


def launch(sweep, jobs: list, max_failures: int | None = None) -> None:
    """Run ``jobs`` (lists of planned points) with the sweep's Hydra launcher."""
    files = _write_jobs(sweep, jobs, max_failures)
    store.record_outcome(sweep.out, None)
    try:
        with hydra_context() as hydra:
            master = hydra.compose_config("job", [*sweep.hydra_overrides, f"out={sweep.out}"],
                                          run_mode=RunMode.MULTIRUN, with_log_configuration=True)  # fmt: skip
            with open_dict(master):  # the launcher and callbacks the preset and command line chose
                master.hydra.launcher = OmegaConf.create(sweep.launcher)
                master.hydra.callbacks = OmegaConf.create(sweep.callbacks)
            callbacks = Callbacks(master)
            callbacks.on_multirun_start(config=master, config_name="job")
            launcher = Plugins.instance().instantiate_launcher(
                hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
                task_function=run_job, config=master,
            )  # fmt: skip
            returns = launcher.launch(
                [[f"out={sweep.out}", f"job={f}"] for f in files], initial_job_idx=0
            )
        # a job raises only where the runner itself broke (training errors are rows): say so
        for ret in returns or []:
            if ret.status == JobStatus.FAILED:
                _ = ret.return_value  # JobReturn raises the job's exception here
        callbacks.on_multirun_end(config=master, config_name="job")
    finally:
        for f in files:
            f.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (sweep.out / JOBS).rmdir()


def _write_jobs(sweep, jobs: list, max_failures: int | None) -> list[Path]:
    files = []
    for specs in jobs:
        threads = threads_per_job(sweep.launcher, specs[0].cfg.trainer.nproc)
        job = Job(specs, sweep.out, threads, max_failures)
        path = sweep.out / JOBS / f"{specs[0].point_id}.pkl"
        store.atomic_write(path, lambda f, job=job: pickle.dump(job, f), binary=True)
        files.append(path)
    return files


def run_job(cfg) -> str:
    """Hydra's task function: train one job's points unless they are done.

    With ``max_failures``, a job is not started once that many jobs in a row have failed:
    its points stay pending for the next run.
    """
    job: Job = pickle.loads(Path(cfg.job).read_bytes())
    # the tasks of a group could read the streak apart and disagree: they train regardless
    if job.max_failures and not in_group() and store.failure_streak(job.out) >= job.max_failures:
        return "skipped"
    with job_resources(job.specs[0].cfg.trainer, job.threads) as resources:
        rows = train_job(job.specs, job.out, resources)
    statuses = {row["status"] for row in rows} or {"ok"}
    status = (
        "interrupted" if "interrupted" in statuses else "ok" if statuses == {"ok"} else "failed"
    )
    if rows and status != "interrupted" and os.environ.get("RANK", "0") == "0":
        store.record_outcome(job.out, status)
    return status
