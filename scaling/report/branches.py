"""The report of branched cooldowns (``trainer.branches``): what the sweep spent against
separate runs of the same budgets, and each size's trunk and branch curves."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.colors import LogNorm

from .plots import _loglog, _save, label, plt
from .sections import Frame, Section, fmt


def _parts(ok: pd.DataFrame):
    """(branch rows, trunk rows, each branch's cooldown FLOPs), or None without branches."""
    if "role" not in ok or not ok["role"].eq("branch").any():
        return None
    branches, trunks = ok[ok["role"] == "branch"], ok[ok["role"] == "trunk"]
    cooldown = (branches["steps"] - branches["branch_start"]) * branches["flops_per_step"]
    return branches, trunks, cooldown


def spent_line(ok: pd.DataFrame) -> str | None:
    """The FLOPs the trunks and cooldowns spent, against separate runs of every budget."""
    parts = _parts(ok)
    if parts is None:
        return None
    branches, trunks, cooldown = parts
    spent, separate = trunks["flops_total"].sum() + cooldown.sum(), branches["flops_total"].sum()
    return (f"{len(branches)} branches from {len(trunks)} trunks spent {fmt(float(spent))} FLOPs: "
            f"{spent / separate:.0%} of the {fmt(float(separate))} that separate runs of the "
            "same budgets cost")  # fmt: skip


def branches_section(ok: pd.DataFrame) -> Section | None:
    """Per size: the trunk's length, its branches, and the FLOPs spent against separate runs."""
    parts = _parts(ok)
    if parts is None:
        return None
    branches, trunks, cooldown = parts
    rows = []
    for n, own in branches.groupby("params"):
        trunk = trunks[trunks["params"] == n]
        spent = trunk["flops_total"].sum() + cooldown[own.index].sum()
        rows.append({"N": fmt(n), "trunk steps": fmt(int(trunk["steps"].max())) if len(trunk) else "",
                     "branches": len(own), "FLOPs spent": fmt(float(spent)),
                     "separate runs": fmt(float(own["flops_total"].sum()))})  # fmt: skip
    return Section("Branches", [
        f"{spent_line(ok)}. One constant-lr trunk per size; each branch cools down from the "
        "trunk's snapshot at its start, and its row counts the FLOPs that produced its model "
        "(the trunk to its start, then its cooldown). The trunks' losses are not fit points.",
        Frame(pd.DataFrame(rows)),
    ])  # fmt: skip


def branch_curves(ok: pd.DataFrame, histories: dict, out_dir: Path, title: str | None = None):
    """Each size's trunk (thin) and its branches' cooldowns (thick), coloured by size."""
    parts = _parts(ok)
    if parts is None or not histories:
        return []
    branches, trunks, _ = parts
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    norm = LogNorm(ok["params"].min(), max(ok["params"].max(), ok["params"].min() * 1.01))
    cmap = plt.get_cmap("viridis")
    for _, row in pd.concat([trunks, branches]).iterrows():
        h = histories.get(row["point_id"])
        if h is None or h.empty:
            continue
        if row["role"] == "branch":
            h = h[h["step"] >= row["branch_start"]]
        ax.plot(h["examples"], h["val_loss"], color=cmap(norm(row["params"])),
                linewidth=0.8 if row["role"] == "trunk" else 2.0,
                linestyle=":" if row["role"] == "trunk" else "-")  # fmt: skip
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=label("params"))
    _loglog(ax, label("examples"), label("val_loss"), title or "trunks (dotted) and branches")
    return _save(fig, out_dir, "branches")
