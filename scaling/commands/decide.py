"""The commands that decide with studies: compare (a variant's compute multiplier over a
baseline) and design (how good a grid will be before it runs; which points to run next)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import EXIT_OK, BadInput


def _sides(args):
    """(baseline table, variant table, their names, the folder the comparison goes to)."""
    from ..store import load_table

    needed = [args.x, args.y, args.n] + ([args.d] if args.d else [])
    if args.by:
        if len(args.targets) != 1:
            raise BadInput("--by COL compares the values of one table's column: give one table")
        table = load_table(args.targets[0], needed)
        if args.by not in table.ok:
            raise BadInput(f"--by {args.by}: the table has no such column")
        values = sorted(table.ok[args.by].dropna().unique(), key=str)
        if len(values) != 2:
            raise BadInput(f"--by {args.by}: compare needs exactly 2 values, the table has "
                           f"{len(values)} ({', '.join(map(str, values[:5]))})")  # fmt: skip
        if args.baseline is not None:
            if args.baseline not in map(str, values):
                raise BadInput(
                    f"--baseline {args.baseline}: {args.by} takes {values[0]} or {values[1]}"
                )
            values.sort(key=lambda v: str(v) != args.baseline)
        parts = [table.ok[table.ok[args.by] == v] for v in values]
        return (
            parts[0],
            parts[1],
            [f"{args.by}={v}" for v in values],
            table.out / f"compare_{args.by}",
            table,
        )
    if len(args.targets) != 2:
        raise BadInput(
            "compare takes BASELINE VARIANT (two sweeps or tables), or one table with --by COL"
        )
    tables = [load_table(t, needed) for t in args.targets]
    names = [t.out.name.removesuffix("_analysis") for t in tables]
    out = Path("outputs") / "compare" / f"{names[1]}_vs_{names[0]}"
    return tables[0].ok, tables[1].ok, names, out, tables[0]


def cmd_compare(args) -> int:
    from ..analysis.compare import compare
    from ..analysis.study import sweep_columns
    from ..console import console
    from ..report import render
    from ..report.decide import write_comparison

    base, variant, names, out, table = _sides(args)
    d = args.d
    if d is None and table.sweep_dir is not None and not args.by:
        d = sweep_columns(base, args.n, None, None)[0]
    for name, df in zip(names, (base, variant)):
        if df[args.n if d else args.x].nunique() < 4:
            raise BadInput(f"{name}: {df[args.x].nunique()} distinct sizes; a law with an "
                           "interval needs 4 or more")  # fmt: skip
    try:
        result = compare(base, variant, args.x, args.y, args.n, d, args.target, args.bootstrap,
                         args.seed, tuple(names))  # fmt: skip
    except ValueError as e:
        raise BadInput(str(e)) from None
    paths = write_comparison(result, Path(args.out) if args.out else out)
    if args.json:
        print(json.dumps(result.record(), indent=1, default=float))
        return EXIT_OK
    for item in render.terminal(paths["sections"]):
        console.print(item)
    console.print(f"report: {paths['html']}  figure: {paths['figures'][0]}")
    return EXIT_OK


def cmd_design(args) -> int:
    return _design_check(args) if args.action == "check" else _design_suggest(args)


def _prior(args, x, d, form, budgets=None, k=6.0):
    """(the prior Fit, noise, throughput in FLOPs/s or None, where it came from)."""
    from ..analysis import design
    from ..analysis.study import analyze
    from ..store import load_table

    if not args.prior:
        params = design.default_prior(x, d, budgets, k)
        return (design.prior_fit(form, params, x, d), args.noise or design.DEFAULT_NOISE, None,
                "the default prior (α = β = 0.3; the loss halves from the smallest size to the floor)")  # fmt: skip
    table = load_table(args.prior, ["params", "val_loss"])
    study = analyze(table, bootstrap=200)
    if not study.fits or study.fits[0].form != form:
        have = study.fits[0].law if study.fits else "no law"
        raise BadInput(f"--prior {args.prior}: the study gives {have}; the grid needs {form}")
    fit = study.fits[0]
    noise = args.noise or (study.noise or fit.noise).sigma
    done = table.all[table.all["status"] == "ok"]  # the tuning runs too: they cost time
    rate = done["flops_total"].sum() / done["wall_time_s"].sum() if "wall_time_s" in done else None
    return design.prior_fit(form, fit.params, x, d), noise, rate, f"{args.prior}: {fit.describe()}"


def _design_check(args) -> int:
    from ..analysis import design
    from ..analysis.study import sweep_columns
    from ..config.presets import find_preset
    from ..console import console
    from ..design import plan_grid
    from ..report import render
    from ..report.decide import design_sections
    from .train import DEFAULT_PRESET, _preset_and_overrides

    name, overrides = _preset_and_overrides(args.args, DEFAULT_PRESET)
    grid, tuning = plan_grid(name, find_preset(name), overrides)
    dcol = sweep_columns(grid.rename(columns={"d": "train_examples"}), "params", None, None)[0]
    x, d = grid["params"].to_numpy(float), grid["d"].to_numpy(float) if dcol else None
    form = "chinchilla" if dcol else "saturating"
    budgets = grid.dropna(subset=["budget"]).groupby("budget")["params"].apply(list).to_dict()
    k = float((grid["flops"] / (grid["params"] * grid["d"])).median())
    fit, noise, rate, source = _prior(args, x, d, form, budgets, k)
    target = (args.target or 4 * x.max(),) + ((4 * d.max(),) if dcol else ())
    expected = design.simulate(fit, x, d, noise, args.studies, args.seed, target)
    optima = design.optima(fit, budgets, k) if form == "chinchilla" and budgets else []
    sections = design_sections(name, grid, tuning, expected, optima, target, noise, rate, source)
    for item in render.terminal(sections):
        console.print(item)
    return EXIT_OK


def _design_suggest(args) -> int:
    from ..analysis import design
    from ..analysis.study import analyze
    from ..console import console
    from ..design import candidates, next_preset
    from ..report import render
    from ..report.decide import suggest_sections
    from ..store import find_study, load_table, read_grid

    out = find_study(args.target_study)
    if not out.is_dir() or not read_grid(out):
        raise BadInput(f"{args.target_study}: suggest extends a sweep folder (with its grid.json)")
    table = load_table(str(out), ["params", "val_loss"])
    study = analyze(table, bootstrap=args.bootstrap)
    if not study.fits or study.fits[0].form == "chinchilla":
        raise BadInput(f"{out}: suggest needs a study with a law in N (it has "
                       f"{study.fits[0].law if study.fits else 'no law'})")  # fmt: skip
    fit = study.fits[0]
    x = table.ok["params"].to_numpy(float)
    n_target = args.target or 4 * x.max()
    try:
        found = candidates(out, n_target)
    except ValueError as e:
        raise BadInput(str(e)) from None
    target = design.target_function(fit, "loss", (n_target,))
    noise = (study.noise or fit.noise).sigma
    rows = [{"n": r.params, "d": None, "flops": r.flops, "overrides": r.overrides, "kind": r.kind}
            for r in found.itertuples()]  # fmt: skip
    enough = math.log1p(args.tight) / 1.96 if args.tight else 0.0  # ± share → sd of log loss
    picks = _distinct(design.suggest(fit, x, None, noise, rows, target, args.k, enough))
    now = fit.predict_interval(n_target)
    nxt = next((r for r in rows if r["kind"] == "next size"), None)
    if nxt:
        nxt = nxt | {"sd_after": design.target_sd(fit, list(x) + [nxt["n"]], None, noise, target)}
    path = Path(args.preset_out or Path("sweeps") / f"{out.name}_next.yaml")
    command = next_preset(out, picks, path) if picks else None
    sections = suggest_sections(out.name, fit, n_target, noise, picks, nxt, path, command, now)
    for item in render.terminal(sections):
        console.print(item)
    return EXIT_OK


def _distinct(picks: list[dict]) -> list[dict]:
    """A point picked twice is trained twice: the later copies at further seeds."""
    seen = set()
    for pick in picks:
        own = [o for o in pick["overrides"] if not o.startswith("trainer.seed=")]
        seed = next(
            (int(o.split("=")[1]) for o in pick["overrides"] if o.startswith("trainer.seed=")), 0
        )
        while (tuple(own), seed) in seen:
            seed += 1
        seen.add((tuple(own), seed))
        if seed and pick["kind"] != "repeat":
            pick["kind"] = "repeat"
        pick["overrides"] = own + ([f"trainer.seed={seed}"] if seed else [])
    return picks
