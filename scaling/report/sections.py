"""A study's report as sections: the one model that Markdown, HTML and the terminal render.

A section is a heading and blocks; a block is text (``**bold**`` is the only markup), a
``Frame`` (a table) or ``Code``. Sections are built from an ``Analysis`` and the study's
rows; nothing here fits, plots or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Frame:
    """A table block: values already formatted as text."""

    table: pd.DataFrame


@dataclass
class Code:
    text: str
    language: str = "yaml"


@dataclass
class Section:
    heading: str
    blocks: list = field(default_factory=list)  # str | Frame | Code
    figures: list[Path] = field(default_factory=list)


# the sections the terminal prints after a fit
ANALYSIS = ("Fitted laws", "Extrapolation check", "Compute-optimal frontier", "IsoFLOP minima",
            "Notes")  # fmt: skip

POINT_COLUMNS = {
    "status": "status", "label": "point", "params": "N", "train_examples": "D (examples)",
    "train_tokens": "D (tokens)", "flops_total": "FLOPs", "val_loss": "val loss",
    "val_accuracy": "val accuracy", "wall_time_s": "wall time (s)",
}  # fmt: skip
# how points were computed, shown where some point differs from the plain case: (name, plain value)
HOW_COLUMNS = {
    "world_size": ("processes", 1),
    "grad_accum": ("micro-batches", 1),
    "flops_recompute_per_step": ("recompute FLOPs/step", 0),
    "mfu": ("MFU", 0),
}


def fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    if isinstance(v, (float, np.floating)):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def _frame(df: pd.DataFrame) -> Frame:
    return Frame(df.map(fmt))


def points_section(df: pd.DataFrame, analysis) -> Section:
    """The points with the columns a reader needs, including the study's own x, D and loss."""
    wanted = list(POINT_COLUMNS) + [
        c for c in (analysis.x, analysis.d, analysis.y) if c and c not in POINT_COLUMNS
    ]
    cols = [c for c in wanted if c in df and df[c].notna().any()]
    cols += [c for c, (_, floor) in HOW_COLUMNS.items()
             if c in df and (pd.to_numeric(df[c], errors="coerce").fillna(0) > floor).any()]  # fmt: skip
    names = POINT_COLUMNS | {c: name for c, (name, _) in HOW_COLUMNS.items()}
    out = df.sort_values(analysis.x, na_position="last")[cols].rename(columns=names)
    return Section("Points", [_frame(out)])


def fit_frame(fit) -> Frame:
    rows = [{"parameter": name, "value": fmt(value),
             "95% CI": f"[{fmt(fit.ci[name][0])}, {fmt(fit.ci[name][1])}]" if name in fit.ci else ""}
            for name, value in fit.params.items()]  # fmt: skip
    return Frame(pd.DataFrame(rows))


def laws_section(analysis) -> Section:
    blocks = []
    for fit in analysis.fits:
        state = "converged" if fit.converged else f"**did not converge** ({fit.message})"
        x_desc = label(fit.x) + (f" and {label(fit.d)}" if fit.d else "")
        resamples = 0 if fit.draws is None else len(fit.draws)
        blocks += [f"**{fit.law}** — {label(fit.y)} against {x_desc}, {fit.n_points} points, "
                   f"{state}; 95% intervals from {resamples} bootstrap resamples.", fit_frame(fit)]  # fmt: skip
    return Section("Fitted laws", blocks)


def extrapolation_section(analysis) -> Section | None:
    if not analysis.extrapolation:
        return None
    blocks = []
    for fit, check in analysis.extrapolation.values():
        rows = pd.DataFrame(check.rows)
        rows["rel_error"] = [f"{r:+.2%}" for r in rows["rel_error"]]
        if all(r["d"] is None for r in check.rows):
            rows = rows.drop(columns=["d"])
        rows = rows.rename(columns={"x": label(fit.x), "d": label(fit.d or "d"), "y": label(fit.y),
                                    "rel_error": "relative error"})  # fmt: skip
        blocks += [
            f"**{fit.law}** fitted without the {len(check.held_out)} largest size(s) "
            f"({fit.describe()}), predicting them: mean |relative error| "
            f"{check.mean_abs_rel_error:.2%}, RMS of log-loss error {check.rms_log_error:.4f}.",
            _frame(rows),
        ]
    return Section("Extrapolation check", blocks)


def frontier_section(analysis, df_all: pd.DataFrame) -> Section | None:
    fr = analysis.frontier
    if fr is None:
        return None

    def ci(t):
        return f" (95% CI [{t[0]:.3f}, {t[1]:.3f}])" if t else ""

    if "flops_total" in df_all and df_all["flops_total"].notna().any():
        largest = df_all["flops_total"].max()
    else:
        largest = (fr.flops_per_nd * df_all[analysis.x] * df_all[analysis.d]).max()
    budgets = np.logspace(np.log10(largest), np.log10(largest) + 3, 4)  # up to 1000× the study
    table = pd.DataFrame(
        {"C (FLOPs)": budgets, "N_opt": fr.n_opt(budgets), "D_opt": fr.d_opt(budgets)}
    )
    text = (f"From L(N, D) with C = {fr.flops_per_nd:.3g}·N·D: N_opt ∝ C^{fr.a:.3f}{ci(fr.a_ci)}, "
            f"D_opt ∝ C^{fr.b:.3f}{ci(fr.b_ci)}.")  # fmt: skip
    return Section("Compute-optimal frontier", [text, _frame(table)])


def isoflop_section(analysis) -> Section | None:
    iso = analysis.isoflop
    if iso is None:
        return None
    text = (f"N_opt ∝ C^{iso.exponent:.3f} from the minima inside their grids." if iso.exponent is not None
            else "Too few budgets with a minimum inside their grid for an exponent.")  # fmt: skip
    return Section("IsoFLOP minima", [text, _frame(pd.DataFrame(iso.budgets))])


def analysis_sections(analysis, df_all: pd.DataFrame) -> list[Section]:
    """Fitted laws, the extrapolation check, the frontier, IsoFLOP minima, seeds, notes."""
    out = [laws_section(analysis), extrapolation_section(analysis),
           frontier_section(analysis, df_all), isoflop_section(analysis)]  # fmt: skip
    if analysis.spread:
        out.append(Section("Spread across seeds", [_frame(pd.DataFrame(analysis.spread))]))
    if analysis.notes:
        out.append(Section("Notes", ["\n".join(f"- {n}" for n in analysis.notes)]))
    return [s for s in out if s is not None]


def report_sections(
    df_all: pd.DataFrame, analysis, title: str, config: str | None
) -> list[Section]:
    """The whole report: summary, configuration, points, then the analysis."""
    counts = (
        df_all["status"].value_counts().to_dict() if "status" in df_all else {"ok": len(df_all)}
    )
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    out = [Section(title, [f"{len(df_all)} points: {summary}."])]
    if config:
        out.append(Section("Configuration", [Code(config)]))
    return out + [points_section(df_all, analysis)] + analysis_sections(analysis, df_all)


# ---------------------------------------------------------------- studies beyond size


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
