"""A study's table, from a sweep folder or any CSV or Parquet file, with the rows fit to analyse."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import BadInput
from .sweeps import collect

TUNING = ("tuning", "tuning check")  # lr_source of a tuning run: the lr section reports it


def is_tuning(df: pd.DataFrame) -> pd.Series:
    """The rows that are lr tuning runs (role ``tuning``, or a tuning lr_source)."""
    tuning = pd.Series(False, index=df.index)
    if "role" in df:
        tuning |= df["role"].eq("tuning")
    if "lr_source" in df:
        tuning |= df["lr_source"].isin(TUNING)
    return tuning


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
    studies = {
        reason: ok[column].notna() & ~ok[column].isin(["none", 0, 0.0])
        for column, reason in (
            ("compression", "compressed variant"),
            ("distill.alpha", "distilled"),
        )
        if column in ok.columns
    }
    studies["learning-rate tuning runs"] = is_tuning(ok)
    if "role" in ok:  # its losses are not those of a finished run (scaling.training.branches)
        studies["trunks (the constant-lr phase of branches)"] = ok["role"].eq("trunk")
    for reason, other in studies.items():
        other = other.reindex(ok.index, fill_value=False)
        if other.any():
            excluded[reason] = int(other.sum())
            ok = ok[~other]
    ok = _numeric(ok, needed, excluded)
    if ok.empty:
        why = ", ".join(f"{n} {reason}" for reason, n in excluded.items())
        raise BadInput(f"{path} has no rows to analyse" + (f" (left out: {why})" if why else ""))
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
