"""Running planned points: here (``jobs``), as torchrun groups (``torchrun``) and through
Hydra's launchers (``hydra``), with each job's share of the machine (``resources``)."""

from __future__ import annotations

from pathlib import Path

from .. import store
from ..config.presets import find_preset
from ..planning import plan_sweep
from ..tuning import tuned_stage, tuning_stage
from .hydra import launch
from .jobs import pending, train_job, train_point, write_grid


def run_sweep(preset: str = "mlp_width", overrides=(), out=None, retry_failed: bool = False,
              max_failures: int | None = None):  # fmt: skip
    """Plan and train a sweep, as ``scale sweep`` does without its display; its results table.

    Args:
        preset: a preset's name (``./sweeps/NAME.yaml``, then the packaged ones).
        overrides: Hydra overrides (comma lists and ``range()`` make a grid).
        out: the sweep folder (default: outputs/PRESET).
        retry_failed: train failed, oom and diverged points again.
        max_failures: stop launching after this many failures in a row.

    Returns:
        results.csv as a DataFrame (one row per point, pending ones included).
    """
    path = find_preset(preset)
    out = Path(out or Path("outputs") / preset).resolve()
    sweep = plan_sweep(preset, path, list(overrides), out)
    tuning_stage(sweep)
    command = "scale sweep " + " ".join([preset, *overrides])
    write_grid(sweep, command, path)
    _, jobs = pending(sweep, retry_failed)
    if jobs:
        launch(sweep, jobs, max_failures)
    if sweep.deferred:  # the lr is tuned: the grid's points at the fitted lr*(N)
        tuned_stage(sweep)
        write_grid(sweep, command, path)
        _, jobs = pending(sweep, retry_failed)
        if jobs:
            launch(sweep, jobs, max_failures)
    return store.write_results(out)


__all__ = ["launch", "pending", "run_sweep", "train_job", "train_point", "write_grid"]
