"""`scale design suggest` for two rounds on the default study, against adding the grid's next size.

The target is the loss at 4× the pilot's largest size. After each round the study is refitted
and the law's 95% bootstrap interval there is measured; the shrink of its width per FLOP
added is compared with that of the pilot plus the grid's next width (1024) alone.

    python benchmarks/design_rounds.py [WORKDIR]      # about 5 minutes on a 2-core CPU

The pilot is `scale sweep mlp_width` (run here unless WORKDIR/outputs/mlp_width exists).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from scaling import analyze, load_table


def scale(*argv: str, cwd: Path) -> None:
    subprocess.run(["scale", *argv], cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def measure(folder: Path, n_target: float) -> dict:
    table = load_table(str(folder), ["params", "val_loss"])
    fit = analyze(table, bootstrap=1000).fits[0]
    lo, hi = (v[0] for v in fit.predict_interval(n_target))
    trained = table.all[table.all["status"] == "ok"]["flops_total"].sum()
    return {"loss": float(fit.predict(n_target)[0]), "lo": lo, "hi": hi,
            "width": (hi - lo) / fit.predict(n_target)[0], "flops": float(trained)}  # fmt: skip


def main(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    pilot = work / "outputs" / "mlp_width"
    if not pilot.exists():
        scale("sweep", "mlp_width", cwd=work)
    n_target = 4 * load_table(str(pilot), ["params", "val_loss"]).ok["params"].max()
    nxt = work / "outputs" / "mlp_width_1024"
    if not nxt.exists():
        shutil.copytree(pilot, nxt)
        widths = "model.width=16,32,64,128,256,512,1024"
        scale("sweep", "mlp_width", widths, "tune.check=false", "--out", str(nxt), cwd=work)
    rounds = work / "outputs" / "mlp_width_rounds"
    shutil.rmtree(rounds, ignore_errors=True)
    shutil.copytree(pilot, rounds)
    results = {"pilot": measure(pilot, n_target), "next size (1024)": measure(nxt, n_target)}
    for r in (1, 2):
        scale("design", "suggest", str(rounds), "--target", str(n_target),
              "--preset-out", "sweeps/rounds_next.yaml", cwd=work)  # fmt: skip
        scale("sweep", "rounds_next", "--out", str(rounds), cwd=work)
        results[f"suggest, round {r}"] = measure(rounds, n_target)
    base = results["pilot"]
    print(f"target: the loss at N = {n_target:,.0f}")
    print(
        f"{'study':<20} {'FLOPs added':>12} {'95% interval':>22} {'width':>8} {'shrink/TFLOP':>13}"
    )
    for name, m in results.items():
        added = m["flops"] - base["flops"]
        # percentage points of relative width per 1e12 FLOPs added
        shrink = 100 * (base["width"] - m["width"]) / added * 1e12 if added else np.nan
        interval = f"[{m['lo']:.4f}, {m['hi']:.4f}]"
        print(f"{name:<20} {added:>12.3e} {interval:>22} {m['width']:>8.2%} {shrink:>13.2f}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/design_rounds").resolve())
