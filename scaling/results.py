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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

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
    # studies beyond size change a point only when they are on (older ids stay valid)
    if cfg.get("compress", {}).get("method", "none") != "none":
        identity["compress"] = cfg["compress"]
    if cfg.get("distill", {}).get("alpha", 0) > 0:
        identity["distill"] = cfg["distill"]
    return identity


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
        os.fchmod(
            fd, 0o666 & ~_umask()
        )  # mkstemp makes 0600; results are for everyone who may read them
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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
    grid = {p["point_id"]: p for p in read_grid(sweep_dir)}
    rows, seen = [], set()
    for point_dir in sorted((sweep_dir / "points").glob("*")):
        row = read_result(point_dir)
        if row is not None:
            base, _, variant = row["point_id"].partition("~")  # a compressed variant's row
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


class BadInput(ValueError):
    """A mistake in what the user asked for: reported in one line, exit code 2."""


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


def load_table(target: str, needed: list[str]) -> Table:
    """Read a study and keep the rows that can be analysed; a table unfit for analysis is BadInput.

    Rows whose status is not ok are left out and counted; so are rows where a needed
    column is empty. A needed column that is missing, non-numeric or not positive is an error.
    """
    path = find_study(target)
    if path.is_dir():
        df, out, sweep_dir = collect(path), path, path
    else:
        try:
            df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except Exception as e:  # noqa: BLE001 - pandas raises many kinds for a bad file
            raise BadInput(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        out, sweep_dir = path.with_name(f"{path.stem}_analysis"), None
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise BadInput(
            f"{path} has no column {', '.join(missing)}; columns: {', '.join(map(str, df.columns))}"
        )
    excluded, ok = {}, df
    if "status" in df.columns:
        for status, count in df.loc[df["status"] != "ok", "status"].value_counts().items():
            excluded[f"status {status}"] = int(count)
        ok = df[df["status"] == "ok"]
    # size laws are fitted on models as trained; compressed and distilled rows have their own sections
    for column, reason in (("compression", "compressed variant"), ("distill.alpha", "distilled")):
        if column in ok.columns:
            other = ok[column].notna() & ~ok[column].isin(["none", 0, 0.0])
            if other.any():
                excluded[reason] = int(other.sum())
                ok = ok[~other]
    for c in needed:
        values = pd.to_numeric(ok[c], errors="coerce")
        bad_text = values.isna() & ok[c].notna()
        if bad_text.any():
            raise BadInput(
                f"column {c} has {int(bad_text.sum())} non-numeric values, e.g. {ok.loc[bad_text, c].iloc[0]!r}"
            )
        if (values <= 0).any():
            raise BadInput(
                f"column {c} has {int((values <= 0).sum())} values ≤ 0; a log-log fit needs positive values"
            )
        if values.isna().any():
            excluded[f"no {c}"] = int(values.isna().sum())
        ok = ok.assign(**{c: values})[values.notna()]
    if ok.empty:
        raise BadInput(f"{path} has no rows to analyse")
    return Table(all=df, ok=ok, out=out, sweep_dir=sweep_dir, excluded=excluded)


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
