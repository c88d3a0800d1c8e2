"""report.md and a self-contained report.html (figures embedded) for one study."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd

from .plots import label
from .results import atomic_write_text

POINT_COLUMNS = {
    "status": "status",
    "label": "point",
    "params": "N",
    "train_examples": "D (examples)",
    "train_tokens": "D (tokens)",
    "flops_total": "FLOPs",
    "val_loss": "val loss",
    "val_accuracy": "val accuracy",
    "wall_time_s": "wall time (s)",
}
# how points were computed, shown where some point differs from the plain case: (name, plain value)
HOW_COLUMNS = {
    "world_size": ("processes", 1),
    "grad_accum": ("micro-batches", 1),
    "flops_recompute_per_step": ("recompute FLOPs/step", 0),
    "mfu": ("MFU", 0),
}


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (int, np.integer)):
        return f"{v:,}"
    if isinstance(v, (float, np.floating)):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def points_frame(df: pd.DataFrame, analysis) -> pd.DataFrame:
    """The points with the columns a reader needs, including the study's own x, D and loss columns."""
    wanted = list(POINT_COLUMNS) + [
        c for c in (analysis.x, analysis.d, analysis.y) if c and c not in POINT_COLUMNS
    ]
    cols = [c for c in wanted if c in df and df[c].notna().any()]
    cols += [c for c, (_, floor) in HOW_COLUMNS.items()
             if c in df and (pd.to_numeric(df[c], errors="coerce").fillna(0) > floor).any()]  # fmt: skip
    names = POINT_COLUMNS | {c: name for c, (name, _) in HOW_COLUMNS.items()}
    out = df.sort_values(analysis.x, na_position="last")[cols].rename(columns=names)
    return out.map(_fmt)


def fit_frame(fit) -> pd.DataFrame:
    rows = []
    for name, value in fit.params.items():
        lo_hi = fit.ci.get(name)
        rows.append(
            {
                "parameter": name,
                "value": _fmt(value),
                "95% CI": f"[{_fmt(lo_hi[0])}, {_fmt(lo_hi[1])}]" if lo_hi else "",
            }
        )
    return pd.DataFrame(rows)


def sections(
    df_all: pd.DataFrame, analysis, title: str, config: str | None
) -> list[tuple[str, list]]:
    """The report as (heading, blocks); a block is text, a table (DataFrame) or a figure (Path)."""
    counts = (
        df_all["status"].value_counts().to_dict() if "status" in df_all else {"ok": len(df_all)}
    )
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    out = [(title, [f"{len(df_all)} points: {summary}."])]
    if config:
        out.append(("Configuration", [("code", config)]))
    out.append(("Points", [points_frame(df_all, analysis)]))
    blocks = []
    for fit in analysis.fits:
        state = "converged" if fit.converged else f"**did not converge** ({fit.message})"
        x_desc = label(fit.x) + (f" and {label(fit.d)}" if fit.d else "")
        blocks += [f"**{fit.law}** — {label(fit.y)} against {x_desc}, {fit.n_points} points, {state}; "
                   f"95% intervals from {0 if fit.draws is None else len(fit.draws)} bootstrap resamples.",
                   fit_frame(fit)]  # fmt: skip
    out.append(("Fitted laws", blocks))
    if analysis.extrapolation:
        blocks = []
        for fit, check in analysis.extrapolation.values():
            rows = pd.DataFrame(check.rows).drop(
                columns=["d"] if all(r["d"] is None for r in check.rows) else []
            )
            rows = rows.rename(
                columns={
                    "x": label(fit.x),
                    "d": label(fit.d or "d"),
                    "y": label(fit.y),
                    "rel_error": "relative error",
                }
            )
            blocks += [
                f"**{fit.law}** fitted without the {len(check.held_out)} largest size(s) "
                f"({fit.describe()}), predicting them: mean |relative error| {check.mean_abs_rel_error:.2%}, "
                f"RMS of log-loss error {check.rms_log_error:.4f}.",
                rows.map(_fmt),
            ]
        out.append(("Extrapolation check", blocks))
    if analysis.frontier is not None:
        fr = analysis.frontier
        ci = lambda t: f" (95% CI [{t[0]:.3f}, {t[1]:.3f}])" if t else ""  # noqa: E731
        if "flops_total" in df_all and df_all["flops_total"].notna().any():
            largest = df_all["flops_total"].max()
        else:
            largest = (fr.flops_per_nd * df_all[analysis.x] * df_all[analysis.d]).max()
        budgets = np.logspace(np.log10(largest), np.log10(largest) + 3, 4)  # up to 1000× the study
        table = pd.DataFrame(
            {"C (FLOPs)": budgets, "N_opt": fr.n_opt(budgets), "D_opt": fr.d_opt(budgets)}
        ).map(_fmt)
        out.append(("Compute-optimal frontier", [
            f"From L(N, D) with C = {fr.flops_per_nd:.3g}·N·D: N_opt ∝ C^{fr.a:.3f}{ci(fr.a_ci)}, "
            f"D_opt ∝ C^{fr.b:.3f}{ci(fr.b_ci)}.",
            table,
        ]))  # fmt: skip
    if analysis.isoflop is not None:
        iso = analysis.isoflop
        text = (f"N_opt ∝ C^{iso.exponent:.3f} from the minima inside their grids." if iso.exponent is not None
                else "Too few budgets with a minimum inside their grid for an exponent.")  # fmt: skip
        out.append(("IsoFLOP minima", [text, pd.DataFrame(iso.budgets).map(_fmt)]))
    if analysis.spread:
        out.append(("Spread across seeds", [pd.DataFrame(analysis.spread).map(_fmt)]))
    if analysis.notes:
        out.append(("Notes", ["\n".join(f"- {n}" for n in analysis.notes)]))
    return out


def _md(secs, figures: list[Path], out_dir: Path) -> str:
    lines = []
    for i, (heading, blocks) in enumerate(secs):
        lines.append(("# " if i == 0 else "## ") + heading + "\n")
        for b in blocks:
            if isinstance(b, pd.DataFrame):
                lines.append(b.to_markdown(index=False) + "\n")
            elif isinstance(b, tuple):
                lines.append(f"```yaml\n{b[1].rstrip()}\n```\n")
            else:
                lines.append(b + "\n")
    if figures:
        lines.append("## Figures\n")
        for f in figures:
            lines.append(f"![{f.stem}]({f.relative_to(out_dir).as_posix()})\n")
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}th,td{padding:.25em .7em;border-bottom:1px solid #ddd;text-align:right}
th{background:#f4f4f4}pre{background:#f6f6f6;padding:.8em;overflow-x:auto}img{max-width:100%;margin:1em 0}"""


def _html(secs, figures: list[Path], title: str) -> str:
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
    ]
    for i, (heading, blocks) in enumerate(secs):
        tag = "h1" if i == 0 else "h2"
        parts.append(f"<{tag}>{html.escape(heading)}</{tag}>")
        for b in blocks:
            if isinstance(b, pd.DataFrame):
                parts.append(b.to_html(index=False, border=0, escape=True))
            elif isinstance(b, tuple):
                parts.append(f"<pre>{html.escape(b[1])}</pre>")
            elif b.startswith("- "):
                items = "".join(f"<li>{html.escape(line[2:])}</li>" for line in b.splitlines())
                parts.append(f"<ul>{items}</ul>")
            else:
                text = html.escape(b)
                while "**" in text:  # the only markdown the blocks use
                    text = text.replace("**", "<b>", 1).replace("**", "</b>", 1)
                parts.append(f"<p>{text}</p>")
    if figures:
        parts.append("<h2>Figures</h2>")
        for f in figures:
            data = base64.b64encode(f.read_bytes()).decode()
            parts.append(f"<img alt='{html.escape(f.stem)}' src='data:image/png;base64,{data}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def compression_section(ok: pd.DataFrame) -> tuple[str, list] | None:
    """Accuracy and bytes of each size as trained and at each compression level."""
    if "compression" not in ok or not ok["compression"].isin(["prune", "quantize", "cast"]).any():
        return None
    d = ok.assign(level=ok["compress_level"].where(ok["compression"] != "none", "as trained"))
    d = d.assign(level=d["level"].astype(str).where(d["compression"] != "prune",
                                                   "sparsity " + d["level"].astype(str)))  # fmt: skip
    order = list(dict.fromkeys(d.sort_values(["compression", "level"])["level"]))
    order = ["as trained"] + [x for x in order if x != "as trained"]
    blocks = [
        "Each size trained once, then evaluated as trained and compressed; bytes on disk store "
        "a weight matrix sparse (CSR) where that is smaller. Accuracy:"
    ]
    for value, name in (("val_accuracy", "accuracy"), ("model_bytes", "bytes")):
        if name == "bytes":
            blocks.append("Bytes on disk:")
        table = d.pivot_table(index="params", columns="level", values=value, aggfunc="mean")
        table = table[[c for c in order if c in table.columns]].reset_index()
        blocks.append(table.rename(columns={"params": "N"}).map(_fmt))
    return "Compression", blocks


def distillation_section(ok: pd.DataFrame, x: str) -> tuple[str, list] | None:
    """Students trained alone and distilled, per size, and what distillation gained."""
    if "distill.alpha" not in ok or not (ok["distill.alpha"] > 0).any():
        return None
    students = ok[~ok["label"].fillna("").str.startswith("teacher")]
    table = students.pivot_table(
        index=x, columns="distill.alpha", values="val_loss", aggfunc="mean"
    )
    table.columns = ["alone" if a == 0 else f"distilled α={a:g}" for a in table.columns]
    blocks = []
    if "alone" in table:
        for c in [c for c in table.columns if c != "alone"]:
            table[f"gain {c.split(' ')[1]}"] = table["alone"] - table[c]
    teacher = ok[ok["label"].fillna("").str.startswith("teacher")]
    if len(teacher):
        t = teacher.iloc[0]
        blocks.append(f"Teacher: {t['label']}, N = {int(t['params']):,}, val loss {t['val_loss']:.4f}. "
                      "Validation loss of each student (a positive gain: distillation helped):")  # fmt: skip
    return "Distillation", blocks + [table.reset_index().rename(columns={x: label(x)}).map(_fmt)]


def study_sections(df_all: pd.DataFrame, x: str, plots_dir: Path, title: str):
    """Sections and figures of studies beyond size (compression, distillation, width transfer)."""
    from . import plots
    from .transfer import transfer_section

    ok = df_all[df_all["status"] == "ok"] if "status" in df_all else df_all
    secs, figs = [], []
    section = compression_section(ok)
    if section:
        secs.append(section)
        figs += plots.accuracy_vs_bytes(ok, plots_dir, title)
        if (ok["compression"] == "prune").any():
            figs += plots.loss_vs_sparsity(ok, plots_dir, title)
    section = distillation_section(ok, x)
    if section:
        secs.append(section)
        figs += plots.distilled_vs_plain(ok, x, plots_dir, title)
    section = transfer_section(df_all, plots_dir)
    if section:
        secs.append(section[:2])
        figs += section[2]
    return secs, figs


def write_report(out_dir: Path, df_all: pd.DataFrame, analysis, figures: list[Path], title: str,
                 config: str | None = None, extra=()) -> tuple[Path, Path]:  # fmt: skip
    """Write report.md (figures linked) and report.html (figures embedded) into ``out_dir``."""
    pngs = [f for f in figures if f.suffix == ".png"]
    secs = sections(df_all, analysis, title, config) + list(extra)
    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md, _md(secs, pngs, out_dir))
    atomic_write_text(page, _html(secs, pngs, title))
    return md, page


def default_columns(table, d: str | None, c: str | None) -> tuple[str | None, str | None]:
    """For a sweep folder: D from what training processed when it varies, the budget column when there are several."""
    if table.sweep_dir is None:
        return d, c
    df = table.ok
    if d is None:
        for col in ("train_tokens", "train_examples"):
            if col in df and df[col].notna().all() and df[col].nunique() >= 3:
                d = col
                break
    if c is None and "trainer.target_flops" in df and df["trainer.target_flops"].notna().all():
        if df["trainer.target_flops"].nunique() >= 2:
            c = "trainer.target_flops"
    return d, c


def analyze_table(table, x="params", y="val_loss", d=None, c=None, form="saturating", holdout=None,
                  bootstrap=1000, seed=0):  # fmt: skip
    """``fit.analyze`` with the defaults a study needs: D and budgets found in sweep folders, and
    one size held out for the extrapolation check when there are sizes to spare."""
    from .fit import FORMS, analyze

    d, c = default_columns(table, d, c)
    if holdout is None:
        holdout = 1 if table.ok[x].nunique() >= len(FORMS[form]["raw"]) + 2 else 0
    replicas_of = None
    if table.sweep_dir is not None:  # runs of one setting share every config column but the seed
        replicas_of = [
            k
            for k in table.ok.columns
            if "." in k and k != "trainer.seed" and table.ok[k].notna().any()
        ]
    return analyze(table.ok, x=x, y=y, d=d, c=c, form=form, holdout=holdout, bootstrap=bootstrap, seed=seed,
                   excluded=table.excluded, replicas_of=replicas_of)  # fmt: skip


def write_all(table, analysis, title: str) -> dict:
    """fits.json, every figure, report.md and report.html into the study's folder."""
    import json

    from .plots import figures
    from .results import read_histories, write_json

    out = table.out
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "fits.json", analysis.record())
    histories = read_histories(table.sweep_dir) if table.sweep_dir is not None else None
    figs = figures(table.ok, analysis, out / "plots", histories=histories, title=title)
    config = None
    grid = out / "grid.json"
    if grid.exists():
        info = json.loads(grid.read_text())
        command = f"# {info['command']}" if info.get("command") else ""
        config = "\n".join(x for x in (command, info.get("preset", "")) if x) or None
    extra, more = study_sections(table.all, analysis.x, out / "plots", title)
    md, page = write_report(out, table.all, analysis, figs + more, title, config, extra)
    figs += more
    return {"fits": out / "fits.json", "figures": figs, "report_md": md, "report_html": page}
