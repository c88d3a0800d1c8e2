"""How often the 95% intervals hold the truth, on simulated studies of known laws.

One law in N with 6 sizes over 2.5 decades (the default study's: E 0.28, A 13.4, α 0.38)
and lognormal noise; and L(N, D) on a 10 × 6 grid (Chinchilla's law). For each, the share
of studies whose interval holds the true α and E (and β), how wide α's interval is
against its estimate's own spread (3.92 standard deviations is a 95% interval's width),
intervals that are degenerate, and, in 1-D, how often the law fitted without the largest
size predicts a new run there inside its 95% prediction interval.

    python benchmarks/coverage.py [--studies 200] [--noise 0.02] [--bootstrap 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scaling import fit_law

LAW_1D = {"E": 0.28, "A": 13.4, "alpha": 0.38}
LAW_2D = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}


def _score(fit, truth: dict, cover: dict, widths: list, alphas: list) -> int:
    """Count which of ``cover``'s parameters the fit's intervals hold, keep α's interval width
    and estimate; the number of degenerate intervals (empty, or reaching 0)."""
    degenerate = 0
    for name in cover:
        lo, hi = fit.ci[name]
        cover[name] += lo <= truth[name] <= hi
        degenerate += hi <= lo or lo < 1e-6
    widths.append(fit.ci["alpha"][1] - fit.ci["alpha"][0])
    alphas.append(fit.params["alpha"])
    return degenerate


def one_d(studies: int, noise: float, bootstrap: int) -> None:
    n = np.logspace(3, 5.5, 6)
    law = LAW_1D["E"] + LAW_1D["A"] * n ** -LAW_1D["alpha"]
    rng = np.random.default_rng(0)
    cover, widths, alphas, degenerate, predicted = {"E": 0, "alpha": 0}, [], [], 0, 0
    for s in range(studies):
        y = law * np.exp(noise * rng.standard_normal(6))
        fit = fit_law(n, y, bootstrap=bootstrap, seed=s)
        degenerate += _score(fit, LAW_1D, cover, widths, alphas)
        lo, hi = fit_law(n[:5], y[:5], bootstrap=bootstrap, seed=s).predict_interval(
            n[5:], noise=True
        )
        predicted += lo[0] <= law[5] * np.exp(noise * rng.standard_normal()) <= hi[0]
    print(f"1-D, 6 sizes, {noise:.0%} noise, {studies} studies ({fit.interval_method}): "
          f"α covered {cover['alpha'] / studies:.1%}, E {cover['E'] / studies:.1%}; "
          f"a new run at the held-out size {predicted / studies:.1%}; α width / (3.92 sd) "
          f"{np.median(widths) / (3.92 * np.std(alphas)):.2f}; degenerate {degenerate}")  # fmt: skip


def two_d(studies: int, noise: float, bootstrap: int) -> None:
    n, d = (a.ravel() for a in np.meshgrid(np.logspace(7, 9.5, 10), np.logspace(9, 11.5, 6)))
    law = LAW_2D["E"] + LAW_2D["A"] * n ** -LAW_2D["alpha"] + LAW_2D["B"] * d ** -LAW_2D["beta"]
    rng = np.random.default_rng(1)
    cover, widths, alphas, degenerate = dict.fromkeys(("E", "alpha", "beta"), 0), [], [], 0
    for s in range(studies):
        fit = fit_law(n, law * np.exp(noise * rng.standard_normal(len(n))), d, form="chinchilla",
                      bootstrap=bootstrap, seed=s)  # fmt: skip
        degenerate += _score(fit, LAW_2D, cover, widths, alphas)
    print(
        f"2-D, 10 × 6 grid, {noise:.0%} noise, {studies} studies ({fit.interval_method}): "
        + ", ".join(f"{k} covered {v / studies:.1%}" for k, v in cover.items())
        + f"; α width / (3.92 sd) {np.median(widths) / (3.92 * np.std(alphas)):.2f}; degenerate {degenerate}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    t = time.perf_counter()
    one_d(args.studies, args.noise, args.bootstrap)
    two_d(args.studies, args.noise, args.bootstrap)
    print(f"{time.perf_counter() - t:.0f} s")


if __name__ == "__main__":
    main()
