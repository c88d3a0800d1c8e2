"""What `scale compare` writes: the figure (loss vs compute for both sides, the multiplier
beneath), the sections of compare.md / compare.html, and compare.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import store
from ..analysis.compare import ComputeLaw, quantile_interval
from . import render
from .plots import _loglog, _save, label, plt
from .sections import Frame, Section, fmt


def _ci(interval) -> str:
    lo, hi = interval
    return f"[{fmt(lo)}, {fmt(hi) if np.isfinite(hi) else '∞'}]"


def comparison_figure(result, out_dir: Path, stem: str = "compare") -> list[Path]:
    """Loss against compute for both sides with their laws; below, the multiplier with its 90%
    band, 1× marked, and the target where one was asked."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.5, 7), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 2]})  # fmt: skip
    sides = (result.baseline, result.variant)
    lo = min(s.compute.min() for s in sides)
    hi = max(s.compute.max() for s in sides)
    if result.target:
        hi = max(hi, result.target["compute"])
    grid = np.geomspace(lo, hi, 120)
    for i, side in enumerate(sides):
        top.scatter(side.compute, side.df[result.y], color=f"C{i}", s=22, zorder=3)
        top.plot(grid, side.law.loss(grid)[0], color=f"C{i}", label=side.name)
    _loglog(top, "", label(result.y), None)
    top.legend(fontsize=8)
    band = quantile_interval(_draws(result, grid), 0.90)
    from_laws = result.baseline.law.compute_for(result.variant.law.loss(grid))[0] / grid
    covered = min(s.compute.max() for s in sides)
    inside = grid <= covered
    # the axis shows the covered range's band (within 100× of the estimate); beyond, it may
    # reach infinity
    shown = np.concatenate([band[0][inside], band[1][inside], from_laws, [1.0]])
    shown = shown[np.isfinite(shown) & (shown > 0)]
    mid = np.median(from_laws[np.isfinite(from_laws)]) if np.isfinite(from_laws).any() else 1.0
    top_y = 1.3 * min(shown.max(), 100 * max(mid, 1.0))
    low_y = max(shown.min(), min(mid, 1.0) / 100) / 1.3
    bottom.fill_between(grid, np.clip(band[0], low_y, top_y), np.clip(band[1], low_y, top_y),
                        color="C1", alpha=0.2, label="90% interval")  # fmt: skip
    bottom.plot(grid, from_laws, color="C1", label="multiplier of the variant")
    bottom.axhline(1, color="0.4", linewidth=0.8)
    if hi > covered:
        bottom.axvspan(covered, hi, color="0.9", zorder=0, label="extrapolated")
    if result.target:
        bottom.axvline(result.target["compute"], color="0.3", linestyle=":", label="target")
    _loglog(bottom, label(result.x), "compute multiplier", None)
    bottom.set_ylim(low_y, top_y)
    bottom.legend(fontsize=8)
    fig.suptitle(f"{result.variant.name} against {result.baseline.name}")
    return _save(fig, out_dir, stem)


def _draws(result, grid) -> np.ndarray:
    b, v = result.baseline.draws, result.variant.draws
    r = min(len(b.E), len(v.E))
    cut = lambda law: ComputeLaw(law.E[:r], law.A[:r], law.alpha[:r])  # noqa: E731
    return cut(b).compute_for(cut(v).loss(grid)) / grid[None]


def comparison_sections(result, figures: list[Path]) -> list[Section]:
    """The answer first (multiplier per budget, its trend), then per size, the laws and notes."""
    b, v = result.baseline, result.variant
    rows = [{"compute": fmt(r["compute"]), "multiplier": fmt(r["multiplier"]),
             "90% interval": _ci(r["ci90"]), "95% interval": _ci(r["ci95"]),
             "": "extrapolated" if r["extrapolated"] else ""} for r in result.budgets]  # fmt: skip
    head = Section(f"{v.name} against {b.name}: compute multiplier", [
        f"The baseline compute that reaches the variant's loss, over the variant's compute "
        f"({label(result.x)}); above 1 the variant is better. Intervals: {result.paired}.",
        Frame(pd.DataFrame(rows)),
    ], figures)  # fmt: skip
    if result.trend:
        t = result.trend
        head.blocks.append(f"**Trend**: log multiplier changes by {t['slope']:+.3f} per unit log "
                           f"compute, 95% interval {_ci(t['ci95'])}: {t['verdict']}.")  # fmt: skip
    if result.target:
        t = result.target
        where = " (an extrapolation)" if t["extrapolated"] else ""
        head.blocks.append(f"**At {fmt(t['compute'])}**{where}: {fmt(t['multiplier'])}×, 90% "
                           f"interval {_ci(t['ci90'])}, 95% {_ci(t['ci95'])}.")  # fmt: skip
    out = [head]
    if result.wall:
        w = result.wall
        out.append(Section("Wall clock", [
            f"Throughput (median compute per second): baseline {fmt(w['rate_baseline'])}, variant "
            f"{fmt(w['rate_variant'])}; the wall-clock multiplier is the compute multiplier × "
            f"{w['ratio']:.3g}.",
            Frame(pd.DataFrame([{"compute": fmt(r["compute"]), "wall-clock multiplier":
                                 fmt(r["multiplier"]), "90% interval": _ci(r["ci90"])}
                                for r in w["budgets"]])),
        ]))  # fmt: skip
    if result.sizes:
        out.append(Section("At equal size", [
            "At each size both ran: the variant's measured loss, and the baseline compute that "
            "reaches it over the variant's compute there.",
            Frame(pd.DataFrame([{"N": fmt(r["size"]), "variant compute": fmt(r["compute"]),
                                 "variant loss": fmt(r["loss"]), "multiplier": fmt(r["multiplier"]),
                                 "90% interval": _ci(r["ci90"])} for r in result.sizes])),
        ]))  # fmt: skip
    laws = [f"- {s.name}: {_law(s)} ({s.fit.n_points} points)" for s in (b, v)]
    out.append(Section("Laws and notes", ["\n".join(laws + [f"- {n}" for n in result.notes])]))
    return out


def _law(side) -> str:
    """The side's fitted law, in C where it was fitted on compute."""
    text = side.fit.describe()
    return text if side.fit.form == "chinchilla" else text.replace("N^", "C^")


def write_comparison(result, out_dir: Path) -> dict:
    """compare.json, the figure, compare.md and compare.html in ``out_dir``."""
    figures = comparison_figure(result, out_dir)
    sections = comparison_sections(result, figures)
    title = f"{result.variant.name} against {result.baseline.name}"
    store.write_json(out_dir / "compare.json", result.record())
    store.atomic_write_text(out_dir / "compare.md", render.markdown(sections, out_dir))
    store.atomic_write_text(out_dir / "compare.html", render.page(sections, title))
    return {"sections": sections, "json": out_dir / "compare.json",
            "html": out_dir / "compare.html", "figures": figures}  # fmt: skip
