"""Figures of studies beyond size: compression, distillation, width transfer and the
coordinate check. Plotting never fits."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.ticker import NullFormatter

from ..analysis.transfer import LR, NAMES, PAR, scores, transfer_table, width_column
from ..store import split_variant
from .plots import _loglog, _save, label

MARKERS = {"none": "o", "prune": "^", "quantize": "s", "cast": "D"}


def accuracy_vs_bytes(df, out_dir: Path, title: str | None = None) -> list[Path]:
    """Every model, as trained and compressed: validation accuracy against bytes on disk.

    Colour is the size, the marker the compression; the line is the Pareto front (the best
    accuracy at or below each size in bytes).
    """
    d = df[df["model_bytes"].notna() & df["val_accuracy"].notna()].sort_values("model_bytes")
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    norm = LogNorm(d["params"].min(), max(d["params"].max(), d["params"].min() * 1.01))
    cmap = plt.get_cmap("viridis")
    for method, group in d.groupby(d["compression"].fillna("none")):
        ax.scatter(group["model_bytes"], group["val_accuracy"], c=cmap(norm(group["params"])),
                   marker=MARKERS.get(method, "o"), s=30, label=method, zorder=3)  # fmt: skip
    front = d[d["val_accuracy"] >= d["val_accuracy"].cummax()]
    ax.step(front["model_bytes"], front["val_accuracy"], where="post", color="0.3", lw=1,
            label="Pareto front")  # fmt: skip
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label("params"))
    ax.set_xscale("log")
    ax.set_xlabel("model size on disk (bytes)")
    ax.set_ylabel(label("val_accuracy"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _save(fig, out_dir, "accuracy_vs_bytes")


def loss_vs_sparsity(df, out_dir: Path, title: str | None = None) -> list[Path]:
    """Validation loss of each size as more of its weights are pruned (0: as trained)."""
    d = df.assign(base=df["point_id"].map(lambda pid: split_variant(pid)[0]))
    d = d[d["compression"].isin(["none", "prune"])]
    d = d.assign(sparsity=d["sparsity"].where(d["compression"] == "prune", 0.0))
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    norm = LogNorm(d["params"].min(), max(d["params"].max(), d["params"].min() * 1.01))
    cmap = plt.get_cmap("viridis")
    for _, group in d.groupby("base"):
        if (group["compression"] == "prune").any():
            g = group.sort_values("sparsity")
            ax.plot(g["sparsity"], g["val_loss"], marker="o", ms=3,
                    color=cmap(norm(g["params"].iloc[0])))  # fmt: skip
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label("params"))
    ax.set_yscale("log")
    ax.set_xlabel("sparsity (fraction of weights pruned)")
    ax.set_ylabel(label("val_loss"))
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, out_dir, "loss_vs_sparsity")


def distilled_vs_plain(df, x: str, out_dir: Path, title: str | None = None) -> list[Path]:
    """Students trained alone (α = 0) and distilled (each α > 0) against size; the teacher starred."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    teacher = df["label"].fillna("").str.startswith("teacher")
    for i, (alpha, group) in enumerate(df[~teacher].groupby("distill.alpha")):
        g = group.sort_values(x)
        name = "trained alone" if alpha == 0 else f"distilled (α={alpha:g})"
        ax.plot(g[x], g["val_loss"], marker="o", color=f"C{i}", label=name)
    if teacher.any():
        t = df[teacher]
        ax.scatter(t[x], t["val_loss"], marker="*", s=150, color="k", label="teacher", zorder=4)
    _loglog(ax, label(x), label("val_loss"), title)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "distilled_vs_plain")


def plot_lr_transfer(df: pd.DataFrame, path: Path) -> list[Path]:
    """val_loss against lr (log x), one line per width, one panel per parametrisation, optima starred.

    Args:
        df: the results table (as for ``transfer_table``).
        path: where to save; the PNG and SVG take its stem (``plots/lr_transfer``).

    Returns:
        The PNG and SVG paths.
    """
    w = width_column(df)
    d = df.assign(_score=scores(df))
    table = transfer_table(df)
    pars = [p for p in ("sp", "mup") if p in set(d[PAR])]
    widths = sorted(d[w].unique())
    cmap = plt.get_cmap("viridis")
    fig, axes = plt.subplots(1, len(pars), figsize=(5 * len(pars), 4), sharey=True, squeeze=False)
    finite = d["_score"][np.isfinite(d["_score"])]
    for ax, par in zip(axes[0], pars):
        for j, width in enumerate(widths):
            color = cmap(j / max(1, len(widths) - 1))
            curve = d[(d[PAR] == par) & (d[w] == width)].groupby(LR)["_score"].mean().sort_index()
            curve = curve[np.isfinite(curve)]  # diverged points leave a gap
            ax.plot(curve.index, curve.to_numpy(), marker="o", ms=3, color=color,
                    label=f"{w.split('.')[-1]} = {width:g}")  # fmt: skip
            best = table[(table["parametrization"] == par) & (table["width"] == width)]
            if len(best) and np.isfinite(best["val_loss"].iloc[0]):
                ax.scatter(best["lr_opt"], best["val_loss"], marker="*", s=160, color=color,
                           edgecolors="black", zorder=5)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("learning rate (optim.lr)")
        ax.set_title(NAMES.get(par, par))
        ax.grid(True, which="both", alpha=0.3)
    if len(finite):  # keep the optima in view when high learning rates blow up the loss
        lo, hi = finite.min(), finite.quantile(0.9)
        axes[0][0].set_ylim(lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
    axes[0][0].set_ylabel(label("val_loss"))
    axes[0][-1].legend(fontsize=8)
    path = Path(path)
    return _save(fig, path.parent, path.stem)


def plot_coord_check(
    coords: pd.DataFrame, path: Path, layers: list[str] | None = None
) -> list[Path]:
    """Mean |activation| against width (log-log), one line per step; rows layers, columns parametrisations.

    Under μP the lines are flat; under sp the later steps' rise with width.

    Args:
        coords: ``mup.coord_check``'s table.
        path: where to save; the PNG and SVG take its stem.
        layers: the layers to draw; default: the last hidden layer and the logits.

    Returns:
        The PNG and SVG paths.
    """
    if layers is None:
        order = [name for name in dict.fromkeys(coords["layer"]) if name != "logits"]
        layers = order[-1:] + ["logits"]
    pars = [p for p in ("sp", "mup") if p in set(coords["parametrization"])]
    steps = sorted(coords["step"].unique())
    widths = sorted(coords["width"].unique())
    cmap = plt.get_cmap("plasma")
    fig, axes = plt.subplots(len(layers), len(pars), figsize=(4.5 * len(pars), 3.5 * len(layers)),
                             sharey="row", squeeze=False)  # fmt: skip
    for r, layer in enumerate(layers):
        for c, par in enumerate(pars):
            ax = axes[r][c]
            sel = coords[(coords["layer"] == layer) & (coords["parametrization"] == par)]
            for k, step in enumerate(steps):
                s = sel[(sel["step"] == step) & (sel["act"] > 0)].sort_values("width")
                ax.plot(s["width"], s["act"], marker="o", ms=3,
                        color=cmap(k / max(1, len(steps) - 1)), label=f"step {step}")  # fmt: skip
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xticks(widths, [f"{v:g}" for v in widths])
            ax.xaxis.set_minor_formatter(NullFormatter())
            where = "logits" if layer == "logits" else f"layer {layer}"
            ax.set_title(f"{NAMES.get(par, par)}: {where}")
            ax.set_xlabel("width")
            ax.grid(True, which="both", alpha=0.3)
        axes[r][0].set_ylabel("mean |activation|")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    return _save(fig, path.parent, path.stem)


def loss_vs_lr(df: pd.DataFrame, law, out_dir: Path, title: str | None = None) -> list[Path]:
    """Left: loss against lr at each tuned size, its best lr starred. Right: the best lrs and
    the fitted lr*(N) against N, with the lr each trained size used."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    cmap = plt.get_cmap("viridis")
    for j, b in enumerate(law.best):
        color = cmap(j / max(1, len(law.best) - 1))
        left.plot(b.lrs, b.losses, marker="o", ms=3, color=color, label=f"N = {b.size:,.0f}")
        left.scatter([b.lr], [np.interp(np.log(b.lr), np.log(b.lrs), b.losses)], marker="*", s=160,
                     color=color, edgecolors="black", zorder=5)  # fmt: skip
    left.set_xscale("log")
    left.xaxis.set_minor_formatter(NullFormatter())
    left.set_xlabel("learning rate")
    left.set_ylabel(label("val_loss"))
    left.set_title("tuning runs (★ best lr, parabola vertex)")
    left.legend(fontsize=8)
    sizes = np.array([b.size for b in law.best])
    trained = df[df.get("lr_source", pd.Series(dtype=str)).eq("tuned")]
    n = pd.to_numeric(trained.get("params_nonembedding"), errors="coerce").dropna()
    grid = np.geomspace(min(sizes.min(), n.min() if len(n) else sizes.min()),
                        max(sizes.max(), n.max() if len(n) else sizes.max()), 50)  # fmt: skip
    right.plot(grid, law(grid), color="k", label=law.text())
    right.scatter(sizes, [b.lr for b in law.best], marker="*", s=120, color="tab:orange",
                  edgecolors="black", zorder=5, label="best lr of a tuned size")  # fmt: skip
    if len(n):
        right.scatter(n, trained.loc[n.index, "lr"], color="tab:blue", s=20, zorder=4,
                      label="lr each size trained at")  # fmt: skip
    right.set_xscale("log")
    right.set_yscale("log")
    right.xaxis.set_minor_formatter(NullFormatter())
    right.yaxis.set_minor_formatter(NullFormatter())
    right.set_xlabel("N (non-embedding parameters)")
    right.set_ylabel("learning rate")
    right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save(fig, Path(out_dir), "lr_per_size")
