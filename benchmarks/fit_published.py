"""The fitter against published data, with the time a fit and its bootstrap take.

Epoch AI's points of Chinchilla's Fig. 4 (Besiroglu et al. 2024, 5 highest losses dropped,
D = C/6N): the point fit should match Epoch's to 4 digits, its intervals theirs within a
few percent. The mlfoundations runs (Gadre et al. 2024): one law per training set
(``--group dataset``), each with its held-out check. The CSVs are not part of the project;
give the folder that holds them.

    python benchmarks/fit_published.py [--data ../shared/data] [--bootstrap 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from scaling import analyze, fit_law
from scaling.analysis.varpro import varpro_fit


def epoch(folder: Path, bootstrap: int) -> None:
    df = pd.read_csv(folder / "epoch_chinchilla.csv").rename(
        columns={"Model Size": "N", "Training FLOP": "C"}
    )
    df["D"] = df["C"] / (6 * df["N"])
    df = df.sort_values("loss").iloc[:-5]  # Epoch drop the five highest losses
    t = time.perf_counter()
    fit = fit_law(df["N"], df["loss"], df["D"], form="chinchilla", bootstrap=bootstrap, seed=0)
    seconds = time.perf_counter() - t
    print(f"Epoch (Chinchilla Fig. 4), {len(df)} points, {df['N'].nunique()} sizes: fit + {bootstrap} "
          f"resamples in {seconds:.1f} s ({fit.interval_method}; {fit.refits_failed} refits failed)")  # fmt: skip
    for name, value in fit.params.items():
        lo, hi = fit.ci[name]
        print(f"  {name:6} {value:10.5g}   95% [{lo:.5g}, {hi:.5g}]")
    frontier = analyze(df, x="N", d="D", y="loss", bootstrap=bootstrap).frontier
    vp = varpro_fit(df["N"], df["D"], df["loss"])
    lo, hi = frontier.a_ci
    print(f"  N_opt ∝ C^a: direct fit a {frontier.a:.4f} 95% [{lo:.4f}, {hi:.4f}]; variable "
          f"projection (least squares in L) a {vp.a:.4f}, α {vp.alpha:.4f}, β {vp.beta:.4f}")  # fmt: skip


def mlfoundations(folder: Path, bootstrap: int) -> None:
    df = pd.read_csv(folder / "mlfoundations_runs.csv").rename(
        columns={"N": "params", "loss": "val_loss"}
    )
    print(f"\nmlfoundations runs, {len(df)} points, one law per training set:")
    for name, rows in df.groupby("dataset"):
        a = analyze(rows, d="D", bootstrap=bootstrap)
        p = a.fits[0].params
        checks = "; ".join(check.verdict() for _, check in a.extrapolation.get("chinchilla", []))
        print(f"  {name:12} E {p['E']:.3f} α {p['alpha']:.3f} β {p['beta']:.3f}  {checks}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared" / "data")
    parser.add_argument("--bootstrap", type=int, default=1000)
    args = parser.parse_args()
    epoch(args.data, args.bootstrap)
    mlfoundations(args.data, args.bootstrap)


if __name__ == "__main__":
    main()
