"""What `scale compare` writes: the figure (loss vs compute for both sides, the multiplier
beneath), the sections of compare.md / compare.html, and compare.json."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import store
from ..analysis.compare import multiplier, paired_draws, quantile_interval
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
    band = quantile_interval(multiplier(*paired_draws(result), grid), 0.90)
    from_laws = multiplier(result.baseline.law, result.variant.law, grid)[0]
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


def comparison_sections(result, figures: list[Path]) -> list[Section]:
    """The answer first (multiplier per budget, its trend), then per size, the laws and notes."""
    b, v = result.baseline, result.variant
    rows = [{"compute": fmt(r["compute"]), "multiplier": fmt(r["multiplier"]),
             "90% interval": _ci(r["ci90"]), "95% interval": _ci(r["ci95"]),
             "": "extrapolated" if r["extrapolated"] else ""} for r in result.budgets]  # fmt: skip
    if not any(r["extrapolated"] for r in result.budgets):
        rows = [{key: cell for key, cell in r.items() if key} for r in rows]
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


def design_sections(
    name, grid, tuning, expected, optima, target, noise, rate, source
) -> list[Section]:
    """`scale design check`: what a study of the grid can expect, where each budget's optimum
    falls, and what the grid costs."""
    n = grid["params"]
    flops = float(grid["flops"].sum()) + tuning
    cost = f"{fmt(flops)} FLOPs" + (f" (of which lr tuning {fmt(tuning)})" if tuning else "")
    cost += f", about {fmt(flops / rate)} s at the prior study's throughput" if rate else ""
    at = "N = " + fmt(target[0]) + (f", D = {fmt(target[1])}" if len(target) > 1 else "")
    rows = [{"quantity": "loss at " + at if q == "loss at target" else q, "prior": fmt(est),
             "expected 95% interval": _ci((lo, hi)), "± (half width)": fmt((hi - lo) / 2)}
            for q, (est, lo, hi) in expected.ranges.items()]  # fmt: skip
    blocks = [
        f"{len(grid)} points, N from {fmt(n.min())} to {fmt(n.max())} ({n.max() / n.min():.3g}×). "
        f"Prior: {source}; noise of log loss {noise:.3g}. {expected.studies} simulated studies, "
        "each refitted as the bootstrap refits.",
        Frame(pd.DataFrame(rows)),
        f"**Cost**: {cost}.",
    ]
    if optima:
        blocks.append("Each budget's optimum under the prior, against the sizes it runs:")
        blocks.append(Frame(pd.DataFrame([
            {"budget": fmt(r["budget"]), "N_opt": fmt(r["n_opt"]),
             "sizes": f"{fmt(r['smallest'])} – {fmt(r['largest'])}",
             "inside": "yes" if r["inside"] else "NO", "centre / N_opt": f"{r['off_centre']:.3g}"}
            for r in optima])))  # fmt: skip
    return [Section(f"Design of {name}", blocks)]


def suggest_sections(name, fit, n_target, noise, picks, nxt, path, command, now) -> list[Section]:
    """`scale design suggest`: the picks, what they do to the target, and the next grid size's
    effect for comparison."""
    sd0 = fit_sd = picks[0]["sd_before"] if picks else None
    blocks = [f"Target: the loss at N = {fmt(n_target)} under {fit.describe()}, now "
              f"{fmt(float(fit.predict(n_target)[0]))} with 95% interval {_ci((now[0][0], now[1][0]))} "
              f"(bootstrap); noise of log loss {noise:.3g}."]  # fmt: skip
    if not picks:
        blocks.append("Its interval is already as tight as asked: nothing to run.")
        return [Section(f"Next points for {name}", blocks)]
    rows = [{"#": i + 1, "point": " ".join(p["overrides"]), "N": fmt(p["n"]),
             "FLOPs": fmt(float(p["flops"])), "kind": p["kind"], "sd after": f"{p['sd_after']:.4f}"}
            for i, p in enumerate(picks)]  # fmt: skip
    spent = float(sum(p["flops"] for p in picks))
    blocks += [
        f"Its standard deviation in log loss, linearised: {fit_sd:.4f}. Each pick lowers it most "
        "per FLOP:",
        Frame(pd.DataFrame(rows)),
        f"**The picks**: {fmt(spent)} FLOPs bring it to {picks[-1]['sd_after']:.4f}: "
        f"{fmt((sd0 - picks[-1]['sd_after']) / spent)} per FLOP.",
    ]
    if nxt:
        gain = (sd0 - nxt["sd_after"]) / nxt["flops"]
        blocks.append(f"**The next size of the grid instead** ({' '.join(nxt['overrides'])}): "
                      f"{fmt(float(nxt['flops']))} FLOPs bring it to {nxt['sd_after']:.4f}: {fmt(gain)} per FLOP.")  # fmt: skip
    blocks.append(f"Written: {path}. Run: `{command}`")
    if fit.noise is not None and fit.noise.source == "residuals" and fit.noise.dof < 5:
        blocks.append(f"**Note**: the noise ({fit.noise.sigma:.3g}) comes from the residuals, with "
                      f"{fit.noise.dof} degrees of freedom; the intervals rest on it. A size run "
                      "at two or three seeds measures it.")  # fmt: skip
    return [Section(f"Next points for {name}", blocks)]
