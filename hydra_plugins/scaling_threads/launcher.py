"""A Hydra launcher that runs each job in a thread of this process: no worker processes to
start, no imports to repeat, one CUDA context for every job. For many small points on one
GPU, whose steps (CUDA graphs) leave the process's Python time to spare.

Hydra's joblib launcher keeps to processes, because a job may change what a process holds
for all its threads: the working directory (``hydra.job.chdir``), logging, ``HydraConfig``.
Here logging is set up once, the working directory must stay (this launcher refuses
``hydra.job.chdir=true``), and a job must not read ``HydraConfig`` while others run. Ctrl-C
reaches the main thread only; the launcher raises it in each running job's thread too, as it
reaches every worker of a process pool, and waits while they stop.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hydra.core.utils import JobReturn, configure_log, filter_overrides, setup_globals
from hydra.plugins.launcher import Launcher

log = logging.getLogger(__name__)


class ThreadsLauncher(Launcher):
    def __init__(self, n_jobs: int = 8, patience: float = 60.0) -> None:
        if n_jobs < 1:
            raise ValueError(f"hydra.launcher.n_jobs must be 1 or more, not {n_jobs}")
        self.n_jobs, self.patience = n_jobs, patience  # patience: seconds to wait after Ctrl-C
        self.config = self.hydra_context = self.task_function = None
        self.running: set[int] = set()  # the threads of the jobs at work
        self.stopping = threading.Event()

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides, initial_job_idx: int) -> list[JobReturn]:
        if self.config.hydra.job.chdir:
            raise ValueError("hydra/launcher=threads runs its jobs in one process, which has "
                             "one working directory: it needs hydra.job.chdir=false")  # fmt: skip
        setup_globals()
        configure_log(self.config.hydra.job_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"{self.n_jobs} threads are launching {len(job_overrides)} jobs")
        self.stopping.clear()
        pool = ThreadPoolExecutor(self.n_jobs, thread_name_prefix="job")
        futures = []
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            futures.append(pool.submit(self._job, initial_job_idx + idx, list(overrides)))
        try:
            returns = [f.result() for f in futures]
        except KeyboardInterrupt:
            self._interrupt(futures)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return returns

    def _job(self, idx: int, overrides: list) -> JobReturn:
        """One job, as Hydra's own launchers run it in their workers."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import run_job
        from omegaconf import open_dict

        if self.stopping.is_set():  # queued when Ctrl-C came
            raise KeyboardInterrupt
        self.running.add(threading.get_ident())
        try:
            config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with open_dict(config):
                config.hydra.job.id = f"{config.hydra.job.name}_{idx}"
                config.hydra.job.num = idx
            HydraConfig.instance().set_config(config)
            return run_job(hydra_context=self.hydra_context, config=config,
                           task_function=self.task_function, job_dir_key="hydra.sweep.dir",
                           job_subdir_key="hydra.sweep.subdir", configure_logging=False)  # fmt: skip
        finally:
            self.running.discard(threading.get_ident())

    def _interrupt(self, futures: list) -> None:
        """Ctrl-C in every running job's thread (at its next Python instruction); wait up to
        ``patience`` seconds while they write what they stop with."""
        self.stopping.set()
        for f in futures:
            f.cancel()
        for ident in list(self.running):
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)
            )
        deadline = time.monotonic() + self.patience
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
