"""Branched cooldowns against separate runs: `mlp_size_data_branched` and `mlp_size_data`.

The same grid (MLP widths 16–256 × 7 training lengths, 250–4000 steps), trained as one
constant-lr trunk per width with a wsd cooldown branch per length, and as 35 separate cosine
runs. Prints each (N, D)'s loss both ways, the FLOPs each study spent, and α, β of L(N, D)
from each with their 95% intervals.

    python benchmarks/branches.py      # runs the two presets unless outputs/ has them (~80 s)
"""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd

from scaling import analyze, load_table


def study(name: str) -> pd.DataFrame:
    try:
        return pd.read_csv(f"outputs/{name}/results.csv")
    except FileNotFoundError:
        subprocess.run(["scale", "sweep", name, "--bootstrap", "0"], check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        return pd.read_csv(f"outputs/{name}/results.csv")


def main() -> None:
    b, s = study("mlp_size_data_branched"), study("mlp_size_data")
    branches, trunks = b[b["role"] == "branch"], b[b["role"] == "trunk"]
    table = lambda df: df.pivot_table(index="model.width", columns="steps", values="val_loss")  # noqa: E731
    diff = (table(branches) - table(s)) / table(s)
    print("branch loss over separate cosine run − 1 (rows: width, columns: steps)")
    print((100 * diff).round(1).to_string())
    within = int((diff.abs() <= 0.02).sum().sum())
    print(f"within 2%: {within} of {diff.size}; median |difference| {100 * np.median(np.abs(diff.values)):.1f}%")
    spent = trunks["flops_total"].sum() + (
        (branches["steps"] - branches["branch_start"]) * branches["flops_per_step"]
    ).sum()
    print(f"FLOPs: branched {spent:.4g}, separate {s['flops_total'].sum():.4g} "
          f"({spent / s['flops_total'].sum():.1%})")  # fmt: skip
    for name in ("mlp_size_data_branched", "mlp_size_data"):
        fit = analyze(load_table(f"outputs/{name}", ["params", "val_loss"]), bootstrap=1000).fits[0]
        ci = {k: f"{fit.params[k]:.3f} [{lo:.3f}, {hi:.3f}]" for k, (lo, hi) in fit.ci.items()
              if k in ("alpha", "beta")}  # fmt: skip
        print(f"{name}: {fit.describe()}; alpha {ci['alpha']}, beta {ci['beta']}")


if __name__ == "__main__":
    main()
