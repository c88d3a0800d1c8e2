"""A learning rate per size, tuned within the sweep (``tune.lrs``).

A tuned sweep runs in two stages. First its tuning points: every lr of the grid at each of
the ``tune.sizes`` smallest sizes, ordinary points with ids and rows. Then the best lr of
each of those sizes (``analysis.lr``) gives lr*(N) = c·N^(-γ), and every size of the sweep
is trained at its own lr*(N), with, when ``tune.check`` asks, the largest size once more a
grid step either side. Both stages are deterministic in the rows on disk, so a re-run
finds the same points and resumes.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pandas as pd

from . import store
from .analysis.health import learned
from .analysis.lr import LRLaw, fit_lr_law, tune_table
from .config import compose as composing
from .errors import BadInput
from .planning import point_id

SIZE = "params_nonembedding"  # what lr*(N) is a function of
LAW_FILE = store.LR_LAW  # the fitted lr*(N) and each tuned size's runs, in the sweep folder


def tuning_stage(sweep) -> str | None:
    """Make a sweep that tunes its lr start with its tuning points: the grid's points wait in
    ``sweep.deferred`` for the fitted lr. Returns what will happen, in words (None, and the
    sweep left as it is, when it does not tune)."""
    tune = _tune(sweep)
    if tune is None:
        return None
    sizes = sorted({_size(job[0]) for job in sweep.jobs})
    tuned = tuned_sizes(sizes, tune)
    grid = [job for job in sweep.jobs if _size(job[0]) in tuned]
    if tune.pack:  # a size's lrs (and seeds) as one packed job
        jobs = [[with_lr(s, lr, "tuning") for lr in tune.lrs for s in job] for job in grid]
    else:
        jobs = [[with_lr(s, lr, "tuning") for s in job] for job in grid for lr in tune.lrs]
    teachers = [s for s in sweep.specs if s.role == "teacher"]
    sweep.deferred, sweep.jobs = sweep.jobs, [_as_job(job) for job in jobs]
    sweep.specs = teachers + [s for job in sweep.jobs for s in job]
    runs = sum(len(job) for job in sweep.jobs)
    packed = f", packed in {len(sweep.jobs)} jobs" if tune.pack else ""
    which = "smallest sizes" if tuned == set(sizes[: len(tuned)]) else "sizes up to the second largest"
    return (f"the lr is tuned first: {len(tune.lrs)} lrs at the {len(tuned)} {which} "
            f"({runs} runs{packed}); then all {len(sizes)} sizes at the fitted lr*(N)")  # fmt: skip


def tuned_sizes(sizes: list, tune) -> set:
    """The sizes that run the lr grid: the ``tune.sizes`` smallest, or with ``tune.spread``
    that many spaced evenly (by rank) from the smallest to the second largest, so lr*(N) is
    measured over most of the sweep's span and the largest stays out of it."""
    if not tune.spread or tune.sizes >= len(sizes) - 1:
        return set(sizes[: tune.sizes])
    below = sizes[:-1]
    return {below[int(round(i))] for i in np.linspace(0, len(below) - 1, tune.sizes)}


def tuned_stage(sweep) -> LRLaw:
    """After the tuning points: fit lr*(N) from their rows and plan every point of the grid at
    its size's lr (and the check beside the largest). The new points join ``sweep.specs`` and
    are its ``jobs``; BadInput when no tuning run finished."""
    tune = _tune(sweep)
    table = tuning_runs(sweep.out, sweep.specs)
    try:
        law = fit_lr_law(tune_table(table.dropna(subset=[SIZE, "lr"]), SIZE))
    except ValueError as e:
        raise BadInput(
            f"lr tuning: {e}; see the tuning points in {sweep.out}/results.csv"
        ) from None
    jobs = [[with_lr(s, law(_size(s)), "tuned") for s in job] for job in sweep.deferred]
    if tune.check:
        largest = max(jobs, key=lambda job: _size(job[0]))
        step = math.exp(math.log(max(tune.lrs) / min(tune.lrs)) / (len(tune.lrs) - 1))
        jobs += [[with_lr(s, s.lr * f, "tuning check") for s in largest] for f in (1 / step, step)]
    sweep.jobs = [_as_job(job) for job in jobs]
    # a tuning run whose lr is its size's tuned lr is that size's point, not trained again
    new = {s.point_id: s for job in sweep.jobs for s in job}
    sweep.specs = [s for s in sweep.specs if s.point_id not in new] + list(new.values())
    sweep.deferred = []
    store.write_json(sweep.out / LAW_FILE, law.record())  # what the report shows
    return law


def tuning_runs(out, specs) -> pd.DataFrame:
    """The rows of the tuning points among ``specs``: size, lr, val_loss and status. A run
    that never left its first loss (an lr past stability, stuck at chance) counts as failed,
    status ``no learning``: it is not on the bowl the parabola is fitted to."""
    rows = []
    for spec in (s for s in specs if s.role == "tuning"):
        folder = store.point_folder(out, spec.point_id)
        r = store.read_result(folder) or {}
        status = r.get("status") if learned(store.read_history(folder)) else "no learning"
        rows.append({SIZE: r.get(SIZE), "lr": r.get("lr"), "val_loss": r.get("val_loss"),
                     "status": status})  # fmt: skip
    return pd.DataFrame(rows, columns=[SIZE, "lr", "val_loss", "status"])


def with_lr(spec, lr: float, source: str):
    """The planned point at another peak lr (nothing else about it changes)."""
    lr = float(f"{lr:.4g}")
    cfg = replace(spec.cfg, optim=replace(spec.cfg.optim, lr=lr))
    overrides = (*composing.without(list(spec.overrides), ("optim.lr",)), f"optim.lr={lr:g}")
    label = f"{re.sub(r' ?lr=[^ ]+', '', spec.label)} lr={lr:g}".removeprefix("default ").strip()
    role = spec.role if source == "tuned" else "tuning"
    return replace(spec, cfg=cfg, point_id=point_id(cfg), overrides=overrides, label=label,
                   lr=lr, lr_source=source, role=role)  # fmt: skip


def _as_job(specs: list) -> list:
    return [replace(s, job=specs[0].point_id) for s in specs]


def _size(spec) -> int:
    return spec.params["nonembedding"]


def _tune(sweep):
    first = next((s for s in sweep.specs if s.role != "teacher"), None)
    return first.cfg.tune if first is not None and first.cfg.tune.on else None
