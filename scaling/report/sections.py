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
ANALYSIS = ("Prediction of held-out sizes", "Fitted laws", "Goodness of fit",
            "Compute-optimal frontier", "IsoFLOP minima", "Notes")  # fmt: skip

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
             "95% CI": f"[{fmt(fit.ci[name][0])}, {fmt(fit.ci[name][1])}]" if name in fit.ci else "",
             "identified": ("no: " + fit.not_identified[name]) if name in fit.not_identified
             else "yes" if name in fit.ci else ""}
            for name, value in fit.params.items()]  # fmt: skip
    return Frame(pd.DataFrame(rows))


METHODS = {
    "pairs": "a bootstrap of the runs",
    "parametric, studentized": "a parametric bootstrap, studentized (too few sizes to resample the runs)",
    "parametric": "a parametric bootstrap with the noise the seeds measured",
}


def how_intervals(fit) -> str:
    if fit.draws is None:
        return "no intervals (no bootstrap)"
    failed = f"; {fit.refits_failed} refits did not converge" if fit.refits_failed else ""
    noise = f", noise {fit.noise.sigma:.2%} from the {fit.noise.source}" if fit.noise else ""
    return f"95% intervals from {METHODS.get(fit.interval_method, fit.interval_method)}, {len(fit.draws)} resamples{noise}{failed}"


def laws_section(analysis) -> Section:
    blocks = []
    for fit in analysis.fits:
        state = "converged" if fit.converged else f"**did not converge** ({fit.message})"
        x_desc = label(fit.x) + (f" and {label(fit.d)}" if fit.d else "")
        blocks += [f"**{fit.law}** — {label(fit.y)} against {x_desc}, {fit.n_points} points, "
                   f"{state}; {how_intervals(fit)}.", fit_frame(fit)]  # fmt: skip
    return Section("Fitted laws", blocks)


def prediction_section(analysis) -> Section | None:
    """The headline: the law fitted without the largest sizes, predicting them, with a verdict."""
    if not analysis.extrapolation:
        return None
    blocks = []
    for checks in analysis.extrapolation.values():
        for fit, check in checks:
            rows = pd.DataFrame(check.rows)
            rows["95% interval"] = [
                f"[{fmt(a)}, {fmt(b)}]" for a, b in zip(rows["lo"], rows["hi"])
            ]
            rows["rel_error"] = [f"{r:+.2%}" for r in rows["rel_error"]]
            rows["inside"] = ["yes" if v else "no" for v in rows["inside"]]
            one = all(r.get("runs", 1) == 1 for r in check.rows)
            rows = rows.drop(columns=["lo", "hi"] + (["d"] if all(r["d"] is None for r in check.rows) else [])
                             + (["runs"] if one and "runs" in rows else []))  # fmt: skip
            # short headers: the table fits 80 columns
            rows = rows.rename(columns={"x": label(fit.x), "d": label(fit.d or "d"), "y": "observed",
                                        "rel_error": "error"})  # fmt: skip
            sizes = "size" if len(check.held_out) == 1 else f"{len(check.held_out)} sizes"
            blocks += [f"**{check.verdict()}.** {fit.law} fitted without the largest {sizes} "
                       f"({fit.describe()}) predicts them with a mean |relative error| of "
                       f"{check.mean_abs_rel_error:.2%}. "
                       + (f"The interval is a new run's {label(fit.y)}" if one else
                          f"A size run at several seeds is judged by their mean {label(fit.y)}, "
                          "and its interval is that of the mean of as many new runs")
                       + ": the law's uncertainty and run-to-run noise.", _frame(rows)]  # fmt: skip
    return Section("Prediction of held-out sizes", blocks)


def goodness_section(analysis) -> Section | None:
    """Residuals per point, their RMS against the seed noise, and the leave-one-out spread."""
    blocks = []
    for fit in analysis.fits:
        g = analysis.goodness.get(fit.form)
        if g is None:
            continue
        noise = (
            f" (run-to-run noise: {g.noise:.2%})"
            if g.noise
            else " (no repeated runs measure the noise)"
        )
        loo = "; ".join(
            f"leaving one size out, {k} ranges over [{lo:.3g}, {hi:.3g}]"
            for k, (lo, hi) in g.loo.items()
        )
        blocks.append(
            f"**{fit.law}** misses its points by {g.rms_log:.2%} RMS{noise}."
            + (f" {loo.capitalize()}." if loo else "")
        )
        if len(g.rows) <= 30:
            rows = pd.DataFrame(g.rows).sort_values(["x"] + (["d"] if g.rows[0].get("d") else []))
            rows["residual"] = [f"{r:+.2%}" for r in rows["residual"]]
            rows = rows.drop(columns=["d"] if all(r["d"] is None for r in g.rows) else [])
            blocks.append(
                _frame(
                    rows.rename(
                        columns={"x": label(fit.x), "d": label(fit.d or "d"), "y": label(fit.y)}
                    )
                )
            )
    return Section("Goodness of fit", blocks) if blocks else None


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
    blocks = []
    if iso.fit_exponent is not None:
        ci = f" (95% CI [{iso.fit_ci[0]:.3f}, {iso.fit_ci[1]:.3f}])" if iso.fit_ci else ""
        blocks.append(f"**N_opt ∝ C^{iso.fit_exponent:.3f}**{ci} from L(N, D) fitted to every "
                      "point by variable projection.")  # fmt: skip
    if iso.exponent is not None:
        diff = "" if iso.fit_exponent is None else f", {iso.exponent - iso.fit_exponent:+.3f} from the fit"
        blocks.append(f"A parabola per budget (the cross-check): N_opt ∝ C^{iso.exponent:.3f} from "
                      f"the minima inside their grids{diff}.")  # fmt: skip
    if not blocks:
        blocks.append("Too few budgets for an exponent (3 or more, with minima inside their grids).")
    return Section("IsoFLOP minima", blocks + [_frame(pd.DataFrame(iso.budgets))])


def analysis_sections(analysis, df_all: pd.DataFrame) -> list[Section]:
    """The prediction check (the headline), fitted laws, goodness of fit, the frontier,
    IsoFLOP minima, seeds, notes."""
    out = [prediction_section(analysis), laws_section(analysis), goodness_section(analysis),
           frontier_section(analysis, df_all), isoflop_section(analysis)]  # fmt: skip
    if analysis.spread:
        out.append(Section("Spread across seeds", [_frame(pd.DataFrame(analysis.spread))]))
    if analysis.notes:
        out.append(Section("Notes", ["\n".join(f"- {n}" for n in analysis.notes)]))
    return [s for s in out if s is not None]


def report_sections(
    df_all: pd.DataFrame, analysis, title: str, config: str | None
) -> list[Section]:
    """The whole report: summary, the prediction check, configuration, points, the analysis."""
    counts = (
        df_all["status"].value_counts().to_dict() if "status" in df_all else {"ok": len(df_all)}
    )
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    analysis_part = analysis_sections(analysis, df_all)
    headline = [s for s in analysis_part if s.heading == "Prediction of held-out sizes"]
    out = [Section(title, [f"{len(df_all)} points: {summary}."])] + headline
    if config:
        out.append(Section("Configuration", [Code(config)]))
    return (
        out + [points_section(df_all, analysis)] + [s for s in analysis_part if s not in headline]
    )
