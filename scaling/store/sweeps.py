"""A sweep's folder: grid.json, the failure streak, and results.csv gathered from its points."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pandas as pd

from .files import atomic_write_text, read_json, write_json
from .points import COLUMNS, read_history, read_result, split_variant


def read_grid(sweep_dir: Path) -> list[dict]:
    try:
        return json.loads((Path(sweep_dir) / "grid.json").read_text())["points"]
    except (OSError, json.JSONDecodeError, KeyError):
        return []


def read_grid_info(sweep_dir: Path) -> dict:
    """grid.json's sweep name, command and preset text (the report, design suggest)."""
    with contextlib.suppress(OSError, json.JSONDecodeError):
        info = json.loads((Path(sweep_dir) / "grid.json").read_text())
        return {k: info.get(k, "") for k in ("sweep", "command", "preset")}
    return {}


def write_grid(
    out: Path, name: str, points: list[dict], command: str = "", preset: str = ""
) -> None:
    """grid.json: this sweep's points added to those already in the folder, the command and
    the preset's text. A point is ``point_id``, ``overrides``, ``label``, ``params``,
    ``role`` (point, packed: a seed trained with others, teacher: trained by its first
    student) and ``job`` (the first point of the job that trains it; none for a teacher)."""
    ids = {p["point_id"] for p in points}
    old = [p for p in read_grid(out) if p["point_id"] not in ids]
    write_json(Path(out) / "grid.json",
               {"sweep": name, "command": command, "preset": preset, "points": old + points})  # fmt: skip


LR_LAW = "lr_law.json"  # a tuned sweep's lr*(N) and each tuned size's runs (scaling.tuning)


def read_lr_law(sweep_dir: Path | None) -> dict | None:
    return None if sweep_dir is None else read_json(Path(sweep_dir) / LR_LAW)


STREAK = ".failure_streak"  # failures in a row, shared by the jobs of a sweep through the folder


def failure_streak(out: Path) -> int:
    try:
        return int((Path(out) / STREAK).read_text())
    except (OSError, ValueError):
        return 0


def record_outcome(out: Path, status: str | None) -> None:
    """Count a job's outcome into the streak (``None`` starts a new one)."""
    ok = status in (None, "ok")
    atomic_write_text(Path(out) / STREAK, "0" if ok else str(failure_streak(out) + 1))


def as_planned(row: dict, grid: dict) -> dict:
    """A finished run's row with what the plan (``grid.json``'s points by id) says it is for:
    a tuning run whose lr turned out best is the size's point at its tuned lr."""
    planned = grid.get(split_variant(row["point_id"])[0], {})
    return {**row, **{k: planned[k] for k in ("role", "lr_source") if planned.get(k)}}


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per point of the sweep: finished points from result.json, the rest of grid.json
    as pending."""
    sweep_dir = Path(sweep_dir)
    grid = {p["point_id"]: p for p in read_grid(sweep_dir)}
    rows, seen = [], set()
    for point_dir in sorted((sweep_dir / "points").glob("*")):
        row = read_result(point_dir)
        if row is not None:
            base, variant = split_variant(row["point_id"])
            planned = grid.get(base, {})
            name = planned.get("label")
            label = f"{name} {variant}" if name and variant else name
            rows.append({**as_planned(row, grid), "label": label})
            seen.add(row["point_id"])
    for pid, point in grid.items():
        if pid not in seen:
            seen.add(pid)
            pending = {"sweep": sweep_dir.name, "point_id": pid, "status": "pending"}
            rows.append({**pending, "params": point.get("params"), "label": point.get("label")})
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df.reindex(columns=COLUMNS + extra)


def write_results(sweep_dir: Path) -> pd.DataFrame:
    """Gather the sweep's rows into ``results.csv`` (atomically) and return them."""
    df = collect(sweep_dir)
    atomic_write_text(Path(sweep_dir) / "results.csv", df.to_csv(index=False))
    return df


def read_histories(sweep_dir: Path) -> dict:
    """point id -> its history.csv as a table, for every point that has one."""
    histories = {}
    for path in sorted(Path(sweep_dir).glob("points/*/history.csv")):
        h = read_history(path.parent)
        if h is not None:
            histories[path.parent.name] = h
    return histories
