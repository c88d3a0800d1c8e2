"""A Hydra launcher that runs each job as a Ray task (``ray.remote``), on a local Ray instance
started with the machine's CPUs or on a cluster at ``address``; each task asks Ray for its
CPUs and GPUs. Ray is imported only when a sweep launches, so that Hydra's scan of its plugins
does not need it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class RayLauncher(Launcher):
    def __init__(self, address: str | None = None, num_cpus: int | None = None,
                 num_gpus: int | None = None, cpus_per_task: float = 1, gpus_per_task: float = 0,
                 init: dict | None = None) -> None:  # fmt: skip
        self.address, self.num_cpus, self.num_gpus = address, num_cpus, num_gpus
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task
        # anything else for ray.init (runtime_env, namespace…), as plain containers
        self.init = (
            OmegaConf.to_container(init, resolve=True)
            if OmegaConf.is_config(init)
            else dict(init or {})
        )
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        import ray

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address, num_cpus=self.num_cpus, num_gpus=self.num_gpus,
                     include_dashboard=False, log_to_driver=True, **self.init)  # fmt: skip
        log.info(f"Ray is launching {len(job_overrides)} jobs")
        # a GPU task gets a fresh worker (max_calls=1): no CUDA context of an earlier job's GPU
        task = ray.remote(max_calls=1 if self.gpus_per_task else 0)(execute_job).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=0
        )
        state = Singleton.get_state()
        refs = []
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            refs.append(task.remote(initial_job_idx + idx, list(overrides), self.hydra_context,
                                    self.config, self.task_function, state))  # fmt: skip
        try:
            return [_result(ray, ref) for ref in refs]
        except KeyboardInterrupt:
            for ref in refs:
                ray.cancel(ref)  # a running task's point ends as interrupted, as under joblib
            ray.wait(refs, num_returns=len(refs), timeout=30)  # while they write their rows
            raise
        finally:
            if started:
                ray.shutdown()


def _result(ray, ref) -> JobReturn:
    """A task's JobReturn; a task that Ray lost (its worker died, its memory monitor killed
    it) is a failed job, and the others go on."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:
        return JobReturn(status=JobStatus.FAILED, _return_value=e)


def execute_job(idx: int, overrides: list, hydra_context, config, task_function,
                singleton_state: dict[Any, Any]) -> JobReturn:  # fmt: skip
    """One job in a Ray worker, as Hydra's own launchers run it in theirs."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import run_job
    from omegaconf import open_dict

    setup_globals()
    Singleton.set_state(singleton_state)
    sweep_config = hydra_context.config_loader.load_sweep_config(config, overrides)
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = f"{sweep_config.hydra.job.name}_{idx}"
        sweep_config.hydra.job.num = idx
    HydraConfig.instance().set_config(sweep_config)
    return run_job(hydra_context=hydra_context, config=sweep_config, task_function=task_function,
                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")  # fmt: skip
