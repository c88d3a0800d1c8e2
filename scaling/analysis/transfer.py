"""Learning-rate transfer across width (μP): the best lr per width and how far it moves, and
how much a coordinate check's activations grow with width. Pure functions of tables.

A study for this varies the width, ``optim.lr`` and ``model.parametrization`` (the
``lr_transfer`` preset). Under sp the best lr moves with width; under μP it should stay put.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .lr import best_lr

PAR, LR = "model.parametrization", "optim.lr"
WIDTH_COLUMNS = ("model.width", "model.d_model")  # the width field of each μP family
NAMES = {"sp": "sp", "mup": "μP"}


def width_column(df: pd.DataFrame) -> str | None:
    """The table's width column: the first of ``WIDTH_COLUMNS`` that is filled in."""
    return next((c for c in WIDTH_COLUMNS if c in df and df[c].notna().all()), None)


def usable(df: pd.DataFrame) -> bool:
    return (
        PAR in df
        and LR in df
        and width_column(df) is not None
        and {"sp", "mup"} <= set(df[PAR].dropna())
        and df[LR].nunique() >= 2
    )


def scores(df: pd.DataFrame) -> pd.Series:
    """val_loss of ok rows; a failed, diverged or NaN row scores +inf (worse than any loss)."""
    ok = df["status"].eq("ok") if "status" in df else pd.Series(True, index=df.index)
    loss = pd.to_numeric(df["val_loss"], errors="coerce")
    return loss.where(ok & np.isfinite(loss), np.inf)


def transfer_table(df: pd.DataFrame) -> pd.DataFrame:
    """The best learning rate per parametrisation and width.

    The optimum is the grid lr with the lowest ``val_loss`` among rows with status
    ok (failed, diverged and NaN rows count as worse than any loss; seeds of one
    setting are averaged). ``lr_interp`` refines it with the vertex of a parabola in
    log lr through the optimum and its two neighbours (the grid value where the
    optimum is at an edge of the grid, or the parabola opens downwards).

    Args:
        df: a results table with ``model.parametrization``, ``optim.lr``, a width
            column (``model.width`` or ``model.d_model``) and ``val_loss``.

    Returns:
        One row per (parametrization, width): ``lr_opt``, ``lr_interp``, ``val_loss``
        (at lr_opt), ``n_lr`` (learning rates tried), ``at_edge`` (the optimum is the
        smallest or largest lr tried, so the true optimum may lie outside). lr_opt is
        NaN where no row of that width trained.
    """
    w = width_column(df)
    d = df.assign(_score=scores(df))
    rows = []
    for (par, width), g in d.groupby([PAR, w], sort=True):
        curve = g.groupby(LR)["_score"].mean().sort_index()  # inf stays inf
        lrs, losses = curve.index.to_numpy(float), curve.to_numpy(float)
        row = {"parametrization": par, "width": width, "n_lr": len(lrs)}
        if not np.isfinite(losses).any():
            rows.append(row | {"lr_opt": np.nan, "lr_interp": np.nan, "val_loss": np.nan,
                               "at_edge": False})  # fmt: skip
            continue
        best = best_lr(lrs, losses)  # the vertex of a parabola in log lr, as tuning takes it
        i = int(np.argmin(losses))
        rows.append(row | {"lr_opt": lrs[i], "lr_interp": best.lr, "val_loss": losses[i],
                           "at_edge": best.edge is not None})  # fmt: skip
    cols = ["parametrization", "width", "lr_opt", "lr_interp", "val_loss", "n_lr", "at_edge"]
    return pd.DataFrame(rows, columns=cols)


def spread_decades(table: pd.DataFrame, column: str = "lr_opt") -> dict[str, float]:
    """log10(max/min) of the optimal lr across widths, per parametrisation (0: perfect transfer)."""
    out = {}
    for par, g in table.groupby("parametrization"):
        v = g[column].dropna().to_numpy(float)
        out[par] = float(np.log10(v.max() / v.min())) if len(v) else math.nan
    return out


def coord_growth(coords, layer: str = "logits", step: int | None = None) -> dict[str, float]:
    """How much a layer's activation size changes from the narrowest width to the widest.

    Args:
        coords: the coordinate check's table (``scale coord-check``).
        layer: a layer name (``logits``, ``3``, ``blocks.1``, …).
        step: the step to compare at; None: the step where the change is largest either way
            (sp's logits jump at the first steps and then swing back).

    Returns:
        parametrization -> act(widest) / act(narrowest); 1 means flat. Steps where an
        activation is 0 (a zero-initialised readout at step 0) are skipped.
    """
    sel = coords[coords["layer"] == layer]
    if step is not None:
        sel = sel[sel["step"] == step]
    out = {}
    for par, g in sel.groupby("parametrization"):
        table = g.pivot_table(index="step", columns="width", values="act")
        ratio = table.iloc[:, -1] / table.iloc[:, 0]
        ratio = ratio[(table.iloc[:, 0] > 0) & (table.iloc[:, -1] > 0)]
        out[par] = float(ratio.loc[np.log(ratio).abs().idxmax()]) if len(ratio) else math.nan
    return out
