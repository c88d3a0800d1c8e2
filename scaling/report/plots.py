"""Figures of a study (matplotlib, Agg backend): PNG to read, SVG for papers. Plotting never fits."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

LABELS = {
    "params": "parameters N",
    "params_nonembedding": "non-embedding parameters N",
    "flops_total": "training compute C (FLOPs)",
    "flops_6nd": "training compute 6ND (FLOPs)",
    "train_examples": "training examples D",
    "train_tokens": "training tokens D",
    "train_size": "unique training examples",
    "val_loss": "validation loss (nats)",
    "best_val_loss": "best validation loss (nats)",
    "train_loss": "training loss (nats)",
    "val_accuracy": "validation accuracy",
    "examples": "training examples seen",
    "tokens": "training tokens seen",
}
EXTEND = 10.0  # the dashed extrapolation reaches this factor past the largest size


def label(column: str) -> str:
    return LABELS.get(column, column)


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def _loglog(ax, xlabel: str, ylabel: str, title: str | None):
    ax.set_xscale("log")
    ax.set_yscale("log")
    lo, hi = ax.get_xlim()
    if lo > 0 and hi / lo <= 100:  # matplotlib labels 2, 3, 4, 6…: they overlap side by side
        ax.xaxis.set_minor_formatter(FuncFormatter(_two_and_five))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)


def _two_and_five(x: float, _pos=None) -> str:
    """A minor tick's label only at 2 and 5 times a power of ten."""
    e = int(np.floor(np.log10(x)))
    m = round(x / 10**e)
    return rf"${m}\times10^{{{e}}}$" if m in (2, 5) else ""


def _draw_law(ax, fit, lo: float, hi: float, color, label_text: str | None, d=None):
    """The law solid over [lo, hi], dashed over the extrapolated range, with its 95% band."""
    inside = np.logspace(np.log10(lo), np.log10(hi), 100)
    beyond = np.logspace(np.log10(hi), np.log10(hi * EXTEND), 50)
    at = (lambda xs: None) if d is None else (lambda xs: np.full_like(xs, d))  # noqa: E731
    ax.plot(inside, fit.predict(inside, at(inside)), color=color, label=label_text)
    ax.plot(beyond, fit.predict(beyond, at(beyond)), color=color, linestyle="--")
    if fit.draws is not None:
        grid = np.concatenate([inside, beyond])
        low, high = fit.predict_interval(grid, at(grid))
        ax.fill_between(grid, low, high, color=color, alpha=0.15, linewidth=0)


def loss_vs_size(df, analysis, out_dir: Path, title: str | None = None) -> list[Path]:
    """Loss against size (log-log) over its residuals: the points, the study's law (the one
    the tables give) with its 95% band, extrapolated dashed; the law fitted without the
    largest size as its own labelled curve, and the held-out points marked."""
    fig = loss_vs_size_figure(df, analysis, title)
    return _save(fig, out_dir, f"loss_vs_{analysis.x}")


def loss_vs_size_figure(df, analysis, title: str | None = None):
    x, y = analysis.x, analysis.y
    fig, (ax, res) = plt.subplots(2, 1, figsize=(6, 6), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1], "hspace": 0.08})  # fmt: skip
    law = analysis.fits[0]
    checks = analysis.extrapolation.get(law.form, [])
    held = checks[0][1].held_out if checks else []
    if law.form == "chinchilla":
        _draw_slices(fig, ax, df, analysis, law)
    else:
        ax.scatter(df[x], df[y], color="C0", zorder=3, s=22, label="points")
        _draw_law(ax, law, df[x].min(), df[x].max(), "C1", "law: " + law.describe(tex=True))
        if law.ci and "alpha" in law.ci:
            lo, hi = law.ci["alpha"]
            ax.plot([], [], " ", label=rf"$\alpha$ 95% CI [{lo:.3f}, {hi:.3f}]")
    if checks:
        small = checks[0][0]
        kept = df.loc[~df[x].isin(held), x]
        grid = np.logspace(np.log10(kept.min()), np.log10(df[x].max() * EXTEND), 100)
        if law.form != "chinchilla":  # in 2-D the held-out check is read from its table
            ax.plot(grid, small.predict(grid), color="C3", linestyle=":", linewidth=1.3,
                    label="fitted without the largest: " + small.describe(tex=True))  # fmt: skip
        sel = df[x].isin(held)
        ax.scatter(df.loc[sel, x], df.loc[sel, y], facecolors="none", edgecolors="C3", s=70,
                   linewidths=1.5, zorder=4, label="held out in the check")  # fmt: skip
    if analysis.spread:
        s = analysis.spread
        ax.errorbar([r["x"] for r in s], [r["mean"] for r in s], yerr=[r["std"] for r in s],
                    fmt="none", ecolor="black", capsize=3, zorder=5, label="mean ± sd over seeds")  # fmt: skip
    _loglog(ax, "", label(y), title)
    ax.legend(fontsize=7)
    _residuals(res, df, analysis, law)
    return fig


def _draw_slices(fig, ax, df, analysis, law) -> None:
    """A 2-D study: one colour per data size, each with its slice of L(N, D)."""
    x, y = analysis.x, analysis.y
    ds = np.sort(df[analysis.d].unique())
    cmap, norm = plt.get_cmap("viridis"), LogNorm(ds.min(), max(ds.max(), ds.min() * 1.01))
    few = len(ds) <= 6  # a legend entry per data size; more get a colour bar
    for dv in ds:
        sel = df[analysis.d] == dv
        text = f"{label(analysis.d)} = {dv:.3g}" if few else None
        ax.scatter(df.loc[sel, x], df.loc[sel, y], color=cmap(norm(dv)), zorder=3, s=22, label=text)
        _draw_law(ax, law, df[x].min(), df[x].max(), cmap(norm(dv)), None, d=dv)
    if not few:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label(analysis.d))
    ax.plot([], [], color="gray", label="law: " + law.describe(tex=True))


def _residuals(ax, df, analysis, law) -> None:
    """Each point's relative residual from the law, against size; the seeds' noise shaded."""
    x = analysis.x
    d = df[analysis.d].to_numpy(float) if law.form == "chinchilla" else None
    residual = df[analysis.y].to_numpy(float) / law.predict(df[x].to_numpy(float), d) - 1
    ax.axhline(0, color="C1", linewidth=1)
    if analysis.noise is not None:
        ax.axhspan(
            -analysis.noise.sigma, analysis.noise.sigma, color="0.85", label="run-to-run noise"
        )
    ax.scatter(df[x], 100 * residual, color="C0", s=16, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel(label(x))
    ax.set_ylabel("residual (%)")
    ax.grid(True, which="both", alpha=0.3)


def loss_vs_compute(df, analysis, compute, out_dir: Path, title: str | None = None) -> list[Path]:
    """Loss against training compute, coloured by size, with the compute-optimal frontier where there is one.

    Args:
        compute: the compute of each row: measured FLOPs, or 6·N·D for tables without them.
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    sc = ax.scatter(
        compute, df[analysis.y], c=df[analysis.x], cmap="viridis", norm=LogNorm(), zorder=3, s=22
    )
    fig.colorbar(sc, ax=ax, label=label(analysis.x))
    if analysis.frontier is not None:
        chin = next(f for f in analysis.fits if f.form == "chinchilla")
        fr = analysis.frontier
        c = np.logspace(np.log10(compute.min()), np.log10(compute.max() * EXTEND), 100)
        ax.plot(c, chin.predict(fr.n_opt(c), fr.d_opt(c)), color="C3",
                label=rf"frontier: $N_{{opt}} \propto C^{{{fr.a:.2f}}}$, $D_{{opt}} \propto C^{{{fr.b:.2f}}}$")  # fmt: skip
    if analysis.isoflop is not None:
        for b in analysis.isoflop.budgets:
            ax.scatter([b["compute"]], [b["loss_opt"]], marker="*", s=150, color="C3" if not b["at_edge"] else "gray",
                       edgecolors="black", zorder=5)  # fmt: skip
        ax.scatter(
            [], [], marker="*", s=150, color="C3", edgecolors="black", label="IsoFLOP minima"
        )
    measured = compute.name == "flops_total"
    _loglog(
        ax,
        label("flops_total") if measured else "training compute 6ND (FLOPs)",
        label(analysis.y),
        title,
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, out_dir, "loss_vs_flops")


def isoflop_curves(df, analysis, out_dir: Path, title: str | None = None) -> list[Path]:
    """Loss against size for each compute budget, with the parabola in log N and its minimum."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    cmap = plt.get_cmap("plasma")
    budgets = analysis.isoflop.budgets
    for i, b in enumerate(budgets):
        color = cmap(i / max(1, len(budgets)))
        sel = df[analysis.c] == b["compute"]
        xs, ys = df.loc[sel, analysis.x].to_numpy(float), df.loc[sel, analysis.y].to_numpy(float)
        ax.scatter(xs, ys, color=color, s=22, zorder=3, label=f"C = {b['compute']:.2g}")
        p = np.polyfit(np.log(xs), ys, 2)
        grid = np.logspace(np.log10(xs.min()), np.log10(xs.max()), 100)
        ax.plot(grid, np.polyval(p, np.log(grid)), color=color, alpha=0.7)
        ax.scatter(
            [b["n_opt"]],
            [b["loss_opt"]],
            marker="*",
            s=150,
            color=color,
            edgecolors="black",
            zorder=5,
        )
    iso = analysis.isoflop
    if iso.exponent is not None:
        ax.plot([], [], " ", label=rf"$N_{{opt}} \propto C^{{{iso.exponent:.3f}}}$")
    ax.set_xscale("log")
    ax.set_xlabel(label(analysis.x))
    ax.set_ylabel(label(analysis.y))
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, "isoflop")


def accuracy_vs_size(df, x: str, out_dir: Path, title: str | None = None) -> list[Path]:
    fig, ax = plt.subplots(figsize=(6, 4.5))
    d = df.sort_values(x)
    ax.plot(d[x], d["val_accuracy"], marker="o", color="C2")
    ax.set_xscale("log")
    ax.set_xlabel(label(x))
    ax.set_ylabel(label("val_accuracy"))
    ax.grid(True, which="both", alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, out_dir, f"accuracy_vs_{x}")


def learning_curves(
    histories: dict, sizes: dict, out_dir: Path, title: str | None = None
) -> list[Path]:
    """Validation loss during training for every point, coloured by its size.

    Args:
        histories: point id -> history table (history.csv).
        sizes: point id -> parameter count.
    """
    fig, ax = plt.subplots(figsize=(6, 4.5))
    norm = LogNorm(min(sizes.values()), max(max(sizes.values()), min(sizes.values()) * 1.01))
    cmap = plt.get_cmap("viridis")
    along = "tokens" if all(h["tokens"].notna().all() for h in histories.values()) else "examples"
    for pid, h in sorted(histories.items(), key=lambda item: sizes[item[0]]):
        ax.plot(h[along], h["val_loss"], color=cmap(norm(sizes[pid])), linewidth=1.2)
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label("params"))
    _loglog(ax, label(along), label("val_loss"), title)
    return _save(fig, out_dir, "learning_curves")


def compare(studies: dict, out_dir: Path) -> list[Path]:
    """Several studies on one figure: each one's points and law.

    Args:
        studies: name -> (table, Analysis).
    """
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    x = y = None
    for i, (name, (df, analysis)) in enumerate(studies.items()):
        x, y, color = analysis.x, analysis.y, f"C{i}"
        law = analysis.fits[0] if analysis.fits and analysis.fits[0].form != "chinchilla" else None
        ax.scatter(df[x], df[y], color=color, s=22, zorder=3, label=None if law else name)
        if law is not None:
            _draw_law(ax, law, df[x].min(), df[x].max(), color, f"{name}: {law.describe(tex=True)}")
    _loglog(ax, label(x), label(y), "comparison")
    ax.legend(fontsize=8)
    return _save(fig, out_dir, f"compare_{x}")


def figures(
    df, analysis, out_dir: Path, histories: dict | None = None, title: str | None = None
) -> list[Path]:
    """Every figure the table supports; returns the PNG and SVG paths."""
    paths = loss_vs_size(df, analysis, out_dir, title) if analysis.fits else []
    if "flops_total" in df and df["flops_total"].notna().all() and df["flops_total"].gt(0).all():
        paths += loss_vs_compute(df, analysis, df["flops_total"], out_dir, title)
    elif analysis.d is not None:
        paths += loss_vs_compute(
            df, analysis, (6 * df[analysis.x] * df[analysis.d]).rename("6nd"), out_dir, title
        )
    if analysis.isoflop is not None:
        paths += isoflop_curves(df, analysis, out_dir, title)
    if "val_accuracy" in df and df["val_accuracy"].notna().all() and len(df):
        paths += accuracy_vs_size(df, analysis.x, out_dir, title)
    if histories:
        sizes = dict(zip(df["point_id"], df["params"])) if "point_id" in df else {}
        histories = {k: v for k, v in histories.items() if k in sizes}
        if histories:
            paths += learning_curves(histories, sizes, out_dir, title)
    return paths
