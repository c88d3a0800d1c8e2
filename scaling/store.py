"""The file contract of a study: what is written where, and how it is read back.

A sweep folder holds ``grid.json`` (every point planned, with its overrides, label and
size), ``points/<point_id>/`` per point (config.yaml, history.csv, result.json, and while
it trains checkpoint.pt) and ``results.csv``, the rows gathered. Every file is written
here, atomically, and read here; nothing else parses them. No torch here, so analysis
works on any table.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from filelock import FileLock, Timeout

from .errors import BadInput

COLUMNS = [
    "sweep", "point_id", "status", "error",
    "family", "dataset", "task",
    "params", "params_nonembedding",
    "train_examples", "train_tokens", "train_size", "steps", "batch_size", "lr", "seed", "world_size",
    "micro_batch_size", "grad_accum",
    "flops_per_step", "flops_total", "flops_6nd",
    "train_loss", "val_loss", "best_val_loss", "val_accuracy", "val_precision", "val_recall", "val_f1", "val_bpb", "val_r2",
    "wall_time_s", "throughput", "peak_memory_bytes", "model_bytes", "mfu",
    "compression", "compress_level", "sparsity", "params_nonzero", "flops_teacher_per_step",
    "flops_recompute_per_step",
    "device", "dtype", "torch_version", "started_at", "finished_at",
]  # fmt: skip
STATUSES = ("ok", "diverged", "oom", "failed", "interrupted")
FAILED = ("failed", "diverged", "oom")  # retried only when asked
HISTORY_COLUMNS = ("step", "train_loss", "val_loss", "val_accuracy", "lr", "examples", "tokens",
                   "wall_s")  # fmt: skip
SETTINGS = ("model", "data", "optim", "trainer", "distill", "compress")  # the row's dotted columns

# ---------------------------------------------------------------- identity

# fields that do not change what a point computes, left out of its id
_DATA_PATHS = {"path", "root", "glob", "download"}
_TRAINER_KEPT = ("budget", "steps", "epochs", "tokens_per_param", "target_flops", "batch_size",
                 "early_stop_patience", "seed")  # fmt: skip


def point_identity(cfg: dict, data_hash: str, device_type: str, dtype: str) -> dict:
    """What identifies a point: model, data (content hash for paths), optimizer, trainer
    numbers, device type, dtype; studies beyond size only when they are on."""
    data = {k: v for k, v in cfg["data"].items() if k not in _DATA_PATHS}
    # how a point is computed (activation checkpointing) is not what it computes
    model = {k: v for k, v in cfg["model"].items() if k != "checkpoint_activations"}
    identity = {
        "model": model,
        "data": {**data, "content": data_hash},
        "optim": cfg["optim"],
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


# ---------------------------------------------------------------- writing


def atomic_write(path: Path, write: Callable, binary: bool = False) -> None:
    """``write(file)`` into a temporary file in the same folder, then rename it to ``path``:
    readers never see half a file, and a kill mid-write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; results are for everyone who reads
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def read_json(path: Path):
    """A JSON file's content, or None when it is missing or torn."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def lock(path: Path, timeout: float = -1) -> FileLock:
    """A lock file shared by the processes of one machine (``with lock(p): …``); released if
    its holder dies. ``timeout=0`` makes ``acquire()`` raise ``Timeout`` when it is held."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path), timeout=timeout)


def try_lock(path: Path) -> FileLock | None:
    """The lock at ``path``, held, or None when another process holds it."""
    held = lock(path, timeout=0)
    try:
        held.acquire()
    except Timeout:
        return None
    return held


# ---------------------------------------------------------------- one point's folder


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


def last_history(point_dir: Path) -> dict | None:
    """The last evaluation a running point recorded, or None."""
    try:
        h = pd.read_csv(Path(point_dir) / "history.csv")
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return h.iloc[-1].to_dict() if len(h) else None


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


# ---------------------------------------------------------------- the sweep's folder


def read_grid(sweep_dir: Path) -> list[dict]:
    try:
        return json.loads((Path(sweep_dir) / "grid.json").read_text())["points"]
    except (OSError, json.JSONDecodeError, KeyError):
        return []


def read_grid_info(sweep_dir: Path) -> dict:
    """grid.json's command and preset text, for the report."""
    with contextlib.suppress(OSError, json.JSONDecodeError):
        info = json.loads((Path(sweep_dir) / "grid.json").read_text())
        return {"command": info.get("command", ""), "preset": info.get("preset", "")}
    return {}


def write_grid(
    out: Path, name: str, points: list[dict], command: str = "", preset: str = ""
) -> None:
    """grid.json: this sweep's points added to those already in the folder, the command and
    the preset's text. A point is ``point_id``, ``overrides``, ``label``, ``params`` and
    ``job``: the job that trains it (several seeds of a pack share one; a study's teacher
    has ``trained_by``, the job of its first student, instead)."""
    ids = {p["point_id"] for p in points}
    old = [p for p in read_grid(out) if p["point_id"] not in ids]
    write_json(Path(out) / "grid.json",
               {"sweep": name, "command": command, "preset": preset, "points": old + points})  # fmt: skip


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
            name = grid.get(base, {}).get("label")
            rows.append({**row, "label": f"{name} {variant}" if name and variant else name})
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
        try:
            h = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
            continue
        if len(h):
            histories[path.parent.name] = h
    return histories


# ---------------------------------------------------------------- a study's table


@dataclass
class Table:
    """A study's points, read from a sweep folder or a CSV/Parquet file."""

    all: pd.DataFrame  # every row, whatever its status
    ok: pd.DataFrame  # the rows to analyse: status ok, needed columns numeric and positive
    out: Path  # where analysis outputs go
    sweep_dir: Path | None  # the sweep folder, when the input is one
    excluded: dict  # reason -> rows left out


def find_study(target: str) -> Path:
    """A sweep folder, a sweep name under outputs/, or a file."""
    path = Path(target)
    if not path.exists() and (Path("outputs") / target).is_dir():
        path = Path("outputs") / target
    if not path.exists():
        raise BadInput(f"no sweep folder or file at '{target}'")
    return path


def _read_table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:  # noqa: BLE001 - pandas raises many kinds for a bad file
        raise BadInput(f"cannot read {path}: {str(e).splitlines()[0]}") from None


def load_table(target: str, needed: list[str]) -> Table:
    """Read a study and keep the rows that can be analysed; a table unfit for analysis is BadInput.

    Rows whose status is not ok are left out and counted; so are compressed and distilled
    rows (they have their own report sections) and rows where a needed column is empty.
    A needed column that is missing, non-numeric or not positive is an error.
    """
    path = find_study(target)
    if path.is_dir():
        df, out, sweep_dir = collect(path), path, path
    else:
        df, out, sweep_dir = _read_table(path), path.with_name(f"{path.stem}_analysis"), None
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise BadInput(f"{path} has no column {', '.join(missing)}; "
                       f"columns: {', '.join(map(str, df.columns))}")  # fmt: skip
    excluded, ok = {}, df
    if "status" in df.columns:
        for status, count in df.loc[df["status"] != "ok", "status"].value_counts().items():
            excluded[f"status {status}"] = int(count)
        ok = df[df["status"] == "ok"]
    for column, reason in (("compression", "compressed variant"), ("distill.alpha", "distilled")):
        if column in ok.columns:
            other = ok[column].notna() & ~ok[column].isin(["none", 0, 0.0])
            if other.any():
                excluded[reason] = int(other.sum())
                ok = ok[~other]
    ok = _numeric(ok, needed, excluded)
    if ok.empty:
        raise BadInput(f"{path} has no rows to analyse")
    return Table(all=df, ok=ok, out=out, sweep_dir=sweep_dir, excluded=excluded)


def _numeric(ok: pd.DataFrame, needed: list[str], excluded: dict) -> pd.DataFrame:
    for c in needed:
        values = pd.to_numeric(ok[c], errors="coerce")
        bad_text = values.isna() & ok[c].notna()
        if bad_text.any():
            raise BadInput(f"column {c} has {int(bad_text.sum())} non-numeric values, "
                           f"e.g. {ok.loc[bad_text, c].iloc[0]!r}")  # fmt: skip
        if (values <= 0).any():
            raise BadInput(f"column {c} has {int((values <= 0).sum())} values ≤ 0; "
                           "a log-log fit needs positive values")  # fmt: skip
        if values.isna().any():
            excluded[f"no {c}"] = int(values.isna().sum())
        ok = ok.assign(**{c: values})[values.notna()]
    return ok
