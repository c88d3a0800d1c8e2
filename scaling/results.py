"""Point ids, atomic per-point files, and gathering a sweep into one table.

The contract every other piece reads: ``<sweep>/points/<point_id>/result.json``
holds one row (``COLUMNS``); ``<sweep>/results.csv`` is those rows together.
No torch here, so analysis works on any table.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import pandas as pd

COLUMNS = [
    "sweep", "point_id", "status", "error",
    "family", "dataset", "task",
    "params", "params_nonembedding",
    "train_examples", "train_tokens", "train_size", "steps", "batch_size", "lr", "seed", "world_size",
    "flops_per_step", "flops_total", "flops_6nd",
    "train_loss", "val_loss", "best_val_loss", "val_accuracy", "val_precision", "val_recall", "val_f1", "val_bpb", "val_r2",
    "wall_time_s", "throughput", "peak_memory_bytes", "model_bytes", "mfu",
    "device", "dtype", "torch_version", "started_at", "finished_at",
]  # fmt: skip
STATUSES = ("ok", "diverged", "oom", "failed", "interrupted")

# fields that do not change what a point computes, left out of its id
_DATA_PATHS = {"path", "root", "glob", "download"}
_TRAINER_KEPT = (
    "budget",
    "steps",
    "epochs",
    "tokens_per_param",
    "target_flops",
    "batch_size",
    "early_stop_patience",
    "seed",
)


def point_identity(cfg: dict, data_hash: str, device_type: str, dtype: str) -> dict:
    """What identifies a point: model, data (content hash for paths), optimizer, trainer numbers, device type, dtype."""
    data = {k: v for k, v in cfg["data"].items() if k not in _DATA_PATHS}
    return {
        "model": cfg["model"],
        "data": {**data, "content": data_hash},
        "optim": cfg["optim"],
        "trainer": {k: cfg["trainer"][k] for k in _TRAINER_KEPT},
        "device": device_type,
        "dtype": dtype,
    }


def point_id(identity: dict) -> str:
    """A short stable hash of a point's identity."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def atomic_write_text(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_result(point_dir: Path) -> dict | None:
    """The point's row, or None when it has no readable result.json (pending or torn)."""
    try:
        row = json.loads((Path(point_dir) / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return row if isinstance(row, dict) and row.get("status") in STATUSES else None


def read_grid(sweep_dir: Path) -> list[dict]:
    try:
        return json.loads((Path(sweep_dir) / "grid.json").read_text())["points"]
    except (OSError, json.JSONDecodeError, KeyError):
        return []


def collect(sweep_dir: Path) -> pd.DataFrame:
    """One row per point of the sweep: finished points from result.json, the rest of grid.json as pending."""
    sweep_dir = Path(sweep_dir)
    rows, seen = [], set()
    for point_dir in sorted((sweep_dir / "points").glob("*")):
        row = read_result(point_dir)
        if row is not None:
            rows.append(row)
            seen.add(row["point_id"])
    for point in read_grid(sweep_dir):
        if point["point_id"] not in seen:
            seen.add(point["point_id"])
            rows.append(
                {
                    "sweep": sweep_dir.name,
                    "point_id": point["point_id"],
                    "status": "pending",
                    "params": point.get("params"),
                }
            )
    df = pd.DataFrame(rows)
    extra = [c for c in df.columns if c not in COLUMNS]
    return df.reindex(columns=COLUMNS + extra)


def write_results(sweep_dir: Path) -> pd.DataFrame:
    """Gather the sweep's rows into ``results.csv`` (atomically) and return them."""
    df = collect(sweep_dir)
    atomic_write_text(Path(sweep_dir) / "results.csv", df.to_csv(index=False))
    return df
