"""A whole study's analysis: which columns, which laws, which checks, from one table.

``analyze(data)`` takes a DataFrame (any table with size and loss columns) or a
``store.Table`` read from a sweep folder, and fits the study's laws with their
checks. The defaults live in ``Options``, the one place the command line, the end
of a sweep and a notebook take them from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from .checks import Extrapolation, Frontier, IsoFLOP, extrapolation_check, frontier, isoflop_minima
from .fit import FORMS, Fit, fit_law
from .options import DEFAULTS, Options


@dataclass
class Analysis:
    """Everything ``scale fit`` reports on one table of points."""

    x: str
    y: str
    d: str | None
    c: str | None
    fits: list  # the law in x; L(N, D) when d is given
    extrapolation: dict = field(
        default_factory=dict
    )  # form -> (Fit on smaller sizes, Extrapolation)
    frontier: Frontier | None = None
    isoflop: IsoFLOP | None = None
    spread: list = field(default_factory=list)  # per size with several runs: x, runs, mean, std
    notes: list = field(default_factory=list)  # what a reader must know: exclusions, warnings
    excluded: dict = field(default_factory=dict)

    def record(self) -> dict:
        """What fits.json keeps."""
        out = {"x": self.x, "y": self.y, "d": self.d, "c": self.c,
               "fits": [f.record() for f in self.fits]}  # fmt: skip
        out["extrapolation"] = {
            form: {"fit": fit.record(), **vars(check)}
            for form, (fit, check) in self.extrapolation.items()
        }
        out["frontier"] = None if self.frontier is None else vars(self.frontier)
        out["isoflop"] = None if self.isoflop is None else vars(self.isoflop)
        out.update(spread=self.spread, notes=self.notes, excluded=self.excluded)
        return out


def analyze(data, options: Options | None = None, **settings) -> Analysis:
    """Fit a study's laws and run the checks on its finished points.

    Args:
        data: a DataFrame with numeric, positive columns x and y (and d, c), one row per
            run; or a ``store.Table`` (``load_table``), whose excluded rows are reported and
            whose sweep folder lets D, the budgets and the seeds of one setting be found.
        options: an ``Options``; ``settings`` override its fields (``x="params_nonembedding"``).

    Returns:
        An ``Analysis``: the law in x with 95% intervals, L(N, D) when D varies, the
        extrapolation check on held-out sizes, the frontier, IsoFLOP minima, the spread
        across seeds and notes.

    Raises:
        ValueError: an unknown option, or a table a law cannot be fitted to.
    """
    unknown = set(settings) - {f.name for f in fields(Options)}
    if unknown:
        raise ValueError(f"unknown analysis option {', '.join(sorted(unknown))}")
    o = Options(**{**vars(options or DEFAULTS), **settings})
    df, sweep, excluded = (data.ok, data.sweep_dir is not None, data.excluded) \
        if hasattr(data, "ok") else (data, False, {})  # fmt: skip
    d, c = _sweep_columns(df, o.d, o.c) if sweep else (o.d, o.c)
    holdout = o.holdout
    if holdout is None:
        holdout = 1 if df[o.x].nunique() >= len(FORMS[o.form]["raw"]) + 2 else 0
    # in a sweep, runs of one setting share every config column but the seed
    replicas = [k for k in df.columns if "." in k and k != "trainer.seed" and df[k].notna().any()]
    result = Analysis(x=o.x, y=o.y, d=d, c=c, fits=[], excluded=dict(excluded))
    result.notes += [f"{count} points left out: {reason}" for reason, count in excluded.items()]
    _fit_laws(result, df, o, holdout)
    _consequences(result, df)
    _spread(result, df, replicas if sweep else None)
    return result


def _sweep_columns(df: pd.DataFrame, d: str | None, c: str | None) -> tuple[str | None, str | None]:
    """In a sweep: D from what training processed when it varies; the budget column when a
    study has several."""
    if d is None:
        for col in ("train_tokens", "train_examples"):
            if col in df and df[col].notna().all() and df[col].nunique() >= 3:
                d = col
                break
    budget = "trainer.target_flops"
    if c is None and budget in df and df[budget].notna().all() and df[budget].nunique() >= 2:
        c = budget
    return d, c


def _fit_laws(result: Analysis, df: pd.DataFrame, o: Options, holdout: int) -> None:
    """The law in N, and L(N, D) when D takes 3 or more values; each with its extrapolation."""
    X, Y = df[o.x].to_numpy(float), df[o.y].to_numpy(float)
    forms = [(o.form, None)]
    if result.d is not None:
        D = df[result.d].to_numpy(float)
        if len(np.unique(D)) < 3:
            result.notes.append(f"{result.d} takes {len(np.unique(D))} value(s): L(N, D) cannot "
                                "separate A·N^-α from B·D^-β; not fitted")  # fmt: skip
        else:
            forms.append(("chinchilla", D))
            if X.max() / X.min() < 10:
                result.notes.append(f"{o.x} spans less than a decade: α and β are poorly separated")

    for form, D in forms:

        def fit_fn(xs, ys, ds, resamples=o.bootstrap, form=form):
            return fit_law(xs, ys, ds, form=form, bootstrap=resamples, seed=o.seed)

        fit = fit_fn(X, Y, D)
        fit.x, fit.y, fit.d, fit.excluded = (
            o.x,
            o.y,
            (result.d if D is not None else None),
            result.excluded,
        )
        result.fits.append(fit)
        _warn_about(result, fit)
        if holdout:
            _extrapolate(result, fit, fit_fn, X, Y, D, holdout, o.bootstrap)


def _warn_about(result: Analysis, fit: Fit) -> None:
    if not fit.converged:
        result.notes.append(f"the fit of {fit.law} did not converge: {fit.message}")
    if fit.params["alpha"] < 0 or fit.params.get("beta", 0) < 0:
        result.notes.append(f"{fit.law} has a negative exponent: loss does not fall with size in "
                            "this table (several budgets or data sizes mixed?); read it with care")  # fmt: skip


def _extrapolate(result: Analysis, fit: Fit, fit_fn, X, Y, D, holdout: int, bootstrap: int) -> None:
    try:
        # the held-out fit's intervals only draw its band: fewer resamples do
        small, check = extrapolation_check(
            lambda a, b, c: fit_fn(a, b, c, resamples=min(bootstrap, 200)), X, Y, D, holdout
        )
    except ValueError as e:
        result.notes.append(f"no extrapolation check for {fit.law}: {e}")
        return
    small.x, small.y, small.d = fit.x, fit.y, fit.d
    result.extrapolation[fit.form] = (small, check)


def _consequences(result: Analysis, df: pd.DataFrame) -> None:
    """The compute-optimal frontier of L(N, D), and IsoFLOP minima where budgets are given."""
    X, Y = df[result.x].to_numpy(float), df[result.y].to_numpy(float)
    chin = [f for f in result.fits if f.form == "chinchilla"]
    if chin:
        k = 6.0
        if "flops_total" in df and df["flops_total"].notna().all():
            k = float(
                np.median(df["flops_total"].to_numpy(float) / (X * df[result.d].to_numpy(float)))
            )
        result.frontier = frontier(chin[0], k)
    if result.c is None or result.c not in df:
        return
    iso = isoflop_minima(X, Y, df[result.c].to_numpy(float))
    if iso.budgets:
        result.isoflop = iso
        result.notes += [
            f"the IsoFLOP minimum at C={b['compute']:.3g} lies at the edge of its sizes: "
            "an extrapolation, left out of the exponent"
            for b in iso.budgets if b["at_edge"]
        ]  # fmt: skip


def _spread(result: Analysis, df: pd.DataFrame, replicas: list | None) -> None:
    """Mean and standard deviation of the loss over the runs of one setting (seeds)."""
    keys = replicas or [result.x] + ([result.d] if result.d else [])
    for _, runs in df.groupby(keys, dropna=False):
        if len(runs) > 1:
            result.spread.append({
                "x": float(runs[result.x].iloc[0]), "runs": len(runs),
                "mean": float(runs[result.y].mean()), "std": float(runs[result.y].std()),
            })  # fmt: skip


__all__ = ["DEFAULTS", "Analysis", "Extrapolation", "Options", "analyze"]
