"""Sweeps on Hydra's launchers (basic, joblib, submitit, Ray), as Hydra's own multirun runs
them after its sweeper has expanded a grid.

Each job's planned points are written to a file in the sweep folder. Hydra composes the
sweep's config once; a launcher's job gets a copy naming its file (``PlannedJobs``), and
the job reads its points and trains them. Each job writes its own files; the end of the sweep reads them from
disk. Hydra's private API is used here and nowhere else.
"""

from __future__ import annotations

import copy
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.callbacks import Callbacks
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, RunMode
from omegaconf import OmegaConf, open_dict, read_write

from .. import store
from ..config.compose import CONFIG_NAME, hydra_context
from ..config.presets import preset_overrides
from ..training.parallel import in_group
from .jobs import train_job
from .resources import job_resources, threads_per_job
from .torchrun import export_scheduler_env

JOBS = ".jobs"  # the sweep folder's job files
JOB_KEY = "job"  # the key of a job's config that names its file


@dataclass(frozen=True)
class Job:
    """What one launched job trains, and how."""

    specs: list  # its planned points: one, or a pack's seeds
    out: Path
    threads: int | None = None  # its share of the machine's cores (joblib)
    max_failures: int | None = None  # not started after this many failures in a row


def launch(sweep, jobs: list, max_failures: int | None = None) -> None:
    """Run ``jobs`` (lists of planned points) with the sweep's Hydra launcher."""
    store.record_outcome(sweep.out, None)
    with hydra_context() as hydra:
        # the sweep's config, composed once as Hydra's multirun does: the preset's and the
        # command line's launcher, callbacks and job settings
        overrides = [
            *preset_overrides(sweep.preset),
            *sweep.hydra_overrides,
            f"sweep={sweep.name}",
            f"out={sweep.out}",
        ]
        master = hydra.compose_config(CONFIG_NAME, overrides, run_mode=RunMode.MULTIRUN,
                                      with_log_configuration=True)  # fmt: skip
        files = _write_jobs(
            sweep, jobs, max_failures, OmegaConf.to_container(master.hydra.launcher, resolve=True)
        )
        callbacks = Callbacks(master)
        callbacks.on_multirun_start(config=master, config_name=CONFIG_NAME)
        _register_own_launchers()
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=PlannedJobs(), callbacks=callbacks),
            task_function=run_job, config=master,
        )  # fmt: skip
        returns = launcher.launch([[f"{JOB_KEY}={f}"] for f in files], initial_job_idx=0)
    # a job raises only where the runner itself broke (training errors are rows): say so
    for ret in returns or []:
        if ret.status == JobStatus.FAILED:
            _ = ret.return_value  # JobReturn raises the job's exception here
    callbacks.on_multirun_end(config=master, config_name=CONFIG_NAME)


def _register_own_launchers() -> None:
    """The project's own launchers (hydra_plugins.scaling_*) among Hydra's plugins. Hydra finds
    it itself in a regular install; in an editable one its scan cannot list setuptools' import
    hook, though the module imports."""
    from hydra_plugins.scaling_ray.launcher import RayLauncher
    from hydra_plugins.scaling_threads.launcher import ThreadsLauncher

    known = Plugins.instance().class_name_to_class
    for launcher in (RayLauncher, ThreadsLauncher):
        known.setdefault(f"{launcher.__module__}.{launcher.__name__}", launcher)


class PlannedJobs:
    """What a launcher asks Hydra's config loader for, a job's config, without composing it
    again: the sweep's config with the job's file. The job's points were composed, validated
    and planned before launch; Hydra's config of the sweep (launcher, callbacks, job
    settings) comes with the copy."""

    def load_sweep_config(self, master_config, sweep_overrides: list[str]):
        job = copy.deepcopy(master_config)
        with read_write(job), open_dict(job):
            job[JOB_KEY] = sweep_overrides[0].removeprefix(
                f"{JOB_KEY}="
            )  # the one override: its file
            job.hydra.overrides.task = list(sweep_overrides)
        return job


def _write_jobs(sweep, jobs: list, max_failures: int | None, launcher: dict) -> list[Path]:
    """One file per job: its points and settings. Files stay after the sweep: a scheduler may
    start a queued job after this process has gone."""
    files = []
    for specs in jobs:
        threads = threads_per_job(launcher, specs[0].cfg.trainer.nproc)
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
    job: Job = pickle.loads(Path(cfg[JOB_KEY]).read_bytes())
    # submitit's K tasks of one point are its process group: they join it before anything else
    export_scheduler_env(job.specs[0].cfg.trainer)
    # the tasks of a group could read the streak apart and disagree: they train regardless
    if job.max_failures and not in_group() and store.failure_streak(job.out) >= job.max_failures:
        return "skipped"
    spec = job.specs[0]
    params = spec.params["total"] * len(job.specs)  # a pack's seeds share the device
    with job_resources(spec.cfg.trainer, job.threads, params) as resources:
        rows = train_job(job.specs, job.out, resources)
    statuses = {row["status"] for row in rows} or {"ok"}
    # a hopeless point was stopped on purpose (trainer.stop_hopeless): not a failure in a row
    status = (
        "interrupted" if "interrupted" in statuses
        else "ok" if statuses <= {"ok", "hopeless"} else "failed"
    )  # fmt: skip
    if rows and status != "interrupted" and os.environ.get("RANK", "0") == "0":
        store.record_outcome(job.out, status)
    return status
