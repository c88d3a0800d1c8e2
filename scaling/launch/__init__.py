"""Running planned points: here (``jobs``), as torchrun groups (``torchrun``) and through
Hydra's launchers (``hydra``), with each job's share of the machine (``resources``)."""

from __future__ import annotations

from pathlib import Path

from .. import store
from ..config.presets import find_preset
from ..errors import BadInput
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

    Raises:
        BadInput: a bad preset or override, or a tuned lr that no tuning run could fit.
    """
    path = find_preset(preset)
    out = Path(out or Path("outputs") / preset).resolve()
    sweep = plan_sweep(preset, path, list(overrides), out)
    tuning_stage(sweep)

    def stage(sweep) -> bool:
        _, jobs = pending(sweep, retry_failed)
        if jobs:
            launch(sweep, jobs, max_failures)
        return False

    _, _, error = train_stages(sweep, "scale sweep " + " ".join([preset, *overrides]), path, stage)
    if error:
        raise BadInput(error)
    return store.write_results(out)


def train_stages(
    sweep, command: str, preset: Path | None, stage
) -> tuple[bool, object, str | None]:
    """Train a sweep in its stages: where it tunes its lr, the tuning runs, then every size at
    the lr fitted from them (``scaling.tuning``); else its points. ``stage(sweep)`` launches
    what of the sweep's jobs is pending and says whether Ctrl-C interrupted it.

    Returns (interrupted, the fitted LRLaw or None, why no lr could be fitted or None).
    """
    write_grid(sweep, command, preset)
    interrupted = stage(sweep)
    if interrupted or not sweep.deferred:
        return interrupted, None, None
    try:
        law = tuned_stage(sweep)
    except BadInput as e:
        return False, None, str(e)
    write_grid(sweep, command, preset)
    return stage(sweep), law, None


__all__ = ["launch", "pending", "run_sweep", "train_job", "train_point", "train_stages",
           "write_grid"]  # fmt: skip
