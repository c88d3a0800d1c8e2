"""The commands that decide with studies: compare (a variant's compute multiplier over a
baseline) and design (how good a grid will be before it runs; which points to run next)."""

from __future__ import annotations

import json
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
