"""The commands that read a study: fit, plot, report and doctor (``scale fit`` never imports
torch)."""

from __future__ import annotations

from pathlib import Path

from ..errors import EXIT_OK, EXIT_POINTS_FAILED, BadInput


def _options(args):
    from ..analysis.options import Options

    return Options(**{k: getattr(args, k) for k in Options.__dataclass_fields__})


def _analyse_sweep(out: Path, name: str, bootstrap: int) -> None:
    """The end of a sweep: the same analysis as ``scale report`` (a law once enough sizes finished)."""
    from ..analysis.options import Options
    from ..console import console

    try:
        _analyse(str(out), Options(bootstrap=bootstrap), name, need_law=False)
    except BadInput as e:
        console.print(f"no analysis yet: {e}")
    except Exception as e:  # noqa: BLE001 - the points are safe on disk whatever the analysis does
        console.print(f"[red]analysis failed[/]: {type(e).__name__}: {e} "
                      f"(the results are in {out}/results.csv)")  # fmt: skip


def _study(target: str, options, need_law: bool = True):
    """Load a study and analyse it: (table, Analysis), or (table, {value: Analysis}) with
    ``options.group``. A table unfit for analysis is BadInput; so is one too small for a law
    when ``need_law``."""
    from ..analysis.study import analyze, analyze_by
    from ..store import load_table

    o = options
    needed = [o.x, o.y] + [c for c in (o.d, o.c) if c]
    table = load_table(target, needed)
    try:
        analysis = analyze_by(table, o.group, o) if o.group else analyze(table, o)
    except ValueError as e:
        raise BadInput(str(e)) from None
    if need_law and not any(a.fits for a in _each(analysis)):
        why = next(
            (n for a in _each(analysis) for n in a.notes if "no law is fitted" in n), "no law"
        )
        raise BadInput(f"{target}: {why}")
    return table, analysis


def _each(analysis) -> list:
    return list(analysis.values()) if isinstance(analysis, dict) else [analysis]


def _print_analysis(table, analysis, group: str | None, findings=()) -> None:
    from ..console import console
    from ..report import terminal

    parts = list(analysis.items()) if isinstance(analysis, dict) else [(None, analysis)]
    for i, (value, one) in enumerate(parts):
        if value is not None:
            console.rule(f"{group} = {value}")
        rows = table.all if value is None else table.all[table.all[group] == value]
        last = i == len(parts) - 1  # the runs' health is the whole table's: once, at the end
        for item in terminal(one, rows, findings if last else None):
            console.print(item)


def _analyse(target: str, options, title: str, need_law: bool = True) -> int:
    """Fit, print, plot and report one study (the end of `scale sweep`, and `scale report`)."""
    from ..analysis.health import check_table
    from ..console import console
    from ..report import write_all

    table, analysis = _study(target, options, need_law)
    findings = check_table(table, options.x, options.y)
    _print_analysis(table, analysis, options.group, findings)
    paths = write_all(table, analysis, title, options.group, findings)
    console.print(f"report: {paths['report_html']}  plots: {table.out / 'plots'}")
    return EXIT_OK


def cmd_fit(args) -> int:
    from ..analysis.health import check_table
    from ..console import console
    from ..store import write_json

    options = _options(args)
    table, analysis = _study(args.targets[0], options)
    _print_analysis(table, analysis, options.group, check_table(table, options.x, options.y))
    record = ({"group": options.group, "groups": {str(k): a.record() for k, a in analysis.items()}}
              if isinstance(analysis, dict) else analysis.record())  # fmt: skip
    write_json(table.out / "fits.json", record)
    console.print(f"saved {table.out / 'fits.json'}")
    return EXIT_OK


def cmd_plot(args) -> int:
    from ..console import console
    from ..report import group_figures
    from ..report.plots import compare, figures
    from ..store import read_histories

    options, studies = _options(args), {}
    for target in args.targets:
        table, analysis = _study(target, options, need_law=False)
        studies[table.out.name] = (table.ok, analysis)
    if len(args.targets) > 1:
        paths = compare({k: v for k, v in studies.items() if not isinstance(v[1], dict)},
                        Path(args.out or "outputs/compare"))  # fmt: skip
    elif isinstance(analysis, dict):
        paths = group_figures(table, analysis, options.group, table.out.name)
    else:
        histories = read_histories(table.sweep_dir) if table.sweep_dir else None
        paths = figures(table.ok, analysis, table.out / "plots", histories, title=table.out.name)
    for path in paths:
        console.print(f"wrote {path}")
    return EXIT_OK


def cmd_doctor(args) -> int:
    """The runs' health alone: one line per finding with its fix; exit 1 when there is one."""
    from ..analysis.health import check_table
    from ..console import console
    from ..store import load_table

    findings = check_table(load_table(args.target, [args.x, args.y]), args.x, args.y)
    for line in [f"- {f.line()}" for f in findings] or [f"{args.target}: nothing found"]:
        console.print(line, highlight=False)
    return EXIT_POINTS_FAILED if findings else EXIT_OK


def cmd_report(args) -> int:
    from ..store import find_study

    path = find_study(args.targets[0])
    title = path.stem if path.is_file() else path.name
    return _analyse(
        args.targets[0], _options(args), title, need_law=False
    )  # a report of points too
