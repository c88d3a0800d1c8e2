"""Branches (wsd) against separate cosine runs, each schedule at its own best lr.

`benchmarks/branches.py` compares the two at one lr for every width, where the schedules
differ. Here each (width, steps) point is trained at four lrs both ways (branches from one
trunk per width and lr; separate cosine runs), and the best loss of each schedule is compared.

    python benchmarks/wsd_vs_cosine.py [WORKDIR]      # about 2 minutes on a 2-core CPU
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

WIDTHS, STEPS, LRS = "32,128", (630, 1600, 4000), "0.005,0.01,0.02,0.04"


def sweep(work: Path, out: str, *argv: str) -> pd.DataFrame:
    if not (work / out / "results.csv").exists():
        subprocess.run(["scale", "sweep", *argv, "--out", out, "--bootstrap", "0"], cwd=work,
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    return pd.read_csv(work / out / "results.csv")


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    steps = ",".join(map(str, STEPS))
    cosine = sweep(work, "cosine", "mlp_size_data", f"model.width={WIDTHS}",
                   f"trainer.steps={steps}", f"optim.lr={LRS}")  # fmt: skip
    wsd = sweep(work, "branched", "mlp_size_data_branched", f"model.width={WIDTHS}",
                f"optim.lr={LRS}", f"trainer.branches=[{steps}]")  # fmt: skip
    wsd = wsd[wsd["role"] == "branch"]
    rows = []
    for (width, n), c in cosine.groupby(["model.width", "steps"]):
        w = wsd[(wsd["model.width"] == width) & (wsd["steps"] == n)]
        bc, bw = c.loc[c["val_loss"].idxmin()], w.loc[w["val_loss"].idxmin()]
        rows.append({"width": width, "steps": n, "cosine": bc["val_loss"], "lr cosine": bc["optim.lr"],
                     "wsd": bw["val_loss"], "lr wsd": bw["optim.lr"],
                     "wsd / cosine − 1": f"{bw['val_loss'] / bc['val_loss'] - 1:+.1%}"})  # fmt: skip
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    within = (abs(table["wsd"] / table["cosine"] - 1) <= 0.02).sum()
    print(f"within 2%: {within} of {len(table)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/wsd_vs_cosine").resolve())
