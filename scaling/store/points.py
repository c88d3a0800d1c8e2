"""One point: its id, its row's columns, and its folder's files (result.json, history.csv,
checkpoint.pt, model.pt, the failures a group's ranks leave)."""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path

import pandas as pd

from .files import atomic_write_text, write_json

COLUMNS = [
    "sweep", "point_id", "status", "error",
    "family", "dataset", "task",
    "params", "params_nonembedding",
    "train_examples", "train_tokens", "train_size", "steps", "batch_size", "lr", "lr_source", "role", "branch_start", "seed", "world_size",
    "micro_batch_size", "grad_accum",
    "flops_per_step", "flops_total", "flops_6nd",
    "train_loss", "val_loss", "best_val_loss", "val_accuracy", "val_precision", "val_recall", "val_f1", "val_bpb", "val_r2",
    "forecast_loss", "forecast_lo", "forecast_hi", "forecast_step", "forecast_refs",
    "forecast_law", "forecast_law_lo", "forecast_law_hi",
    "wall_time_s", "throughput", "peak_memory_bytes", "model_bytes", "mfu",
    "compression", "compress_level", "sparsity", "params_nonzero", "flops_teacher_per_step",
    "flops_recompute_per_step",
    "device", "dtype", "torch_version", "started_at", "finished_at",
]  # fmt: skip
STATUSES = ("ok", "failed", "oom", "diverged", "interrupted", "hopeless")
PLAN = "plan.txt"  # a point's one-line plan, left for the progress display to print
WATCHED = "SCALING_PROGRESS"  # set while a progress display watches the sweep's folder
FAILED = ("failed", "diverged", "oom")  # retried only when asked
HISTORY_COLUMNS = ("step", "train_loss", "val_loss", "val_accuracy", "lr", "examples", "tokens",
                   "wall_s")  # fmt: skip
SETTINGS = ("model", "data", "optim", "trainer", "distill", "compress")  # the row's dotted columns


# fields that do not change what a point computes, left out of its id
_DATA_PATHS = {"path", "root", "glob", "download"}
_WSD = ("decay", "decay_shape")  # optim fields only a wsd schedule reads
_TRAINER_KEPT = ("budget", "steps", "epochs", "tokens_per_param", "target_flops", "batch_size",
                 "early_stop_patience", "seed")  # fmt: skip


def point_identity(cfg: dict, data_hash: str, device_type: str, dtype: str) -> dict:
    """What identifies a point: model, data (content hash for paths), optimizer, trainer
    numbers, device type, dtype; studies beyond size only when they are on."""
    data = {k: v for k, v in cfg["data"].items() if k not in _DATA_PATHS}
    # how a point is computed (activation checkpointing) is not what it computes
    model = {k: v for k, v in cfg["model"].items() if k != "checkpoint_activations"}
    # settings at their defaults that change nothing (the wsd decay of another schedule) are
    # left out, so that adding such a setting leaves every id as it was
    optim = {k: v for k, v in cfg["optim"].items()
             if not (k in _WSD and cfg["optim"]["schedule"] != "wsd") and not (k == "warmup_steps" and v is None)}  # fmt: skip
    identity = {
        "model": model,
        "data": {**data, "content": data_hash},
        "optim": optim,
        "trainer": {k: cfg["trainer"][k] for k in _TRAINER_KEPT},
        "device": device_type,
        "dtype": dtype,
    }
    if cfg.get("compress", {}).get("method", "none") != "none":
        identity["compress"] = cfg["compress"]
    if cfg.get("distill", {}).get("alpha", 0) > 0:
        identity["distill"] = cfg["distill"]
    return identity


def point_id(identity: dict) -> str:
    """A short stable hash of a point's identity."""
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def variant_id(base: str, name: str) -> str:
    """The id of a variant of a trained point (a compression level): ``<base>~<name>``."""
    return f"{base}~{name}"


def split_variant(pid: str) -> tuple[str, str]:
    """(the trained point's id, the variant's name or '')."""
    base, _, variant = str(pid).partition("~")
    return base, variant


def point_folder(out: Path, pid: str) -> Path:
    return Path(out) / "points" / pid


def read_result(point_dir: Path) -> dict | None:
    """The point's row, or None when it has no readable result.json (pending or torn)."""
    try:
        row = json.loads((Path(point_dir) / "result.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return row if isinstance(row, dict) and row.get("status") in STATUSES else None


def write_result(point_dir: Path, row: dict) -> None:
    write_json(Path(point_dir) / "result.json", row)


def needs_training(row: dict | None, retry_failed: bool = False) -> bool:
    """Whether a point with this result trains again: none yet, interrupted, or failed when asked."""
    return row is None or row["status"] == "interrupted" or (retry_failed and row["status"] != "ok")


def write_history(point_dir: Path, history: list[dict]) -> None:
    lines = [",".join(HISTORY_COLUMNS)]
    for h in history:
        cells = ("" if h[c] is None else repr(h[c]) if isinstance(h[c], float) else str(h[c])
                 for c in HISTORY_COLUMNS)  # fmt: skip
        lines.append(",".join(cells))
    atomic_write_text(Path(point_dir) / "history.csv", "\n".join(lines) + "\n")


def read_history(point_dir: Path) -> pd.DataFrame | None:
    """A point's history.csv as a table, or None when it has no readable one."""
    try:
        h = pd.read_csv(Path(point_dir) / "history.csv")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return h if len(h) else None


def last_history(point_dir: Path) -> dict | None:
    """The last evaluation a running point recorded, or None."""
    h = read_history(point_dir)
    return None if h is None else h.iloc[-1].to_dict()


def checkpoint_path(point_dir: Path) -> Path:
    return Path(point_dir) / "checkpoint.pt"


def model_path(point_dir: Path) -> Path:
    return Path(point_dir) / "model.pt"


def settings_columns(container: dict) -> dict:
    """A point's settings as dotted columns (``model.width``, ``trainer.steps``, …)."""
    out = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif not isinstance(v, list):
                out[f"{prefix}{k}"] = v

    walk({k: container[k] for k in SETTINGS}, "")
    return out


def new_row(settings: dict, **values) -> dict:
    """A row with every column present (empty where it does not apply), then its settings."""
    return dict.fromkeys(COLUMNS) | values | settings


# what a failed rank of a process group leaves in the point's folder for rank 0
FAILURE = ".rank{}_failure.json"


def record_failure(point_dir: Path, rank: int, status: str, error: str) -> None:
    text = json.dumps({"rank": rank, "status": status, "error": error})
    atomic_write_text(Path(point_dir) / FAILURE.format(rank), text)


def first_failure(point_dir: Path) -> tuple[str, str] | None:
    """Status and error of the lowest rank that left its failure in the point's folder."""
    found = []
    for path in Path(point_dir).glob(FAILURE.format("*")):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    if not found:
        return None
    first = min(found, key=lambda failure: failure["rank"])
    return first["status"], f"rank {first['rank']}: {first['error']}"


def clear_failures(point_dir: Path, rank: int | str = "*") -> None:
    """Remove the failures ranks left (one rank's, or all): an earlier run's are not this one's."""
    for path in Path(point_dir).glob(FAILURE.format(rank)):
        path.unlink(missing_ok=True)
