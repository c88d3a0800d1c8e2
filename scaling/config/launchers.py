"""What a sweep's Hydra launcher allows its points, checked before anything trains: each is
one clear line (``BadInput``)."""

from __future__ import annotations

from ..errors import BadInput


def threads(launcher: dict) -> bool:
    """Whether the launcher runs its jobs as threads of this process (hydra/launcher=threads)."""
    return str(launcher.get("_target_", "")).endswith("ThreadsLauncher")


def check_threads(launcher: dict, job) -> None:
    """The threads launcher runs every job in this process, which has one working directory and
    one environment (Hydra's ``job`` settings may change neither); it needs a thread or more."""
    if not threads(launcher):
        return
    n_jobs = launcher.get("n_jobs")
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise BadInput(f"hydra.launcher.n_jobs={n_jobs}: hydra/launcher=threads needs 1 or more")
    if job.chdir or job.env_set:
        raise BadInput(f"hydra.job.{'chdir' if job.chdir else 'env_set'}: hydra/launcher=threads "
                       "runs every job in one process, one working directory, one environment")  # fmt: skip


def check_thread_safe(cfg, launcher: dict) -> None:
    """A model trained in threads of one process (a point or its teacher) cannot use
    torch.compile (dynamo is not thread safe) or torch.profiler (one profiler a process)."""
    unsafe = [k for k in ("compile", "profile") if getattr(cfg.trainer, k)]
    if unsafe and threads(launcher):
        raise BadInput(f"trainer.{unsafe[0]}: hydra/launcher=threads runs points as threads of one "
                       "process, where it cannot run; use hydra/launcher=local")  # fmt: skip


def check_point(cfg, launcher: dict) -> None:
    """A point under a launcher that runs each point as several tasks (submitit's
    ``tasks_per_node``): those tasks are the point's process group, their number must be
    ``trainer.nproc``, and they cannot train its teacher."""
    tasks = (launcher.get("nodes") or 1) * (launcher.get("tasks_per_node") or 1)
    if tasks == 1:
        return
    if tasks != cfg.trainer.nproc:
        raise BadInput(f"hydra.launcher runs each point as {tasks} tasks (nodes × tasks_per_node), "
                       f"trainer.nproc={cfg.trainer.nproc}: set them equal")  # fmt: skip
    if cfg.distill.trains_teacher:
        raise BadInput("distill.teacher_overrides: a point's tasks cannot train its teacher; train "
                       "the teacher first (trainer.save_model=true) and give distill.teacher=PATH")  # fmt: skip
