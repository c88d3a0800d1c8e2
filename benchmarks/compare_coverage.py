"""Coverage of `scale compare`'s intervals on simulated pairs of studies with planted multipliers.

Each case: a baseline L(C) = 1 + A·C^-0.3 and a variant planted at a constant 1.5× or at a
multiplier growing as 1.2·(C/1e9)^0.1, each measured at the same computes with log-normal
noise. Reported: how often the 90% (95%) interval at the middle budget holds the planted
multiplier, how often the trend's 90% interval holds the planted slope, and the median width.

    python benchmarks/compare_coverage.py [--cases 200] [--sizes 7] [--noise 0.02]

With 10 sizes or more the same runs are resampled on both sides (pairs); with fewer, each
side's law plus noise.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from scaling.analysis.compare import compare

E, ALPHA = 1.0, 0.3
A = 1.5 * 1e9**ALPHA


def planted(kind: str):
    if kind == "constant":
        return A * 1.5**-ALPHA, ALPHA, lambda c: 1.5 + 0 * c, 0.0
    return (
        A * 1.2**-ALPHA * 1e9 ** (0.1 * ALPHA),
        1.1 * ALPHA,
        lambda c: 1.2 * (c / 1e9) ** 0.1,
        0.1,
    )


def study(c, a, alpha, sigma, rng) -> pd.DataFrame:
    y = (E + a * c**-alpha) * np.exp(sigma * rng.standard_normal(len(c)))
    return pd.DataFrame({"flops_total": c, "params": c / 1e6, "val_loss": y})


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cases", type=int, default=200)
    p.add_argument("--sizes", type=int, default=7)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--resamples", type=int, default=400)
    args = p.parse_args()
    c = np.geomspace(1e9, 1e11, args.sizes)
    start = time.perf_counter()
    for kind in ("constant", "growing"):
        a_v, alpha_v, m, slope = planted(kind)
        hits90, hits95, trend, widths = [], [], [], []
        for case in range(args.cases):
            rng = np.random.default_rng(case)
            base, variant = (
                study(c, A, ALPHA, args.noise, rng),
                study(c, a_v, alpha_v, args.noise, rng),
            )
            r = compare(base, variant, resamples=args.resamples, seed=case)
            mid = r.budgets[len(r.budgets) // 2]
            truth = m(mid["compute"])
            hits90.append(mid["ci90"][0] <= truth <= mid["ci90"][1])
            hits95.append(mid["ci95"][0] <= truth <= mid["ci95"][1])
            trend.append(r.trend["ci90"][0] <= slope <= r.trend["ci90"][1])
            widths.append(mid["ci90"][1] / mid["ci90"][0])
        print(f"{kind:>9}: 90% interval holds the multiplier {np.mean(hits90):.1%}, 95% "
              f"{np.mean(hits95):.1%}; the trend's 90% interval holds its slope {np.mean(trend):.1%}; "
              f"median 90% interval hi/lo {np.median(widths):.2f}")  # fmt: skip
    print(f"{2 * args.cases} cases, {args.sizes} sizes, noise {args.noise}: "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
