"""Sections of studies beyond size: compression, distillation, width transfer (μP) and the
coordinate check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..analysis.transfer import (
    NAMES,
    coord_growth,
    spread_decades,
    transfer_table,
    usable,
    width_column,
)
from .plots import label
from .sections import Frame, Section, _frame


def compression_section(ok: pd.DataFrame) -> Section | None:
    """Accuracy and bytes of each size as trained and at each compression level."""
    if "compression" not in ok or not ok["compression"].isin(["prune", "quantize", "cast"]).any():
        return None
    d = ok.assign(level=ok["compress_level"].where(ok["compression"] != "none", "as trained"))
    d = d.assign(level=d["level"].astype(str).where(d["compression"] != "prune",
                                                   "sparsity " + d["level"].astype(str)))  # fmt: skip
    order = list(dict.fromkeys(d.sort_values(["compression", "level"])["level"]))
    order = ["as trained"] + [x for x in order if x != "as trained"]
    blocks = ["Each size trained once, then evaluated as trained and compressed; bytes on disk "
              "store a weight matrix sparse (CSR) where that is smaller. Accuracy:"]  # fmt: skip
    for value, name in (("val_accuracy", "accuracy"), ("model_bytes", "bytes")):
        if name == "bytes":
            blocks.append("Bytes on disk:")
        table = d.pivot_table(index="params", columns="level", values=value, aggfunc="mean")
        table = table[[c for c in order if c in table.columns]].reset_index()
        blocks.append(_frame(table.rename(columns={"params": "N"})))
    return Section("Compression", blocks)


def distillation_section(ok: pd.DataFrame, x: str) -> Section | None:
    """Students trained alone and distilled, per size, and what distillation gained."""
    if "distill.alpha" not in ok or not (ok["distill.alpha"] > 0).any():
        return None
    is_teacher = ok["label"].fillna("").str.startswith("teacher")
    table = ok[~is_teacher].pivot_table(
        index=x, columns="distill.alpha", values="val_loss", aggfunc="mean"
    )
    table.columns = ["alone" if a == 0 else f"distilled α={a:g}" for a in table.columns]
    if "alone" in table:
        for c in [c for c in table.columns if c != "alone"]:
            table[f"gain {c.split(' ')[1]}"] = table["alone"] - table[c]
    blocks = []
    if is_teacher.any():
        t = ok[is_teacher].iloc[0]
        blocks.append(f"Teacher: {t['label']}, N = {int(t['params']):,}, val loss {t['val_loss']:.4f}. "
                      "Validation loss of each student (a positive gain: distillation helped):")  # fmt: skip
    return Section(
        "Distillation", blocks + [_frame(table.reset_index().rename(columns={x: label(x)}))]
    )


def _lr_cell(v) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3g}"


def transfer_section(df: pd.DataFrame) -> Section | None:
    """The best lr per width under sp and μP, and its spread; None unless the table varies
    ``model.parametrization`` (both), ``optim.lr`` (2+ values) and a width column."""
    table = transfer_table(df) if usable(df) else None
    if table is None or table["lr_opt"].isna().all():
        return None
    w = width_column(df)
    best, interp, edge = (table.pivot(index="width", columns="parametrization", values=v)
                          for v in ("lr_opt", "lr_interp", "at_edge"))  # fmt: skip
    rows = []
    for width in best.index:
        row = {w.split(".")[-1]: f"{width:g}"}
        for par in ("sp", "mup"):
            row[f"best lr, {NAMES[par]}"] = _lr_cell(best.loc[width, par]) + (
                " (edge)" if edge.loc[width, par] else ""
            )
            row[f"interpolated, {NAMES[par]}"] = _lr_cell(interp.loc[width, par])
        rows.append(row)
    grid, fine = spread_decades(table), spread_decades(table, "lr_interp")
    spread = "; ".join(f"{NAMES[p]} {grid[p]:.2f} decades on the grid ({fine[p]:.2f} interpolated)"
                       for p in ("sp", "mup"))  # fmt: skip
    return Section("Width transfer (μP)", [
        "The learning rate with the lowest validation loss at each width (ok points only; "
        "'interpolated' is the vertex of a parabola in log lr through the best point and its "
        "neighbours; '(edge)' marks an optimum at the end of the lr grid).",
        Frame(pd.DataFrame(rows)),
        f"Spread of the best lr across widths: {spread}. Transfer means a spread near 0.",
    ])  # fmt: skip


def coord_section(coords: pd.DataFrame, info: dict) -> Section:
    """A coordinate check (``scale coord-check``): how activations grow with width."""
    hidden = [name for name in dict.fromkeys(coords["layer"]) if name != "logits"][-1]
    growth = {name: coord_growth(coords, name) for name in (hidden, "logits")}
    widths = sorted(coords["width"].unique())
    changes = "; ".join(
        " and ".join(f"×{g[p]:.2f} under {NAMES[p]}" for p in g) + f" ({name})"
        for name, g in growth.items()
    )
    return Section("Coordinate check", [
        f"{info.get('steps', '?')} steps at lr {info.get('lr', '?')} at each width, mean "
        f"|activation| per coordinate. From width {widths[0]:g} to {widths[-1]:g} it changes by "
        f"at most {changes}. Under μP it should stay near ×1."
    ])  # fmt: skip


def lr_section(df_all: pd.DataFrame, law) -> Section | None:
    """A tuned learning rate (``law``, an ``LRLaw``; None: no section): each tuned size's best
    lr, the fitted lr*(N) and the lr every size was trained at."""
    if law is None:
        return None
    rows = []
    for b in law.best:
        rows.append({"N (non-embedding)": f"{b.size:,.0f}", "lrs tried": ", ".join(f"{v:g}" for v in b.lrs),
                     "best lr": f"{b.lr:.3g}" + (f" (at the {b.edge} end)" if b.edge else ""),
                     "loss there": f"{b.loss:.4g}"})  # fmt: skip
    trained = df_all[df_all["lr_source"].eq("tuned")] if "lr_source" in df_all else df_all[:0]
    used = trained.sort_values("params")[["label", "params_nonembedding", "lr"]].rename(
        columns={"label": "point", "params_nonembedding": "N (non-embedding)"})
    blocks = [
        "The lr is tuned at the smallest sizes: each lr of the grid is a run, the best lr of a "
        "size is the vertex of a parabola in log lr through the lowest loss and its neighbours, "
        "and a power law through those best lrs sets every size's lr.",
        Frame(pd.DataFrame(rows)),
        f"Fitted: {law.text()}.",
    ]
    if len(used):
        blocks += ["Each size trained at its lr*(N):", _frame(used)]
    edges = [b for b in law.best if b.edge]
    if edges:
        blocks.append(f"**Warning**: at {len(edges)} of {len(law.best)} tuned sizes the best lr is "
                      "at an end of the grid; extend tune.lrs so the loss turns on both sides.")  # fmt: skip
    return Section("Learning rate per size", blocks)
