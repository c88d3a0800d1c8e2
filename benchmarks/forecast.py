"""How well points forecast their final loss from the first quarter of their run
(trainer.forecast=0.25): the default study at a few seeds, each point's forecast against the
loss it reached, and the median error over the six study points and over every run; beside
it, each seed's held-out check (the law fitted without the largest size, at the largest) and
how often a study point was flagged off-trend (its forecast apart from the law through the
study points finished before it). ``--rescore`` recomputes the forecasts of folders already
trained with the code as it is now (each point from the points finished before it started,
as the basic launcher runs them), to compare a change of the forecast without training again.

    python benchmarks/forecast.py [--seeds 0 1 2] [--out outputs/bench_forecast] [--rescore] [OVERRIDE ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from scaling import store
from scaling.analysis.curves import apart, loss_at, loss_to_loss
from scaling.store import collect
from scaling.training.forecast import references
from scaling.training.loop import Course


def score(rows):
    done = rows[rows["forecast_loss"].notna()].copy()
    done["error"] = done["forecast_loss"] / done["val_loss"] - 1
    done["inside"] = (done["forecast_lo"] <= done["val_loss"]) & (
        done["val_loss"] <= done["forecast_hi"]
    )
    lo, hi = (pd.to_numeric(done.get(c), errors="coerce") for c in ("forecast_law_lo", "forecast_law_hi"))
    done["law"] = lo.notna()  # a law through the finished study points was set beside it
    done["flagged"] = apart(done["forecast_lo"], done["forecast_hi"], lo, hi) != 0  # off-trend
    done["off_law"] = apart(done["val_loss"], done["val_loss"], lo, hi) != 0  # ended off the law
    return done


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="outputs/bench_forecast")
    ap.add_argument("--share", type=float, default=0.25)
    ap.add_argument("--rescore", action="store_true", help="forecast again from the folders' histories")
    ap.add_argument("overrides", nargs="*", help="the study's overrides, e.g. data.train_size=256000")
    args = ap.parse_args()
    lines, pooled, floors, judged = [], [], [], []
    for seed in args.seeds:
        out = Path(args.out) / f"seed{seed}"
        if not (out / "results.csv").is_file():
            subprocess.run([sys.executable, "-m", "scaling.cli", "sweep", "mlp_width", f"trainer.seed={seed}",
                            f"trainer.forecast={args.share}", *args.overrides, "--out", str(out)], check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
        done = score(rescore(out) if args.rescore else collect(out))
        study = done[done["lr_source"] == "tuned"].sort_values("params")
        print(f"seed {seed}: the study points (tuned lr)")
        for _, r in study.iterrows():
            print(f"  N={int(r['params']):>7,}  forecast at step {int(r['forecast_step'])} from "
                  f"{int(r['forecast_refs'])} runs: {r['forecast_loss']:.4f} "
                  f"[{r['forecast_lo']:.4f}, {r['forecast_hi']:.4f}]  final {r['val_loss']:.4f}  "
                  f"{r['error']:+.1%}" + ("  off-trend" if r["flagged"] else ""))  # fmt: skip
        lines.append((seed, np.median(study["error"].abs()), np.median(done["error"].abs()),
                      len(done), done["inside"].mean(), check(out)))  # fmt: skip
        pooled.extend(study["error"].abs())
        judged.append(study[study["law"]])
        floors.extend(seed_noise(study))
    print("\n| seed | median abs error, study points | all runs with a forecast | runs | in 90% interval "
          "| held-out check |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for seed, s, a, n, inside, held in lines:
        print(f"| {seed} | {s:.1%} | {a:.1%} | {n} | {inside:.0%} | {held} |")
    passed = sum(held.startswith("PASS") for *_, held in lines)
    print(f"\nstudy points pooled: median abs error {np.median(pooled):.1%} over {len(pooled)}; "
          f"held-out check passed at {passed} of {len(lines)} seeds")  # fmt: skip
    judged = pd.concat(judged)
    print(f"off-trend: of {len(judged)} study points with a law beside their forecast, "
          f"{int(judged['flagged'].sum())} were flagged and {int(judged['off_law'].sum())} ended "
          f"outside the law's interval ({int((judged['flagged'] & judged['off_law']).sum())} both)")  # fmt: skip
    if floors:
        print(f"a forecast that knew each size's mean over its seeds would miss by a median of "
              f"{np.median(floors):.1%} (seeds of one size, trainer.pack_seeds)")  # fmt: skip


def rescore(out: Path) -> pd.DataFrame:
    """The sweep's rows with each forecast made again by ``loss_to_loss`` from the histories:
    at the point's recorded forecast step, from its references (``references``, as a running
    point reads them) that finished before it started."""
    rows = collect(out)
    for i, row in rows[rows["forecast_step"].notna()].iterrows():
        point = out / "points" / row["point_id"]
        cfg = OmegaConf.load(point / "config.yaml")
        course = Course(int(row["steps"]), cfg.optim, row["lr"], cfg.trainer.eval_interval, None,
                        int(row["batch_size"]), int(row["batch_size"]), False, row["point_id"],
                        cfg.optim.warmup_steps)  # fmt: skip
        refs = [r for r in references(point, course, row.to_dict()) if r[-1]["finished_at"] <= row["started_at"]]
        h = store.read_history(point)
        at = h["step"][h["step"] <= row["forecast_step"]].tolist()[-2:]
        refs = [(loss_at(steps, losses, at), *rest) for steps, losses, *rest, _ in refs]
        refs = [r for r in refs if r[0] is not None]  # evaluated at the same steps
        f = loss_to_loss(*zip(*refs), loss_at(h["step"], h["val_loss"], at), row["lr"], row["params"],
                         at[-1], course.steps) if refs else None  # fmt: skip
        values = (f.loss, f.lo, f.hi) if f else (np.nan,) * 3
        rows.loc[i, ["forecast_loss", "forecast_lo", "forecast_hi"]] = values
    return rows


def seed_noise(study) -> list[float]:
    """How far each seed's final loss lies from its size's mean over seeds (relative, each
    scaled by √(k/(k−1)) for the k seeds sharing the mean): the error a forecast would make
    that knew everything about a point but its seed's luck. Empty with one seed a size."""
    out = []
    for _, runs in study.groupby("params"):
        k, logs = len(runs), np.log(runs["val_loss"].to_numpy(float))
        if k > 1:
            out.extend(np.abs(np.expm1((logs - logs.mean()) * np.sqrt(k / (k - 1)))))
    return out


def check(out: Path) -> str:
    """The study's held-out check: PASS or FAIL, and the largest size's error."""
    held = json.loads((out / "fits.json").read_text())["extrapolation"]["saturating"][0]
    error = max((r["rel_error"] for r in held["rows"]), key=abs)
    return f"{'PASS' if held['passed'] else 'FAIL'} {error:+.1%}"


if __name__ == "__main__":
    main()
