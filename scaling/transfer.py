"""Learning-rate transfer across width (μP): the best lr per width, its figures, a report section.

A study for this varies the width, ``optim.lr`` and ``model.parametrization`` (the
``lr_transfer`` preset). Under sp the best lr moves with width; under μP it should
stay put. Analysis here is pure functions of the results table; plotting never fits.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from .plots import _save, label  # noqa: E402

PAR, LR = "model.parametrization", "optim.lr"
WIDTH_COLUMNS = ("model.width", "model.d_model")  # the width field of each μP family
NAMES = {"sp": "sp", "mup": "μP"}


def width_column(df: pd.DataFrame) -> str | None:
    """The table's width column: the first of ``WIDTH_COLUMNS`` that is filled in."""
    return next((c for c in WIDTH_COLUMNS if c in df and df[c].notna().all()), None)


def _usable(df: pd.DataFrame) -> bool:
    return (
        PAR in df
        and LR in df
        and width_column(df) is not None
        and {"sp", "mup"} <= set(df[PAR].dropna())
        and df[LR].nunique() >= 2
    )


def _scores(df: pd.DataFrame) -> pd.Series:
    """val_loss of ok rows; a failed, diverged or NaN row scores +inf (worse than any loss)."""
    ok = df["status"].eq("ok") if "status" in df else pd.Series(True, index=df.index)
    loss = pd.to_numeric(df["val_loss"], errors="coerce")
    return loss.where(ok & np.isfinite(loss), np.inf)


def transfer_table(df: pd.DataFrame) -> pd.DataFrame:
    """The best learning rate per parametrisation and width.

    The optimum is the grid lr with the lowest ``val_loss`` among rows with status
    ok (failed, diverged and NaN rows count as worse than any loss; seeds of one
    setting are averaged). ``lr_interp`` refines it with the vertex of a parabola in
    log lr through the optimum and its two neighbours (the grid value where the
    optimum is at an edge of the grid, or the parabola opens downwards).

    Args:
        df: a results table with ``model.parametrization``, ``optim.lr``, a width
            column (``model.width`` or ``model.d_model``) and ``val_loss``.

    Returns:
        One row per (parametrization, width): ``lr_opt``, ``lr_interp``, ``val_loss``
        (at lr_opt), ``n_lr`` (learning rates tried), ``at_edge`` (the optimum is the
        smallest or largest lr tried, so the true optimum may lie outside). lr_opt is
        NaN where no row of that width trained.
    """
    w = width_column(df)
    d = df.assign(_score=_scores(df))
    rows = []
    for (par, width), g in d.groupby([PAR, w], sort=True):
        curve = g.groupby(LR)["_score"].mean().sort_index()  # inf stays inf
        lrs, losses = curve.index.to_numpy(float), curve.to_numpy(float)
        row = {"parametrization": par, "width": width, "n_lr": len(lrs)}
        if not np.isfinite(losses).any():
            rows.append(row | {"lr_opt": np.nan, "lr_interp": np.nan, "val_loss": np.nan,
                               "at_edge": False})  # fmt: skip
            continue
        i = int(np.argmin(losses))
        interp = lrs[i]
        if 0 < i < len(lrs) - 1 and np.isfinite(losses[i - 1 : i + 2]).all():
            a, b, _ = np.polyfit(np.log10(lrs[i - 1 : i + 2]), losses[i - 1 : i + 2], 2)
            if a > 0:
                interp = 10 ** (-b / (2 * a))
        rows.append(row | {"lr_opt": lrs[i], "lr_interp": interp, "val_loss": losses[i],
                           "at_edge": i in (0, len(lrs) - 1)})  # fmt: skip
    cols = ["parametrization", "width", "lr_opt", "lr_interp", "val_loss", "n_lr", "at_edge"]
    return pd.DataFrame(rows, columns=cols)


def spread_decades(table: pd.DataFrame, column: str = "lr_opt") -> dict[str, float]:
    """log10(max/min) of the optimal lr across widths, per parametrisation (0: perfect transfer)."""
    out = {}
    for par, g in table.groupby("parametrization"):
        v = g[column].dropna().to_numpy(float)
        out[par] = float(np.log10(v.max() / v.min())) if len(v) else math.nan
    return out


def plot_lr_transfer(df: pd.DataFrame, path: Path) -> list[Path]:
    """val_loss against lr (log x), one line per width, one panel per parametrisation, optima starred.

    Args:
        df: the results table (as for ``transfer_table``).
        path: where to save; the PNG and SVG take its stem (``plots/lr_transfer``).

    Returns:
        The PNG and SVG paths.
    """
    w = width_column(df)
    d = df.assign(_score=_scores(df))
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


def _fmt_lr(v) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def coord_overrides(row: pd.Series) -> list[str]:
    """Overrides that compose a results row's point again (its group, data and optimizer fields)."""
    family, data = row["model.family"], row["data.name"]
    out = [f"model={family}", f"data={data}", "trainer.device=cpu"]
    if row.get("optim.name") == "sgd":
        out.append("optim=sgd")
    skip = {"model.family", "model.size", "data.name", "optim.name"}
    for key, value in row.items():
        if key in skip or key.split(".")[0] not in ("model", "data", "optim"):
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if isinstance(value, float) and value.is_integer() and not key.startswith("optim."):
            value = int(value)  # pandas turns int columns with gaps into floats
        if isinstance(value, str):
            value = "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        out.append(f"{key}={value}")
    return out + [f"trainer.seed={int(row.get('trainer.seed', 0) or 0)}"]


def transfer_section(df: pd.DataFrame, plots_dir: Path, steps: int = 10):
    """The learning-rate transfer section as (heading, blocks, figures), or None.

    None when the table is not such a study: it needs ``model.parametrization`` with
    both sp and mup, at least two values of ``optim.lr`` and a width column. Blocks
    are text and tables (DataFrames); figures are the PNG and SVG files written into
    ``plots_dir`` (``lr_transfer`` and ``coord_check``). The
    coordinate check trains each of the study's widths for ``steps`` steps on CPU,
    with the study's settings and the μP optimum at the smallest width as learning rate.
    """
    from .mup import coord_check, coord_growth

    if not _usable(df):
        return None
    plots_dir = Path(plots_dir)
    table = transfer_table(df)
    if table["lr_opt"].isna().all():
        return None
    w = width_column(df)
    wide = table.pivot(index="width", columns="parametrization", values="lr_opt")
    interp = table.pivot(index="width", columns="parametrization", values="lr_interp")
    edge = table.pivot(index="width", columns="parametrization", values="at_edge")
    rows = []
    for width in wide.index:
        row = {w.split(".")[-1]: f"{width:g}"}
        for par in ("sp", "mup"):
            star = " (edge)" if edge.loc[width, par] else ""
            row[f"best lr, {NAMES[par]}"] = _fmt_lr(wide.loc[width, par]) + star
            row[f"interpolated, {NAMES[par]}"] = _fmt_lr(interp.loc[width, par])
        rows.append(row)
    grid, fine = spread_decades(table), spread_decades(table, "lr_interp")
    blocks = [
        "The learning rate with the lowest validation loss at each width (ok points only; "
        "'interpolated' is the vertex of a parabola in log lr through the best point and its "
        "neighbours; '(edge)' marks an optimum at the end of the lr grid).",
        pd.DataFrame(rows),
        "Spread of the best lr across widths: "
        + "; ".join(
            f"{NAMES[p]} {grid[p]:.2f} decades on the grid ({fine[p]:.2f} interpolated)"
            for p in ("sp", "mup")
        )
        + ". Transfer means a spread near 0.",
    ]
    figures = plot_lr_transfer(df, plots_dir / "lr_transfer")
    ok = df[_scores(df) < np.inf]
    smallest = table[(table["parametrization"] == "mup")].sort_values("width")["lr_opt"].dropna()
    if len(ok) and len(smallest):
        lr = float(smallest.iloc[0])
        widths = sorted(int(v) for v in df[w].unique())
        coords = coord_check(coord_overrides(ok.iloc[0]), widths=widths, steps=steps, lr=lr)
        hidden = [name for name in dict.fromkeys(coords["layer"]) if name != "logits"][-1]
        figures += plot_coord_check(coords, plots_dir / "coord_check", [hidden, "logits"])
        growth = {name: coord_growth(coords, name) for name in (hidden, "logits")}
        blocks.append(
            f"Coordinate check: {steps} steps at lr {lr:.3g} (the μP optimum at width "
            f"{widths[0]}) at each width, mean |activation| per coordinate. From width "
            f"{widths[0]} to {widths[-1]} it changes by at most "
            + "; ".join(
                f"×{g['sp']:.2f} under sp and ×{g['mup']:.2f} under μP ({name})"
                for name, g in growth.items()
            )
            + ". Under μP it should stay near ×1."
        )
    return "Width transfer (μP)", blocks, figures


def report_section(df: pd.DataFrame, plots_dir: Path, steps: int = 10) -> str | None:
    """``transfer_section`` as Markdown, its figures linked as ``<plots_dir name>/….png``."""
    section = transfer_section(df, plots_dir, steps)
    if section is None:
        return None
    heading, blocks, figures = section
    lines = [f"## {heading}\n"]
    for b in blocks:
        lines.append(b.to_markdown(index=False) + "\n" if isinstance(b, pd.DataFrame) else b + "\n")
    lines += [f"![{f.stem.replace('_', ' ')}]({Path(plots_dir).name}/{f.name})\n"
              for f in figures if f.suffix == ".png"]  # fmt: skip
    return "\n".join(lines)
