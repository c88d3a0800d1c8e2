"""The commands that train: sweep, run, coord-check, and the listings ls and show. Imports are made
inside the commands, so that each pays only for what it uses."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_POINTS_FAILED, BadInput
from .study import _analyse_sweep

DEFAULT_PRESET = "mlp_width"


def cmd_sweep(args) -> int:
    from ..config.presets import find_preset
    from ..console import console, points_table
    from ..launch import train_stages
    from ..planning import plan_sweep
    from ..report.branches import spent_line
    from ..store import failure_streak, write_results
    from ..tuning import tuning_stage

    name, overrides = _preset_and_overrides(args.args, DEFAULT_PRESET)
    preset = find_preset(name)
    out = Path(args.out or Path("outputs") / name).resolve()
    if args.info:
        return _info(preset)
    if args.cfg:
        return _print_config(preset, overrides, [f"sweep={name}", f"out={out}"])
    if args.dry_run:
        return _dry_run(name, preset, overrides)
    sweep = plan_sweep(name, preset, overrides, out)  # every point planned: nothing written yet
    plan_note = tuning_stage(sweep)
    if args.fresh and out.exists():
        aside = out.with_name(f"{out.name}.{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(out, aside)
        console.print(f"moved the old sweep aside to {aside}")
    if plan_note:
        console.print(f"[bold]{name}[/]: {plan_note}")
    command = "scale sweep " + " ".join([name, *overrides])
    interrupted, _, error = train_stages(sweep, command, preset,
                                           lambda s: _launch_stage(s, name, args))  # fmt: skip
    if error:
        console.print(f"[red]{error}[/]")
    df = write_results(out)
    mine = df[df["point_id"].isin({s.point_id for s in sweep.specs})]
    tuning = mine["role"].eq("tuning")  # the report's lr section shows them
    runs = f" (and {tuning.sum()} lr tuning runs)" if tuning.any() else ""
    console.print(points_table(mine[~tuning], f"{name}: {(~tuning).sum()} points{runs}"))
    spent = spent_line(mine[mine["status"] == "ok"])
    if spent:
        console.print(spent)
    _analyse_sweep(out, name, args.bootstrap)
    counts = mine["status"].value_counts().to_dict()
    if args.max_failures and failure_streak(out) >= args.max_failures:
        console.print(
            f"[red]stopped[/]: {args.max_failures} points failed in a row; the rest stay pending"
        )
    console.print("  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if interrupted:
        return EXIT_INTERRUPTED
    if sweep.deferred:
        return EXIT_POINTS_FAILED  # the sizes to train at a tuned lr were never planned
    return EXIT_OK if counts.get("ok", 0) == len(mine) else EXIT_POINTS_FAILED


def _dry_run(name: str, preset, overrides: list[str]) -> int:
    """``--dry-run``: every point planned, its cost estimated on this machine, nothing written."""
    from rich.table import Table

    from ..console import console
    from ..design import dry_run
    from ..report.sections import fmt

    rows = dry_run(name, preset, overrides)
    table = Table("point", "role", "N", "steps", "FLOPs", "time (s)", "MB",
                  title=f"{name}: {len(rows)} points, dry run")  # fmt: skip
    for r in rows.itertuples():
        table.add_row(r.label, r.role, fmt(r.params), fmt(r.steps), fmt(float(r.flops)),
                      f"{r.time_s:.1f}", f"{r.peak_memory_bytes / 1e6:.0f}")  # fmt: skip
    console.print(table)
    console.print(f"total on {rows['device'].iloc[0]}: {fmt(float(rows['flops'].sum()))} FLOPs, "
                  f"about {rows['time_s'].sum():.0f} s of training (the median of 3 timed blocks of 7 "
                  f"steps of each distinct model), peak memory {rows['peak_memory_bytes'].max() / 1e6:.0f} MB; "
                  "nothing was written")  # fmt: skip
    return EXIT_OK


def _info(preset: Path) -> int:
    """``--info``: each config group's options (the default first), the launchers, and where
    presets and configs are found."""
    import importlib.util

    from ..config import compose as composing
    from ..config.presets import packaged_sweeps

    defaults = {"model": "mlp", "data": "mnist1d", "optim": "adamw", "trainer": "default",
                "logger": "csv", "compress": "none"}  # fmt: skip
    print("config groups (group=option on the command line; the default first):")
    for group, options in composing.groups().items():
        names = sorted(options, key=lambda o: (o != defaults.get(group), o))
        print(f"  {group}: {', '.join(names)}")
    plugins = {"joblib": "hydra_plugins.hydra_joblib_launcher",
               "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
               "ray": "hydra_plugins.hydra_ray_launcher"}  # fmt: skip
    installed = [n for n, module in plugins.items() if importlib.util.find_spec(module)]
    ours = sorted(p.stem for p in (composing.conf_dir() / "hydra" / "launcher").glob("*.yaml"))
    print(f"  hydra/launcher: basic, {', '.join(installed + ours)}")
    print("search path:")
    print(f"  presets: {Path('sweeps').resolve()}, then {packaged_sweeps()}")
    print(f"  configs: {composing.conf_dir()}")
    print(f"this preset: {preset}")
    return EXIT_OK


def _print_config(preset, overrides: list[str], extra: list[str]) -> int:
    """``--cfg job``: the first point of the grid, composed and validated, as YAML."""
    from omegaconf import OmegaConf

    from ..config import compose as composing

    with composing.hydra_context():
        grid, _, _ = composing.expand(preset, overrides)
        cfg = composing.compose(grid[0], preset, extra)
    print(OmegaConf.to_yaml(OmegaConf.structured(cfg)), end="")
    return EXIT_OK


def _launch_stage(sweep, name: str, args) -> bool:
    """Train what of the sweep's current jobs is not done, with progress; whether Ctrl-C
    interrupted it."""
    from ..analysis.lr import LRLaw
    from ..console import SweepProgress, console
    from ..launch import launch, pending
    from ..store import read_lr_law

    if any(s.lr_source == "tuned" for job in sweep.jobs for s in job):
        law = LRLaw.from_record(read_lr_law(sweep.out))
        console.print(f"[bold]{name}[/]: {law.text()} from the tuning runs")
    todo, jobs = pending(sweep, args.retry_failed)
    n = len(sweep.specs)
    console.print(
        f"[bold]{name}[/]: {n} points, {n - len(todo)} done, {len(todo)} to run → {sweep.out}"
    )
    if not jobs:
        return False
    try:
        with SweepProgress(sweep.out, [s.entry() for s in todo], plans=not sweep.remote):
            launch(sweep, jobs, args.max_failures)
    except KeyboardInterrupt:
        console.print(
            "[yellow]interrupted[/]: finished points are kept; run the same command to resume"
        )
        return True
    return False


def _preset_and_overrides(argv: list[str], default: str | None) -> tuple[str | None, list[str]]:
    """``[PRESET] overrides…``: a first word without ``=`` names a preset."""
    if argv and "=" not in argv[0]:
        return argv[0], list(argv[1:])
    return default, list(argv)


def cmd_run(args) -> int:
    from rich.markup import escape

    from ..config.compose import compose, hydra_context
    from ..console import console, points_table
    from ..launch import train_job
    from ..planning import plan_points
    from ..store import split_variant, write_results

    out = Path(args.out or "outputs/run").resolve()
    if args.cfg:
        return _print_config(None, args.args, ["sweep=run", f"out={out}"])
    with hydra_context():
        cfg = compose(args.args, extra=["sweep=run", f"out={out}"])
        specs = plan_points(cfg, args.args)
    try:
        rows = train_job([s for s in specs if s.role != "teacher"], out, again=True)
    except KeyboardInterrupt:
        write_results(out)
        return EXIT_INTERRUPTED
    df = write_results(out)
    ours = df["point_id"].map(lambda pid: split_variant(pid)[0]).isin([r["point_id"] for r in rows])
    console.print(points_table(df[ours], "run"))  # with their compressed variants
    for row in rows:
        if row["status"] != "ok":
            console.print(
                f"[red]{row['status']}[/] (seed {row['seed']}): {escape(str(row['error']))}"
            )
    return EXIT_OK if all(r["status"] == "ok" for r in rows) else EXIT_POINTS_FAILED


def cmd_coord_check(args) -> int:
    from ..config.presets import find_preset
    from ..console import console
    from ..report import COORDS
    from ..report.study_plots import plot_coord_check
    from ..store import atomic_write_text, write_json
    from ..training.coord import coord_check

    name, overrides = _preset_and_overrides(args.args, None)
    try:
        widths = [int(w) for w in args.widths.split(",")]
    except ValueError:
        raise BadInput(
            f"--widths takes integers separated by commas, got '{args.widths}'"
        ) from None
    preset = find_preset(name) if name else None
    out = Path(args.out or Path("outputs") / (name or "coord_check") / "plots")
    specs = coord_specs(overrides, preset, widths, args.steps, args.lr)
    coords = coord_check(specs)
    lr = next(iter(specs.values())).cfg.optim.lr
    atomic_write_text(out / COORDS, coords.to_csv(index=False))
    write_json(
        (out / COORDS).with_suffix(".json"), {"steps": args.steps, "lr": lr, "widths": widths}
    )
    hidden = [layer for layer in dict.fromkeys(coords["layer"]) if layer != "logits"][-1]
    for path in plot_coord_check(coords, out / "coord_check", [hidden, "logits"]):
        console.print(f"wrote {path}")
    return EXIT_OK


def sweep_words(prefix: str, **_) -> list[str]:
    """Tab completion of a sweep's words: the presets, and each config group's options."""
    from ..config.compose import groups  # only when completing: it imports the models
    from ..config.presets import preset_names

    words = preset_names() + [f"{g}={o}" for g, options in groups().items() for o in options]
    return [w for w in words if w.startswith(prefix)]


def cmd_presets(args) -> int:
    from rich.table import Table

    from ..config.presets import packaged_sweeps, presets
    from ..console import console

    table = Table("preset", "what it studies", "file")
    for name, text, path in presets():
        where = "packaged" if path.parent == packaged_sweeps().resolve() else str(path)
        table.add_row(name, text, where)
    console.print(table)
    return EXIT_OK


def cmd_ls(args) -> int:
    from ..console import console, sweeps_table

    table = sweeps_table(Path(args.root))
    console.print(table if table is not None else f"no sweeps under {args.root}/")
    return EXIT_OK


def cmd_show(args) -> int:
    from ..console import console, points_table
    from ..store import collect

    path = Path(args.target)
    if not path.is_dir():
        path = Path("outputs") / args.target
    if not path.is_dir():
        raise BadInput(f"no sweep folder at '{args.target}'")
    console.print(points_table(collect(path), path.name))
    return EXIT_OK


def coord_specs(overrides: list[str], preset: Path | None, widths: list[int], steps: int,
                lr: float | None = None) -> dict:  # fmt: skip
    """The points of a coordinate check: the composed point at each width under sp and μP,
    ``steps`` steps at a constant lr on the CPU, one evaluation at the end."""
    from ..config import compose as composing
    from ..planning import plan_point

    field = composing.compose(overrides, preset).model.WIDTH
    if field is None:
        raise BadInput("scale coord-check: this model family has no width to vary")
    check = ["optim.schedule=constant", "optim.warmup=0", f"trainer.steps={steps}",
             f"trainer.eval_interval={steps}", "trainer.budget=steps", "trainer.device=cpu",
             "trainer.pack_seeds=1", "compress=none", "distill.alpha=0", "logger=csv"]  # fmt: skip
    check += [f"optim.lr={lr}"] if lr is not None else []
    specs = {}
    for par in ("sp", "mup"):
        for width in widths:
            point = [*overrides, *check, f"model.{field}={width}", f"model.parametrization={par}"]
            specs[(par, width)] = plan_point(
                composing.compose(point, preset), point, f"{par} {width}"
            )
    return specs
