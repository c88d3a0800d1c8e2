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

    r = sub.add_parser("run", help="train one point")
    r.add_argument("args", nargs="*", help="Hydra overrides")
    r.add_argument("--out", help="folder (default: outputs/run)")

    for name, text in (("fit", "fit scaling laws"), ("plot", "draw the study's figures")):
        f = sub.add_parser(name, help=text)
        f.add_argument(
            "target", help="a sweep folder, a sweep name under outputs/, or a CSV/Parquet file"
        )
        f.add_argument("--x", default="params", help="size column (default: params)")
        f.add_argument("--y", default="val_loss", help="loss column (default: val_loss)")
        f.add_argument("--d", default=None, help="data-size column, for L(N, D)")
        f.add_argument("--form", default=None, help="saturating | power | chinchilla")
        f.add_argument("--bootstrap", type=int, default=1000, help="resamples for 95%% intervals")

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
    from .sweep import BadInput

    # Ctrl-C and SIGTERM stop the running point cleanly (recorded as interrupted), even when
    # the shell started us with SIGINT ignored (background jobs)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return COMMANDS[args.command](args)
    except BadInput as e:
        print(f"scale {args.command}: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_sweep(args) -> int:
    from .console import SweepProgress, console, points_table
    from .results import write_results
    from .sweep import find_preset, launch, plan, to_run, write_grid

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
    write_grid(out, name, points)
    todo = to_run(out, points, args.retry_failed)
    console.print(
        f"[bold]{name}[/]: {len(points)} points, {len(points) - len(todo)} done, {len(todo)} to run → {out}"
    )
    interrupted = False
    if todo:
        try:
            with SweepProgress(out, todo):
                launch(name, preset, todo, hydra_over, out)
        except KeyboardInterrupt:
            interrupted = True
            console.print(
                "[yellow]interrupted[/]: finished points are kept; run the same command to resume"
            )
    df = write_results(out)
    ids = {p["point_id"] for p in points}
    mine = df[df["point_id"].isin(ids)]
    console.print(points_table(mine, f"{name}: {len(mine)} points"))
    _fit_and_plot(out, df[df["status"] == "ok"], name)
    counts = mine["status"].value_counts().to_dict()
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if counts.get("ok", 0) == len(mine) else EXIT_POINTS_FAILED


def _fit_and_plot(out: Path, ok, name: str) -> None:
    from .console import console, fit_table
    from .fit import fit_law
    from .plots import loss_vs_size
    from .results import write_json

    if ok["params"].nunique() < 3:
        console.print("fewer than 3 sizes finished: no fit yet")
        return
    fit = fit_law(ok["params"], ok["val_loss"], bootstrap=200)
    console.print(fit_table(fit))
    write_json(out / "fits.json", [_fit_record(fit)])
    paths = loss_vs_size(ok, fit, out / "plots", title=name)
    console.print(f"plot: {paths[0]}")


def _fit_record(fit) -> dict:
    return {
        "law": fit.law, "form": fit.form, "x": fit.x, "y": fit.y, "d": fit.d, "params": fit.params,
        "ci95": fit.ci, "n_points": fit.n_points, "converged": fit.converged, "message": fit.message,
        "objective": fit.objective, "excluded": fit.excluded,
    }  # fmt: skip


def cmd_run(args) -> int:
    from .console import console, points_table
    from .results import write_results
    from .sweep import compose_point, hydra_context
    from .train import identify, train_point

    out = Path(args.out or "outputs/run").resolve()
    with hydra_context():
        cfg = compose_point(args.args, extra=["sweep=run", f"out={out}"])
    from .sweep import check_shapes

    check_shapes(cfg, {})
    try:
        row = train_point(cfg, out / "points" / identify(cfg))
    except KeyboardInterrupt:
        write_results(out)
        return EXIT_INTERRUPTED
    df = write_results(out)
    console.print(points_table(df[df["point_id"] == row["point_id"]], "run"))
    if row["status"] != "ok":
        console.print(f"[red]{row['status']}[/]: {row['error']}")
    return EXIT_OK if row["status"] == "ok" else EXIT_POINTS_FAILED


def load_table(target: str, x: str, y: str, d: str | None):
    """A sweep folder, a sweep name under outputs/, or a CSV/Parquet file → (ok rows, folder for outputs, excluded)."""
    import pandas as pd

    from .results import collect
    from .sweep import BadInput

    path = Path(target)
    if not path.exists() and (Path("outputs") / target).is_dir():
        path = Path("outputs") / target
    if path.is_dir():
        df, out = collect(path), path
    elif path.is_file():
        try:
            df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
        except Exception as e:  # noqa: BLE001 - pandas raises many kinds for a bad file
            raise BadInput(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        out = path.with_name(f"{path.stem}_analysis")
    else:
        raise BadInput(f"no sweep folder or file at '{target}'")
    needed = [c for c in (x, y, d) if c]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise BadInput(
            f"{path} has no column {', '.join(missing)}; columns: {', '.join(map(str, df.columns))}"
        )
    excluded = {}
    if "status" in df.columns:
        for status, count in df.loc[df["status"] != "ok", "status"].value_counts().items():
            excluded[f"status {status}"] = int(count)
        df = df[df["status"] == "ok"]
    for c in needed:
        values = pd.to_numeric(df[c], errors="coerce")
        if values.isna().any():
            raise BadInput(f"column {c} has {int(values.isna().sum())} non-numeric or empty values")
        if (values <= 0).any():
            raise BadInput(
                f"column {c} has {int((values <= 0).sum())} values ≤ 0; a log-log fit needs positive values"
            )
        df = df.assign(**{c: values})
    return df, out, excluded


def cmd_fit(args) -> int:
    from .console import console, fit_table
    from .fit import fit_law
    from .results import write_json
    from .sweep import BadInput

    df, out, excluded = load_table(args.target, args.x, args.y, args.d)
    form = args.form or ("chinchilla" if args.d else "saturating")
    try:
        fit = fit_law(
            df[args.x],
            df[args.y],
            df[args.d] if args.d else None,
            form=form,
            bootstrap=args.bootstrap,
        )
    except ValueError as e:
        raise BadInput(str(e)) from None
    fit.x, fit.y, fit.d, fit.excluded = args.x, args.y, args.d, excluded
    console.print(fit_table(fit))
    for reason, count in excluded.items():
        console.print(f"left out: {count} points ({reason})")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "fits.json", [_fit_record(fit)])
    console.print(f"saved {out / 'fits.json'}")
    return EXIT_OK


def cmd_plot(args) -> int:
    from .console import console
    from .fit import fit_law
    from .plots import loss_vs_size

    df, out, _ = load_table(args.target, args.x, args.y, None)
    fit = (
        fit_law(df[args.x], df[args.y], bootstrap=args.bootstrap)
        if df[args.x].nunique() >= 3
        else None
    )
    for path in loss_vs_size(df, fit, out / "plots", x=args.x, y=args.y, title=out.name):
        console.print(f"wrote {path}")
    return EXIT_OK


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
    from .results import collect
    from .sweep import BadInput

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
    "ls": cmd_ls,
    "show": cmd_show,
}

if __name__ == "__main__":
    sys.exit(main())
