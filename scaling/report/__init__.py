"""A study's report: fits.json, every figure, report.md and a self-contained report.html.

``sections`` builds the report as sections from an analysis and the study's rows,
``render`` writes them as Markdown, HTML or terminal tables, ``plots`` and
``study_plots`` draw the figures. Nothing here fits or trains, and torch is never imported.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import store
from ..analysis.lr import LRLaw
from . import render, study_plots
from .branches import branch_curves, branches_section
from .forecasts import forecast_plot, forecasts_section
from .plots import compare, figures
from .sections import ANALYSIS, Section, analysis_sections, report_sections
from .study_sections import (
    compression_section,
    coord_section,
    distillation_section,
    lr_section,
    transfer_section,
)

COORDS = "coord_check.csv"
HEALTH = "Run health"  # what `scale coord-check` leaves in a study's plots/


def terminal(analysis, df_all: pd.DataFrame, findings=None) -> list:
    """What ``scale fit`` prints: each law with its intervals, the checks, the notes and the
    runs' health (``analysis.health`` findings)."""
    sections = [s for s in analysis_sections(analysis, df_all) if s.heading in ANALYSIS]
    health = [] if findings is None else [health_section(findings)]
    return render.terminal(sections + health)


def health_section(findings) -> Section:
    """One line per finding with its fix, or that nothing was found."""
    if not findings:
        return Section(HEALTH, ["Nothing found: no overfitting, under-training, lr at the edge "
                                "of its grid, divergence or seed scatter."])  # fmt: skip
    return Section(HEALTH, ["\n".join(f"- {f.line()}" for f in findings)])


def study_sections(df_all: pd.DataFrame, x: str, plots_dir: Path, title: str,
                   sweep_dir: Path | None = None) -> list[Section]:  # fmt: skip
    """Sections of studies beyond size (a tuned lr, compression, distillation, branches, width
    transfer), with their figures drawn into ``plots_dir``."""
    ok = df_all[df_all["status"] == "ok"] if "status" in df_all else df_all
    out = []
    record = store.read_lr_law(sweep_dir)
    law = None if record is None else LRLaw.from_record(record)
    section = lr_section(df_all, law)
    if section:
        section.figures = study_plots.loss_vs_lr(df_all, law, plots_dir, title)
        out.append(section)
    section = compression_section(ok)
    if section:
        section.figures = study_plots.accuracy_vs_bytes(ok, plots_dir, title)
        if (ok["compression"] == "prune").any():
            section.figures += study_plots.loss_vs_sparsity(ok, plots_dir, title)
        out.append(section)
    section = distillation_section(ok, x)
    if section:
        section.figures = study_plots.distilled_vs_plain(ok, x, plots_dir, title)
        out.append(section)
    section = branches_section(ok)
    if section:
        histories = store.read_histories(sweep_dir) if sweep_dir is not None else {}
        section.figures = branch_curves(ok, histories, plots_dir, title)
        out.append(section)
    section = forecasts_section(df_all)
    if section:
        section.figures = forecast_plot(ok, plots_dir, title)
        out.append(section)
    section = transfer_section(df_all)
    if section:
        section.figures = study_plots.plot_lr_transfer(df_all, plots_dir / "lr_transfer")
        out.append(section)
    coords = plots_dir / COORDS
    if coords.is_file():
        info = store.read_json(coords.with_suffix(".json")) or {}
        section = coord_section(pd.read_csv(coords), info)
        section.figures = [p for p in (plots_dir / "coord_check.png",) if p.is_file()]
        out.append(section)
    return out


def write_all(table, analysis, title: str, group: str | None = None, findings=None) -> dict:
    """fits.json, every figure, report.md and report.html into the study's folder.

    ``analysis`` is an ``Analysis``, or with ``group`` a dict value -> Analysis (one law per
    value of that column): the report then has each group's sections, and the figures a
    comparison of the groups. ``findings`` (``analysis.health``) make a section after the
    prediction check.
    """
    out = table.out
    out.mkdir(parents=True, exist_ok=True)
    grouped = isinstance(analysis, dict)
    record = ({"group": group, "groups": {str(k): a.record() for k, a in analysis.items()}}
              if grouped else analysis.record())  # fmt: skip
    store.write_json(out / "fits.json", record)
    if grouped:
        figs = group_figures(table, analysis, group, title)
        sections = [Section(title, [f"{len(table.all)} points, one law per {group}."])]
        for value, one in analysis.items():
            for section in report_sections(table.all[table.all[group] == value], one, title, None)[
                1:
            ]:
                section.heading = f"{group} = {value}: {section.heading}"
                sections.append(section)
        x = next(iter(analysis.values())).x
    else:
        histories = store.read_histories(table.sweep_dir) if table.sweep_dir is not None else None
        figs = figures(table.ok, analysis, out / "plots", histories=histories, title=title)
        info = store.read_grid_info(out)
        command = f"# {info['command']}" if info.get("command") else ""
        config = "\n".join(x for x in (command, info.get("preset", "")) if x) or None
        sections, x = report_sections(table.all, analysis, title, config), analysis.x
    if findings is not None:
        sections.insert(min(2, len(sections)), health_section(findings))
    studies = study_sections(table.all, x, out / "plots", title, table.sweep_dir)
    for section in studies:  # every figure in one closing section, as a reader expects
        figs += section.figures
        section.figures = []
    sections += studies
    if figs:
        sections.append(Section("Figures", figures=figs))
    md, html = out / "report.md", out / "report.html"
    store.atomic_write_text(md, render.markdown(sections, out))
    store.atomic_write_text(html, render.page(sections, title))
    return {"fits": out / "fits.json", "figures": figs, "report_md": md, "report_html": html}


def group_figures(table, analyses: dict, group: str, title: str) -> list[Path]:
    """One law per group: the groups on one figure, and each group's own figures."""
    studies = {f"{group}={value}": (table.ok[table.ok[group] == value], one)
               for value, one in analyses.items()}  # fmt: skip
    paths = compare(studies, table.out / "plots")
    for value, one in analyses.items():
        rows = table.ok[table.ok[group] == value]
        paths += figures(
            rows, one, table.out / "plots" / str(value), title=f"{title}: {group} = {value}"
        )
    return paths
