"""The file contract of a study: what is written where, and how it is read back.

A sweep folder holds ``grid.json`` (every point planned, with its overrides, label and
size), ``points/<point_id>/`` per point (config.yaml, history.csv, result.json, and while
it trains checkpoint.pt) and ``results.csv``, the rows gathered. Every file is written
here, atomically, and read here; nothing else parses them. No torch here, so analysis
works on any table.
"""

from __future__ import annotations

from .files import atomic_write, atomic_write_text, lock, read_json, try_lock, write_json
from .points import (
    COLUMNS,
    FAILED,
    HISTORY_COLUMNS,
    PLAN,
    SETTINGS,
    STATUSES,
    WATCHED,
    checkpoint_path,
    clear_failures,
    first_failure,
    last_history,
    model_path,
    needs_training,
    new_row,
    point_folder,
    point_id,
    point_identity,
    read_history,
    read_result,
    record_failure,
    settings_columns,
    split_variant,
    variant_id,
    write_history,
    write_result,
)
from .sweeps import (
    LR_LAW,
    as_planned,
    collect,
    failure_streak,
    read_grid,
    read_grid_info,
    read_histories,
    read_lr_law,
    record_outcome,
    write_grid,
    write_results,
)
from .tables import Table, find_study, is_tuning, load_table

__all__ = [
    "COLUMNS", "FAILED", "LR_LAW", "HISTORY_COLUMNS", "PLAN", "SETTINGS", "STATUSES", "WATCHED",
    "Table", "as_planned", "atomic_write",
    "atomic_write_text", "checkpoint_path", "clear_failures", "collect", "failure_streak",
    "find_study", "first_failure", "is_tuning", "last_history", "load_table", "lock", "model_path",
    "needs_training", "new_row", "point_folder", "point_id", "point_identity", "read_grid",
    "read_grid_info", "read_histories", "read_history", "read_json", "read_lr_law", "read_result", "record_failure",
    "record_outcome", "settings_columns", "split_variant", "try_lock", "variant_id",
    "write_grid", "write_history", "write_json", "write_result", "write_results",
]  # fmt: skip
