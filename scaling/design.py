"""`scale design`: a grid's points planned without training them, and the next points of a
finished study as a preset that `scale sweep` runs as is.

A grid is planned as a sweep is (compose, validate, count parameters and FLOPs, the tuning
stage), and nothing is written. A finished study's candidates are its grid's points with
the swept value changed (between its sizes, and beyond the largest up to a target) or the
same point at another seed; each is composed and counted, so its N, D and FLOPs are exact.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from . import store
from .config import compose as composing
from .planning import plan_points, plan_sweep
from .training.device import resolve_device
from .training.runner import time_point
from .tuning import tuning_stage

OVERHEAD_S = 0.2  # a point's start and end beside its steps (benchmarks/sweep_overhead.py)
IGNORED = ("optim.lr", "trainer.seed")  # not sizes: set by tuning, or repeats of a point


def _row(spec) -> dict:
    d = spec.steps * spec.examples_per_step
    budget = spec.cfg.trainer.target_flops if spec.cfg.trainer.budget == "flops" else None
    return {"params": spec.params["total"], "params_nonembedding": spec.params["nonembedding"],
            "d": d, "flops": spec.flops["total"] * spec.steps, "budget": budget,
            "overrides": list(spec.overrides), "role": spec.role}  # fmt: skip


def _planned(name: str, preset: Path | None, overrides: list[str]) -> tuple[list, list]:
    """The points a sweep would train, planned: (the lr tuning runs, with the check's two at
    the largest size, and the grid's points). BadInput for a bad preset or override."""
    sweep = plan_sweep(name, preset, overrides, Path("outputs") / name)
    tuning_stage(sweep)
    first = [s for s in sweep.specs if s.role != "teacher"]
    if not sweep.deferred:
        return [], first
    grid = [s for job in sweep.deferred for s in job]
    if grid[0].cfg.tune.check:  # the largest size twice more, beside its lr
        largest = max(grid, key=lambda s: s.params["total"])
        first += [
            replace(largest, role="tuning", label=f"{largest.label} check", job=f"check {k}")
            for k in (1, 2)
        ]  # each its own job
    return first, grid


def dry_run(name: str, preset: Path | None, overrides: list[str]) -> pd.DataFrame:
    """Every point the sweep would train (tuning runs first), planned, with its time and peak
    memory estimated from a few timed steps of each distinct job on this machine: a pack
    (packed seeds, a packed lr grid) is timed packed, and its time shared by its points."""
    tuning, grid = _planned(name, preset, overrides)
    jobs: dict = {}
    for s in tuning + grid:
        jobs.setdefault(s.job or s.point_id, []).append(s)
    timed, rows = {}, []
    for job in jobs.values():
        s, k = job[0], len(job)
        key = json.dumps([asdict(s.cfg.model), asdict(s.cfg.data), s.cfg.trainer.batch_size, k],
                         sort_keys=True, default=str)  # fmt: skip
        if key not in timed:
            timed[key] = _time(job)
        t = timed[key]
        evals = s.steps // s.cfg.trainer.eval_interval + 1
        share = (s.steps * t["step_s"] + k * evals * t["eval_s"] + OVERHEAD_S) / k
        for member in job:
            rows.append(_row(member) | {"label": member.label, "steps": member.steps,
                                        "device": resolve_device(member.cfg.trainer.device).type,
                                        "flops_per_step": member.flops["total"], "time_s": share,
                                        "peak_memory_bytes": t["peak_memory_bytes"]})  # fmt: skip
    return pd.DataFrame(rows)


def _time(job: list) -> dict:
    """A job's time from a few timed steps here. A point of a process group (trainer.nproc,
    fsdp) has no group in this process: it is timed as one process, its step's time shared
    by its nproc processes as if it scaled perfectly."""
    tr = job[0].cfg.trainer
    if not tr.group:
        return time_point(job, steps=21, warmup=5)
    alone = replace(tr, nproc=1, fsdp=False)
    t = time_point([replace(s, cfg=replace(s.cfg, trainer=alone)) for s in job], steps=21, warmup=5)
    return t | {"step_s": t["step_s"] / tr.nproc}


def plan_grid(name: str, preset: Path | None, overrides: list[str]) -> tuple[pd.DataFrame, float]:
    """The grid's points planned (one row each: params, d, flops, budget, overrides) and the
    FLOPs of the lr tuning that comes first; BadInput for a bad preset or override."""
    tuning, grid = _planned(name, preset, overrides)
    return pd.DataFrame([_row(s) for s in grid]), float(sum(_row(s)["flops"] for s in tuning))


def _points(out: Path) -> list[dict]:
    """The study's trained points (grid.json), tuned lrs left to the tuning stage."""
    return [p for p in store.read_grid(out) if p.get("role") in ("point", "packed")]


def _own(point: dict) -> list[str]:
    keys = ("optim.lr",) if point.get("lr_source") == "tuned" else ()
    return composing.without(list(point["overrides"]), keys)


def axis(out: Path) -> tuple[str, list]:
    """The swept size setting of a study and its values, sorted (one setting only)."""
    grid = [composing.without(_own(p), IGNORED) for p in _points(out)]
    keys = sorted(composing.varying_keys(grid)) if len(grid) > 1 else []
    if len(keys) != 1:
        raise ValueError(f"the study's points vary in {len(keys)} settings ({', '.join(keys)}); "
                         "suggest extends a study that sweeps one size setting")  # fmt: skip
    values = {o.partition("=")[2] for p in grid for o in p if composing.key_of(o) == keys[0]}
    return keys[0], sorted(values, key=float)


def _preset_of(out: Path) -> Path | None:
    """The preset the study was swept with, as grid.json keeps its text (the file may have
    changed since), written to a folder of its own."""
    info = store.read_grid_info(out)
    if not info.get("preset"):
        return None
    path = Path(tempfile.mkdtemp(prefix="scale-design-")) / "sweeps" / f"{info['sweep']}.yaml"
    path.parent.mkdir()
    path.write_text(info["preset"])
    return path


def candidates(out: Path, reach: float) -> pd.DataFrame:
    """Points the study could run next, planned: its swept value between each pair of sizes
    above those the lr was tuned at, and beyond the largest (× √2 steps) until the parameters
    reach ``reach``; and each of its sizes again at a new seed. Rows as ``plan_grid``'s,
    with ``kind`` (new size, or repeat)."""
    preset = _preset_of(out)
    key, values = axis(out)
    points = _points(out)
    template = next(p for p in points if any(o == f"{key}={values[-1]}" for o in _own(p)))
    tuned = [p["params"] for p in store.read_grid(out) if p.get("role") == "tuning"]
    floor = max(tuned, default=0)
    rows = []
    with composing.hydra_context():
        for value, kind in _new_values(values, points, key, floor, reach, template):
            point = [o if composing.key_of(o) != key else f"{key}={value}" for o in _own(template)]
            cfg = composing.compose(point, preset, ["sweep=design", f"out={out}"])
            rows += [
                _row(s) | {"kind": kind} for s in plan_points(cfg, point) if s.role != "teacher"
            ]
        seed = 1 + max((_seed(p) for p in points), default=0)
        repeats = {
            tuple(composing.without(_own(p), ("trainer.seed",))): p["params"] for p in points
        }
        for own, params in repeats.items():
            if params > floor or not tuned:
                point = [*own, f"trainer.seed={seed}"]
                cfg = composing.compose(point, preset, ["sweep=design", f"out={out}"])
                rows += [_row(s) | {"kind": "repeat"} for s in plan_points(cfg, point)]
    return pd.DataFrame(rows)


def _seed(point: dict) -> int:
    return max((int(o.partition("=")[2]) for o in point["overrides"]
                if composing.key_of(o) == "trainer.seed"), default=0)  # fmt: skip


def _new_values(values, points, key, floor, reach, template):
    """New values of the swept setting: midpoints above the tuned sizes, and √2 steps past
    the largest until the parameters (growing as the value's power p, measured) pass reach."""
    sizes = {o.partition("=")[2]: p["params"] for p in points for o in _own(p)
             if composing.key_of(o) == key}  # fmt: skip
    integer = all(float(v).is_integer() for v in values)
    fmt = (lambda v: str(round(v))) if integer else (lambda v: f"{v:.4g}")  # noqa: E731
    new = [fmt(math.sqrt(float(a) * float(b))) for a, b in zip(values, values[1:])
           if sizes[a] >= floor]  # fmt: skip
    a, b = float(values[-2]), float(values[-1])
    power = math.log(sizes[values[-1]] / sizes[values[-2]]) / math.log(b / a)
    v, beyond = b, []
    while sizes[values[-1]] * (v / b) ** power < reach * 1.01:
        v *= math.sqrt(2)
        beyond.append(fmt(v))
    out = [(fmt(b * b / a), "next size")]  # the grid's own next step
    out += [(v, "new size") for v in dict.fromkeys(new + beyond)]
    seen = set(sizes)
    return [(v, kind) for v, kind in out if v not in seen and not seen.add(v)]


def next_preset(out: Path, picks: list[dict], path: Path) -> str:
    """Write the study's points and the picks as one preset of explicit points, whose name is
    ``path``'s stem; returns the command that trains the new points into the study's folder."""
    info = store.read_grid_info(out)
    base = OmegaConf.create(info.get("preset") or "{}")
    if OmegaConf.select(base, "hydra.sweeper.params") is not None:
        del base.hydra.sweeper["params"]
    if OmegaConf.select(base, "tune.check"):
        base.tune.check = False  # the pilot checked its lr; new sizes take the fitted lr*(N)
    points = [_own(p) for p in _points(out)] + [pick["overrides"] for pick in picks]
    base.points = [dict(o.split("=", 1) for o in point) for point in points]
    header = (f"# @package _global_\n# {out.name} and {len(picks)} points chosen by "
              "`scale design suggest`, every point listed.\n")  # fmt: skip
    store.atomic_write_text(path, header + OmegaConf.to_yaml(base))
    return f"scale sweep {path.stem} --out {out}"
