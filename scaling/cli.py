"""``scale``: sweep | run | fit | plot | ls | show. argparse in front, Hydra behind.

Imports are lazy: torch alone costs seconds, and a typo deserves an instant answer.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

DEFAULT_PRESET = "mlp_width"
EXIT_OK, EXIT_POINTS_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scale", description="Run parameter-scaling studies of neural networks."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("sweep", help="train every point of a preset's grid")
    s.add_argument(
        "args", nargs="*", help="[PRESET] then Hydra overrides (key=value, comma lists, range())"
    )
    s.add_argument("--out", help="sweep folder (default: outputs/PRESET)")
    s.add_argument("--fresh", action="store_true", help="move the old folder aside and start over")
    s.add_argument(
        "--retry-failed", action="store_true", help="also re-run failed, oom and diverged points"
    )
    s.add_argument(
        "--bootstrap", type=int, default=1000, help="resamples for the end-of-sweep intervals"
    )
    s.add_argument(
        "--max-failures",
        type=int,
        default=None,
        metavar="N",
        help="stop after N points in a row fail",
    )

    r = sub.add_parser("run", help="train one point")
    r.add_argument("args", nargs="*", help="Hydra overrides")
    r.add_argument("--out", help="folder (default: outputs/run)")

    for name, text in (
        ("fit", "fit scaling laws with 95%% intervals → fits.json"),
        ("plot", "draw the study's figures → plots/"),
        ("report", "fits, figures and tables → report.md, report.html"),
    ):
        f = sub.add_parser(name, help=text)
        f.add_argument("targets", nargs="+" if name == "plot" else 1, metavar="target",
                       help="a sweep folder, a sweep name under outputs/, or a CSV/Parquet file")  # fmt: skip
        f.add_argument("--x", default="params", help="size column N (default: params)")
        f.add_argument("--y", default="val_loss", help="loss column (default: val_loss)")
        f.add_argument(
            "--d", default=None, help="data column D, for L(N, D) (sweeps: found when it varies)"
        )
        f.add_argument("--c", default=None, help="compute-budget column, for IsoFLOP minima")
        f.add_argument(
            "--form", default="saturating", choices=("saturating", "power"), help="the law in N"
        )
        f.add_argument(
            "--holdout",
            type=int,
            default=None,
            help="hold out the K largest sizes (default: 1 when there are enough)",
        )
        f.add_argument("--bootstrap", type=int, default=1000, help="resamples for 95%% intervals")
        f.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
        if name == "plot":
            f.add_argument("--out", default=None, help="folder for a comparison of several studies")

    ls = sub.add_parser("ls", help="every sweep under a folder, with points per status")
    ls.add_argument("root", nargs="?", default="outputs")
    show = sub.add_parser("show", help="the points of one sweep")
    show.add_argument("target")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may come after options (scale sweep --fresh model.width=8,16)
    if extra and (not hasattr(args, "args") or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.args += extra
    from .results import BadInput

    # Ctrl-C and SIGTERM stop the running point cleanly (recorded as interrupted), even when
    # the shell started us with SIGINT ignored (background jobs)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:  # a second Ctrl-C, after the first stopped the point
        print("scale: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BadInput as e:
        print(f"scale {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_sweep(args) -> int:
    from .console import SweepProgress, console, points_table
    from .results import write_results
    from .sweep import failure_streak, find_preset, launch, plan, to_run, write_grid

    name, overrides = DEFAULT_PRESET, list(args.args)
    if overrides and "=" not in overrides[0]:
        name = overrides.pop(0)
    preset = find_preset(name)
    out = Path(args.out or Path("outputs") / name).resolve()
    points, hydra_over = plan(
        name, preset, overrides, out
    )  # every point validated: nothing written yet
    if args.fresh and out.exists():
        aside = out.with_name(f"{out.name}.{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(out, aside)
        console.print(f"moved the old sweep aside to {aside}")
    out.mkdir(parents=True, exist_ok=True)
    write_grid(out, name, points, "scale sweep " + " ".join([name, *overrides]), preset)
    todo = to_run(out, points, args.retry_failed)
    console.print(
        f"[bold]{name}[/]: {len(points)} points, {len(points) - len(todo)} done, {len(todo)} to run → {out}"
    )
    interrupted = False
    if todo:
        try:
            with SweepProgress(out, todo):
                launch(name, preset, todo, hydra_over, out, args.max_failures)
        except KeyboardInterrupt:
            interrupted = True
            console.print(
                "[yellow]interrupted[/]: finished points are kept; run the same command to resume"
            )
    df = write_results(out)
    ids = {p["point_id"] for p in points}
    mine = df[df["point_id"].isin(ids)]
    console.print(points_table(mine, f"{name}: {len(mine)} points"))
    try:
        analysis_args = argparse.Namespace(
            **{**vars(ANALYSIS_DEFAULTS), "bootstrap": args.bootstrap}
        )
        _analyse(str(out), analysis_args, name, quiet_if_few=True)
    except Exception as e:  # noqa: BLE001 - the points are safe on disk whatever the analysis does
        console.print(
            f"[red]analysis failed[/]: {type(e).__name__}: {e} (the results are in {out}/results.csv)"
        )
    counts = mine["status"].value_counts().to_dict()
    if args.max_failures and failure_streak(out) >= args.max_failures:
        console.print(
            f"[red]stopped[/]: {args.max_failures} points failed in a row; the rest stay pending"
        )
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if counts.get("ok", 0) == len(mine) else EXIT_POINTS_FAILED


def _study(target: str, args, quiet_if_few: bool = False):
    """Load a study and analyse it: (table, Analysis), or (table, None) when fewer than 3 sizes
    finished and ``quiet_if_few``; a table unfit for a law is BadInput."""
    from .report import analyze_table
    from .results import BadInput, load_table

    table = load_table(target, [args.x, args.y] + [c for c in (args.d, args.c) if c])
    sizes = table.ok[args.x].nunique()
    if sizes < 3:
        if quiet_if_few:
            return table, None
        raise BadInput(f"{target} has {sizes} distinct {args.x} values; a law needs 3 or more")
    try:
        analysis = analyze_table(
            table,
            args.x,
            args.y,
            args.d,
            args.c,
            args.form,
            args.holdout,
            args.bootstrap,
            args.seed,
        )
    except ValueError as e:
        raise BadInput(str(e)) from None
    return table, analysis


def _analyse(target: str, args, title: str, quiet_if_few: bool = False) -> int:
    """Fit, print, plot and report one study (the end of `scale sweep`, and `scale report`)."""
    from .console import analysis_tables, console
    from .report import write_all

    table, analysis = _study(target, args, quiet_if_few)
    if analysis is None:
        console.print("fewer than 3 sizes finished: no fit yet")
        return EXIT_OK
    for item in analysis_tables(analysis):
        console.print(item)
    paths = write_all(table, analysis, title)
    console.print(f"report: {paths['report_html']}  plots: {table.out / 'plots'}")
    return EXIT_OK


def cmd_run(args) -> int:
    from rich.markup import escape

    from .console import console, points_table
    from .results import write_results
    from .sweep import check_shapes, compose_point, hydra_context, train_points

    out = Path(args.out or "outputs/run").resolve()
    with hydra_context():
        cfg = compose_point(args.args, extra=["sweep=run", f"out={out}"])
    check_shapes(cfg, {})
    try:
        rows = train_points(cfg, out, again=True)
    except KeyboardInterrupt:
        write_results(out)
        return EXIT_INTERRUPTED
    df = write_results(out)
    ours = df["point_id"].str.partition("~")[0].isin([r["point_id"] for r in rows])
    console.print(points_table(df[ours], "run"))  # with their compressed variants
    for row in rows:
        if row["status"] != "ok":
            console.print(
                f"[red]{row['status']}[/] (seed {row['seed']}): {escape(str(row['error']))}"
            )
    return EXIT_OK if all(r["status"] == "ok" for r in rows) else EXIT_POINTS_FAILED


def cmd_fit(args) -> int:
    from .console import analysis_tables, console
    from .results import write_json

    table, analysis = _study(args.targets[0], args)
    for item in analysis_tables(analysis):
        console.print(item)
    table.out.mkdir(parents=True, exist_ok=True)
    write_json(table.out / "fits.json", analysis.record())
    console.print(f"saved {table.out / 'fits.json'}")
    return EXIT_OK


def cmd_plot(args) -> int:
    from .console import console
    from .plots import compare, figures
    from .results import read_histories

    studies = {}
    for target in args.targets:
        table, analysis = _study(target, args)
        studies[table.out.name] = (table.ok, analysis)
    if len(args.targets) > 1:
        paths = compare(studies, Path(args.out or "outputs/compare"))
    else:
        histories = read_histories(table.sweep_dir) if table.sweep_dir else None
        paths = figures(table.ok, analysis, table.out / "plots", histories, title=table.out.name)
    for path in paths:
        console.print(f"wrote {path}")
    return EXIT_OK


def cmd_report(args) -> int:
    from .results import find_study

    path = find_study(args.targets[0])
    return _analyse(args.targets[0], args, path.stem if path.is_file() else path.name)


def cmd_ls(args) -> int:
    from rich.table import Table

    from .console import console
    from .results import collect

    root = Path(args.root)
    sweeps = sorted(
        p for p in root.glob("*") if (p / "grid.json").exists() or (p / "points").is_dir()
    )
    if not sweeps:
        console.print(f"no sweeps under {root}/")
        return EXIT_OK
    table = Table(title=f"sweeps under {root}/")
    statuses = ("ok", "failed", "oom", "diverged", "interrupted", "pending")
    for c in ("sweep", "points", *statuses):
        table.add_column(c, justify="left" if c == "sweep" else "right")
    for sweep_dir in sweeps:
        counts = collect(sweep_dir)["status"].value_counts()
        table.add_row(
            sweep_dir.name, str(int(counts.sum())), *(str(int(counts.get(s, 0))) for s in statuses)
        )
    console.print(table)
    return EXIT_OK


def cmd_show(args) -> int:
    from .console import console, points_table
    from .results import BadInput, collect

    path = Path(args.target)
    if not path.is_dir():
        path = Path("outputs") / args.target
    if not path.is_dir():
        raise BadInput(f"no sweep folder at '{args.target}'")
    console.print(points_table(collect(path), path.name))
    return EXIT_OK


COMMANDS = {
    "sweep": cmd_sweep,
    "run": cmd_run,
    "fit": cmd_fit,
    "plot": cmd_plot,
    "report": cmd_report,
    "ls": cmd_ls,
    "show": cmd_show,
}
# what the end of `scale sweep` analyses: scale report's defaults
ANALYSIS_DEFAULTS = argparse.Namespace(
    x="params",
    y="val_loss",
    d=None,
    c=None,
    form="saturating",
    holdout=None,
    bootstrap=1000,
    seed=0,
)

if __name__ == "__main__":
    sys.exit(main())
