"""A whole study's analysis: which columns, which laws, which checks, from one table.

``analyze(data)`` takes a DataFrame (any table with size and loss columns) or a
``store.Table`` read from a sweep folder, and fits the study's laws with their checks:
intervals that stay honest with few sizes, goodness of fit, and the prediction of held-out
sizes with a verdict. The defaults live in ``Options``, the one place the command line, the
end of a sweep and a notebook take them from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import pandas as pd

from .checks import (
    Extrapolation,
    Frontier,
    Goodness,
    IsoFLOP,
    extrapolation_check,
    frontier,
    goodness,
    isoflop_minima,
)
from .fit import FORMS, Fit, fit_law
from .intervals import Noise
from .options import DEFAULTS, Options

# columns that differ between runs without making them different experiments
BOOKKEEPING = {"sweep", "point_id", "status", "error", "label", "started_at", "finished_at",
               "torch_version", "device", "dtype", "compression", "compress_level"}  # fmt: skip


@dataclass
class Analysis:
    """Everything ``scale fit`` reports on one table of points."""

    x: str
    y: str
    d: str | None
    c: str | None
    fits: list  # L(N, D) where D varies, else the law in x
    extrapolation: dict = field(
        default_factory=dict
    )  # form -> [(Fit on smaller sizes, Extrapolation)]
    goodness: dict = field(default_factory=dict)  # form -> Goodness
    frontier: Frontier | None = None
    isoflop: IsoFLOP | None = None
    spread: list = field(default_factory=list)  # per size with several runs: x, runs, mean, std
    notes: list = field(default_factory=list)  # what a reader must know: exclusions, warnings
    excluded: dict = field(default_factory=dict)
    noise: Noise | None = None  # run-to-run noise of log loss, where seeds measure it

    def record(self) -> dict:
        """What fits.json keeps."""
        return {
            "x": self.x, "y": self.y, "d": self.d, "c": self.c,
            "fits": [f.record() for f in self.fits],
            "extrapolation": {form: [{"fit": fit.record(), **vars(check)} for fit, check in checks]
                              for form, checks in self.extrapolation.items()},
            "goodness": {form: vars(g) for form, g in self.goodness.items()},
            "frontier": None if self.frontier is None else vars(self.frontier),
            "isoflop": None if self.isoflop is None else vars(self.isoflop),
            "noise": None if self.noise is None else vars(self.noise),
            "spread": self.spread, "notes": self.notes, "excluded": self.excluded,
        }  # fmt: skip


def analyze(data, options: Options | None = None, **settings) -> Analysis:
    """Fit a study's laws and run the checks on its finished points.

    Args:
        data: a DataFrame with numeric, positive columns x and y (and d, c), one row per
            run; or a ``store.Table`` (``load_table``), whose excluded rows are reported and
            whose sweep folder lets D, the budgets and the seeds of one setting be found.
        options: an ``Options``; ``settings`` override its fields (``x="params_nonembedding"``).

    Returns:
        An ``Analysis``: the law with 95% intervals (L(N, D) where D varies, else the law
        in x), its goodness of fit, the prediction of held-out sizes with a verdict, the
        frontier, IsoFLOP minima, the spread across seeds and notes. With fewer sizes than
        the law needs, no law, and a note that says so.

    Raises:
        ValueError: an unknown option.
    """
    unknown = set(settings) - {f.name for f in fields(Options)}
    if unknown:
        raise ValueError(f"unknown analysis option {', '.join(sorted(unknown))}")
    o = Options(**{**vars(options or DEFAULTS), **settings})
    df, sweep, excluded = (data.ok, data.sweep_dir is not None, data.excluded) \
        if hasattr(data, "ok") else (data, False, {})  # fmt: skip
    d, c, follows = sweep_columns(df, o.x, o.d, o.c) if sweep else (o.d, o.c, None)
    # in a sweep, runs of one setting share every config column but the seed
    replicas = [k for k in df.columns if "." in k and k != "trainer.seed" and df[k].notna().any()]
    # in any other table, runs of one setting share x, D and every text column
    keys = replicas if sweep else [o.x] + ([d] if d else []) + _text_columns(df, [o.x, d])
    result = Analysis(x=o.x, y=o.y, d=d, c=c, fits=[], excluded=dict(excluded))
    result.notes += [
        f"{count} point{'s' * (count != 1)} left out: {reason}"
        for reason, count in excluded.items()
    ]
    if follows:
        ratio = (df[follows] / df[o.x]).median()
        result.notes.append(f"{follows} follows {o.x}, one value per size ({ratio:.3g} per "
                            f"{o.x} unit): the law is L(N) along that ladder; L(N, D) needs "
                            "sizes trained on several D")  # fmt: skip
    result.noise = seed_noise(df, keys, o.y)
    _warn_about_table(result, df, o)
    if _fit_laws(result, df, o):
        _consequences(result, df, o.bootstrap)
    _spread(result, df, keys)
    return result


def analyze_by(data, column: str, options: Options | None = None, **settings) -> dict:
    """One analysis per value of ``column`` (a training set, a recipe): value -> Analysis."""
    df = data.ok if hasattr(data, "ok") else data
    if column not in df:
        raise ValueError(f"--group {column}: the table has no such column")
    out = {}
    for value, rows in df.groupby(column, sort=True):
        part = replace_rows(data, rows)
        out[value] = analyze(part, options, **settings)
    return out


def replace_rows(data, rows: pd.DataFrame):
    """``data`` (a DataFrame or a ``store.Table``) with only ``rows`` to analyse."""
    return replace(data, ok=rows) if hasattr(data, "ok") else rows


def seed_noise(df: pd.DataFrame, keys: list, y: str) -> Noise | None:
    """The pooled standard deviation of log loss between runs of one setting (seeds), with its
    degrees of freedom; None where no setting was run more than once."""
    logy = np.log(df[y].to_numpy(float))
    groups = pd.Series(logy, index=df.index).groupby([df[k] for k in keys], dropna=False)
    dof = int(sum(len(g) - 1 for _, g in groups if len(g) > 1))
    if dof < 2:
        return None
    ss = sum(float(((g - g.mean()) ** 2).sum()) for _, g in groups if len(g) > 1)
    return Noise(float(np.sqrt(ss / dof)), dof, "seeds")


def sweep_columns(df: pd.DataFrame, x: str, d: str | None, c: str | None):
    """In a sweep: D from what training processed when it varies apart from the size; the
    budget column when a study has several. Returns (d, c, the D column that follows the size
    one for one, as in a ladder at one tokens-per-parameter ratio, or None)."""
    follows = None
    if d is None:
        for col in ("train_tokens", "train_examples"):
            if col in df and df[col].notna().all() and df[col].nunique() >= 3:
                # L(N, D) needs some size at several D or some D at several sizes
                pairs = len(df[[x, col]].drop_duplicates())
                if pairs > min(df[x].nunique(), df[col].nunique()):
                    d = col
                else:
                    follows = col
                break
    budget = "trainer.target_flops"
    if c is None and budget in df and df[budget].notna().all() and df[budget].nunique() >= 2:
        c = budget
    return d, c, follows


def _text_columns(df: pd.DataFrame, numeric: list) -> list:
    """Columns that name what a row is (a training set, a model), bookkeeping aside."""
    return [c for c in df.columns if c not in BOOKKEEPING and c not in numeric
            and not pd.api.types.is_numeric_dtype(df[c])]  # fmt: skip


def _warn_about_table(result: Analysis, df: pd.DataFrame, o: Options) -> None:
    """Rows at one size that differ in a non-numeric column, and which N is on the x axis."""
    cell = [o.x] + ([result.d] if result.d else [])
    for col in _text_columns(df, cell):
        if (df.groupby(cell, dropna=False)[col].nunique() > 1).any():
            values = ", ".join(map(str, sorted(df[col].dropna().unique())[:4]))
            result.notes.append(f"rows at one size differ in {col} ({values}): they are pooled "
                                f"into one law; --group {col} fits one per value")  # fmt: skip
    if (
        o.x == "params"
        and "params_nonembedding" in df
        and (df["params_nonembedding"] != df["params"]).any()
    ):
        result.notes.append("x is params, embeddings included; flops_6nd and many published laws "
                            "count non-embedding parameters (--x params_nonembedding)")  # fmt: skip


def _fit_laws(result: Analysis, df: pd.DataFrame, o: Options) -> bool:
    """L(N, D) where D takes 3 or more values, else the law in x; each with its checks.
    False when the table has too few sizes for a law."""
    X, Y = df[o.x].to_numpy(float), df[o.y].to_numpy(float)
    form, D = o.form, None
    if result.d is not None:
        D = df[result.d].to_numpy(float)
        if len(np.unique(D)) < 3:
            result.notes.append(f"{result.d} takes {len(np.unique(D))} value(s): L(N, D) cannot "
                                "separate A·N^-α from B·D^-β; the law in N alone is fitted")  # fmt: skip
            D = None
        else:
            form = "chinchilla"
            result.notes.append(
                f"{result.d} varies: one law L(N, D); a law in N alone would mix data sizes"
            )
            if X.max() / X.min() < 10:
                result.notes.append(f"{o.x} spans less than a decade: α and β are poorly separated")
    parameters = len(FORMS[form]["raw"])
    # more points than parameters; in N alone, more sizes (in 2-D, D varies too)
    needed = 3 if form == "chinchilla" else parameters + 1
    if len(np.unique(X)) < needed:
        result.notes.append(f"{len(np.unique(X))} distinct {o.x} values: {FORMS[form]['law']} needs "
                            f"{needed} or more; no law is fitted")  # fmt: skip
        return False
    if len(X) <= parameters:
        result.notes.append(f"{len(X)} points: {FORMS[form]['law']} needs {parameters + 1} or more; "
                            "no law is fitted")  # fmt: skip
        return False

    def fit_fn(xs, ys, ds, resamples=o.bootstrap):
        return fit_law(xs, ys, ds, form=form, bootstrap=resamples, seed=o.seed, noise=result.noise)

    fit = fit_fn(X, Y, D)
    fit.x, fit.y, fit.d, fit.excluded = (
        o.x,
        o.y,
        (result.d if D is not None else None),
        result.excluded,
    )
    result.fits.append(fit)
    _warn_about(result, fit)
    g = goodness(fit, X, Y, D, result.noise.sigma if result.noise else None)
    result.goodness[form] = g
    result.notes += g.problems(fit.params)
    _extrapolate(result, fit, fit_fn, X, Y, D, o)
    return True


def holdouts(sizes: int, form: str, asked: int | None) -> list[int]:
    """How many of the largest sizes to hold out, one check each: the largest, and the two
    largest where sizes spare (in N alone, two more sizes than parameters remain; in L(N, D),
    four sizes, each with its data sizes); or what was asked."""
    if asked is not None:
        return [asked] if asked else []
    if form == "chinchilla":
        return [h for h in (1, 2) if sizes - h >= 4]
    return [h for h in (1, 2) if sizes - h >= len(FORMS[form]["raw"]) + h]


def _warn_about(result: Analysis, fit: Fit) -> None:
    if not fit.converged:
        result.notes.append(f"the fit of {fit.law} did not converge: {fit.message}")
    if fit.refits_failed:
        result.notes.append(f"{fit.refits_failed} bootstrap refits of {fit.law} did not converge "
                            "and were left out of its intervals")  # fmt: skip
    for name, why in fit.not_identified.items():
        result.notes.append(f"{name} is not identified: {why}")
    if fit.params["alpha"] < 0 or fit.params.get("beta", 0) < 0:
        result.notes.append(f"{fit.law} has a negative exponent: loss does not fall with size in "
                            "this table (several budgets or data sizes mixed?); read it with care")  # fmt: skip


def _extrapolate(result: Analysis, fit: Fit, fit_fn, X, Y, D, o: Options) -> None:
    checks = []
    for h in holdouts(len(np.unique(X)), fit.form, o.holdout):
        try:
            small, check = extrapolation_check(fit_fn, X, Y, D, h, o.tolerance)
        except ValueError as e:
            result.notes.append(f"no extrapolation check for {fit.law} holding out {h}: {e}")
            continue
        small.x, small.y, small.d = fit.x, fit.y, fit.d
        checks.append((small, check))
    if checks:
        result.extrapolation[fit.form] = checks


def _consequences(result: Analysis, df: pd.DataFrame, bootstrap: int = 0) -> None:
    """The compute-optimal frontier of L(N, D), and IsoFLOP minima where budgets are given."""
    X, Y = df[result.x].to_numpy(float), df[result.y].to_numpy(float)
    chin = [f for f in result.fits if f.form == "chinchilla"]
    k = 6.0
    if chin:
        if "flops_total" in df and df["flops_total"].notna().all():
            per_point = df["flops_total"].to_numpy(float) / (X * df[result.d].to_numpy(float))
            k = float(np.median(per_point))
            if per_point.max() / per_point.min() > 1.1:
                result.notes.append(f"k = FLOPs/(N·D) runs from {per_point.min():.3g} to {per_point.max():.3g} "
                                    f"across the points; the frontier uses their median, {k:.3g}")  # fmt: skip
        if min(chin[0].params["alpha"], chin[0].params["beta"]) > 0:
            result.frontier = frontier(chin[0], k)
        else:  # loss that does not fall with N or D has no compute-optimal split
            result.notes.append("no compute-optimal frontier: L(N, D) has an exponent ≤ 0")
    if result.c is None or result.c not in df:
        return
    D = df[result.d].to_numpy(float) if result.d else None
    # each resample is a variable-projection fit (~20 ms): 200 give the interval's ends
    iso = isoflop_minima(X, Y, df[result.c].to_numpy(float), D, k, min(bootstrap, 200))
    if not iso.budgets:
        return
    result.isoflop = iso
    result.notes += iso.notes()


def _spread(result: Analysis, df: pd.DataFrame, keys: list) -> None:
    """Mean and standard deviation of the loss over the runs of one setting (seeds)."""
    for _, runs in df.groupby(keys, dropna=False):
        if len(runs) > 1:
            result.spread.append({
                "x": float(runs[result.x].iloc[0]), "runs": len(runs),
                "mean": float(runs[result.y].mean()), "std": float(runs[result.y].std()),
            })  # fmt: skip


__all__ = ["DEFAULTS", "Analysis", "Extrapolation", "Goodness", "Options", "analyze", "analyze_by"]
