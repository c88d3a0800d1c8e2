"""Branches (wsd) against separate cosine runs, each schedule at its own best lr.

`benchmarks/branches.py` compares the two at one lr for every width, where the schedules
differ. Here each (width, length) point is trained at several lrs both ways (branches from
one trunk per width and lr; separate cosine runs), and the best loss of each schedule is
compared, and so is each lr's pair: MLPs on MNIST-1D (widths 32, 128; 630, 1600 and 4000
steps), or with ``--lm`` byte-level transformers on the standard library's source
(`transformer_lm`'s shape, d_model 32 and 64; 5, 10 and 20 tokens per parameter), or with
``--long`` the same transformers trained longer (d_model 48, 64, 96; 20 and 40 tokens per
parameter; lrs 0.0025-0.01).

    python benchmarks/wsd_vs_cosine.py [--lm | --long] [WORKDIR]
    # ~2 (MLP), ~6 (--lm) or ~40 (--long) minutes on a 2-core CPU
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

import pandas as pd

STUDIES = {  # preset, widths, lengths (in the preset's budget unit), lrs, the width's column
    "mlp": ("mlp_size_data", "model.width=32,128", (630, 1600, 4000), "0.005,0.01,0.02,0.04",
            "model.width"),
    "lm": ("transformer_lm", "model.d_model=32,64", (5, 10, 20), "0.0025,0.005,0.01,0.02,0.04",
           "model.d_model"),
    "lm_long": ("transformer_lm", "model.d_model=48,64,96", (20, 40), "0.0025,0.005,0.01",
                "model.d_model"),
}  # fmt: skip


def sweep(work: Path, out: str, *argv: str) -> pd.DataFrame:
    if not (work / out / "results.csv").exists():
        subprocess.run(["scale", "sweep", *argv, "--out", out, "--bootstrap", "0"], cwd=work,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return pd.read_csv(work / out / "results.csv")


def main(work: Path, study: str) -> None:
    preset, widths, lengths, lrs, width = STUDIES[study]
    work.mkdir(parents=True, exist_ok=True)
    listed = ",".join(map(str, lengths))
    if study != "mlp":  # transformer_lm tunes its lr per size: here the lrs are the grid
        cosine = sweep(work, "cosine", preset, "tune.lrs=[]", widths,
                       f"trainer.tokens_per_param={listed}", f"optim.lr={lrs}")  # fmt: skip
        wsd = sweep(work, "branched", preset, "tune.lrs=[]", widths, f"optim.lr={lrs}",
                    "optim.schedule=wsd", "optim.decay=0.2", f"trainer.branches=[{listed}]")  # fmt: skip
    else:
        cosine = sweep(work, "cosine", preset, widths, f"trainer.steps={listed}", f"optim.lr={lrs}")
        wsd = sweep(work, "branched", f"{preset}_branched", widths, f"optim.lr={lrs}",
                    f"trainer.branches=[{listed}]")  # fmt: skip
    wsd = wsd[wsd["role"] == "branch"]
    rows, same = [], []
    for (w, n), c in cosine.groupby([width, "steps"]):
        b = wsd[(wsd[width] == w) & (wsd["steps"] == n)]
        bc, bw = c.loc[c["val_loss"].idxmin()], b.loc[b["val_loss"].idxmin()]
        rows.append({"width": w, "steps": n, "cosine": bc["val_loss"], "lr cosine": bc["optim.lr"],
                     "wsd": bw["val_loss"], "lr wsd": bw["optim.lr"],
                     "wsd / cosine − 1": f"{bw['val_loss'] / bc['val_loss'] - 1:+.1%}"})  # fmt: skip
        ratio = b.set_index("optim.lr")["val_loss"] / c.set_index("optim.lr")["val_loss"] - 1
        same.append({"width": w, "steps": n, **{f"lr {lr:g}": r for lr, r in ratio.items()}})
    table, same = pd.DataFrame(rows), pd.DataFrame(same)
    print("each schedule at its best lr:")
    print(table.to_string(index=False))
    within = (abs(table["wsd"] / table["cosine"] - 1) <= 0.02).sum()
    print(f"within 2%: {within} of {len(table)}")
    print("at the same lr, wsd / cosine − 1:")
    print(same.to_string(index=False, float_format=lambda v: f"{v:+.1%}"))
    cells = same.drop(columns=["width", "steps"]).to_numpy().ravel()
    print(f"within 2%: {(abs(cells) <= 0.02).sum()} of {len(cells)}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", nargs="?", type=Path, default=Path("/tmp/wsd_vs_cosine"))
    p.add_argument("--lm", action="store_true", help="transformers on text instead of MLPs")
    p.add_argument("--long", action="store_true",
                   help="transformers at 20 and 40 tokens per parameter, d_model 48, 64, 96")  # fmt: skip
    args = p.parse_args()
    study = "lm_long" if args.long else "lm" if args.lm else "mlp"
    main(args.work.resolve() / study, study)
