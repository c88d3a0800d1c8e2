"""Figures of a study (matplotlib, Agg backend): PNG to read, SVG for papers. Plotting never fits."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

LABELS = {
    "params": "parameters N",
    "params_nonembedding": "non-embedding parameters N",
    "flops_total": "training compute C (FLOPs)",
    "train_examples": "training examples D",
    "train_tokens": "training tokens D",
    "val_loss": "validation loss (nats)",
    "train_loss": "training loss (nats)",
    "val_accuracy": "validation accuracy",
}


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.svg"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def loss_vs_size(
    df, fit, out_dir: Path, x: str = "params", y: str = "val_loss", title: str | None = None
) -> list[Path]:
    """Loss against size on log-log axes: the points, the fitted law and its law in the legend."""
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(df[x], df[y], color="C0", zorder=3, label="points")
    if fit is not None:
        lo, hi = df[x].min(), df[x].max()
        grid = np.logspace(np.log10(lo), np.log10(hi), 200)
        ax.plot(grid, fit.predict(grid), color="C1", label=fit.describe(tex=True))
        if fit.ci and "alpha" in fit.ci:
            a_lo, a_hi = fit.ci["alpha"]
            ax.plot([], [], " ", label=rf"$\alpha$ 95% CI [{a_lo:.3f}, {a_hi:.3f}]")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(LABELS.get(x, x))
    ax.set_ylabel(LABELS.get(y, y))
    if title:
        ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out_dir, f"loss_vs_{x}")
