"""A Hydra launcher that runs each job in a thread of this process: no worker processes to
start, no imports to repeat, one CUDA context for every job. For many small points on one
GPU, whose steps (CUDA graphs) leave the process's Python time to spare.

Hydra's joblib launcher keeps to processes, because a job may change what a process holds
for all its threads: the working directory (``hydra.job.chdir``), logging, ``HydraConfig``.
Here logging is set up once, the working directory must stay (the sweep refuses
``hydra.job.chdir=true``), and a job must not read ``HydraConfig`` while others run.

Ctrl-C reaches the main thread only. The launcher then sets ``stop_requested`` on each
running job's thread, which the project's training loop reads at every step and stops at
as Ctrl-C would stop it; a thread still running after a few seconds (waiting outside the
loop) gets KeyboardInterrupt raised in it. Its threads are daemons: one that outlasts
``patience`` does not hold the process at exit.
"""

from __future__ import annotations

import ctypes
import logging
import queue
import threading
import time
from pathlib import Path

from hydra.core.utils import (
    JobReturn,
    JobStatus,
    configure_log,
    filter_overrides,
    setup_globals,
)
from hydra.plugins.launcher import Launcher

log = logging.getLogger(__name__)
GRACE = 5.0  # seconds the running jobs have to stop at a step before KeyboardInterrupt is raised


class ThreadsLauncher(Launcher):
    def __init__(self, n_jobs: int = 8, patience: float = 60.0) -> None:
        if n_jobs < 1:
            raise ValueError(f"hydra.launcher.n_jobs must be 1 or more, not {n_jobs}")
        self.n_jobs, self.patience = n_jobs, patience  # patience: seconds to wait after Ctrl-C
        self.config = self.hydra_context = self.task_function = None
        self.lock = threading.Lock()  # over ``running`` and ``stopping``
        self.running: dict[int, threading.Thread] = {}  # the threads of the jobs at work
        self.stopping = False

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
        jobs = queue.SimpleQueue()
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            jobs.put((idx, list(overrides)))
        returns: list = [None] * len(job_overrides)
        self.stopping = False
        workers = [threading.Thread(target=self._work, args=(jobs, returns, initial_job_idx),
                                    name=f"job_{i}", daemon=True)
                   for i in range(min(self.n_jobs, len(job_overrides)))]  # fmt: skip
        try:
            for w in workers:
                w.start()
            for w in workers:
                while w.is_alive():
                    w.join(0.1)
        except KeyboardInterrupt:
            self._interrupt()
            raise
        return returns

    def _work(self, jobs: queue.SimpleQueue, returns: list, first: int) -> None:
        """Take jobs until there are none, or until Ctrl-C."""
        me = threading.current_thread()
        while True:
            with self.lock:
                if self.stopping or jobs.empty():
                    return
                idx, overrides = jobs.get()
                self.running[me.ident] = me
            try:
                returns[idx] = self._job(first + idx, overrides)
            except KeyboardInterrupt:
                return  # its points wrote what they stopped with
            except Exception as e:  # noqa: BLE001 - the job failed outside its task: its return
                returns[idx] = JobReturn(status=JobStatus.FAILED, _return_value=e)
            finally:
                with self.lock:
                    self.running.pop(me.ident, None)

    def _job(self, idx: int, overrides: list) -> JobReturn:
        """One job, as Hydra's own launchers run it in their workers."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import run_job
        from omegaconf import open_dict

        config = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(config):
            config.hydra.job.id = f"{config.hydra.job.name}_{idx}"
            config.hydra.job.num = idx
        HydraConfig.instance().set_config(config)
        return run_job(hydra_context=self.hydra_context, config=config,
                       task_function=self.task_function, job_dir_key="hydra.sweep.dir",
                       job_subdir_key="hydra.sweep.subdir", configure_logging=False)  # fmt: skip

    def _interrupt(self) -> None:
        """Ask every running job to stop at its next step; after ``GRACE`` seconds raise
        KeyboardInterrupt in those still running; wait up to ``patience`` in all while they
        write their interrupted rows."""
        with self.lock:
            self.stopping = True  # no job starts from here on
            threads = list(self.running.values())
        for thread in threads:
            thread.stop_requested = True
        self._wait(min(GRACE, self.patience))
        with self.lock:
            left = list(self.running)
        for ident in left:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(
                ctypes.c_ulong(ident), ctypes.py_object(KeyboardInterrupt)
            )
        self._wait(self.patience)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while self.running and time.monotonic() < deadline:
            time.sleep(0.05)
