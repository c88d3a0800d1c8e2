"""``scale``: sweep, run, fit, plot, report, doctor, compare, design, coord-check, and the
listings presets, ls and show.

argparse in front of the commands (``scaling.commands``), which import the package only when
the arguments parse: torch alone costs a second, and a typo deserves an instant answer.
"""

from __future__ import annotations

import argparse
import signal
import sys

try:
    import argcomplete
except ImportError:  # tab completion is an extra
    argcomplete = None

from .analysis.options import DEFAULTS
from .commands import COMMANDS, sweep_words
from .config.presets import preset_names
from .errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, BadInput


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="scale", description="Run parameter-scaling studies of neural networks.",
        epilog=f"presets: {', '.join(preset_names())} (scale presets says what each studies)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    _sweep_parser(sub.add_parser("sweep", help="train every point of a preset's grid",
                                 epilog=f"presets: {', '.join(preset_names())} "
                                 "(scale presets says what each studies)"))  # fmt: skip

    r = sub.add_parser("run", help="train one point")
    r.add_argument("args", nargs="*", help="Hydra overrides")
    r.add_argument("--out", help="folder (default: outputs/run)")
    r.add_argument("--cfg", choices=["job"], help="print the composed config and stop")

    for name, text in (
        ("fit", "fit scaling laws with 95%% intervals → fits.json"),
        ("plot", "draw the study's figures → plots/"),
        ("report", "fits, figures and tables → report.md, report.html"),
    ):
        f = sub.add_parser(name, help=text)
        f.add_argument("targets", nargs="+" if name == "plot" else 1, metavar="target",
                       help="a sweep folder, a sweep name under outputs/, or a CSV/Parquet file")  # fmt: skip
        _analysis_options(f)
        if name == "plot":
            f.add_argument("--out", default=None, help="folder for a comparison of several studies")

    d = sub.add_parser("doctor", help="the runs' health: overfitting, under-training, an lr at "
                       "the edge of its grid, too few sizes, …, one line each with the fix")  # fmt: skip
    d.add_argument(
        "target", help="a sweep folder, a sweep name under outputs/, or a CSV/Parquet file"
    )
    d.add_argument("--x", default=DEFAULTS.x, help=f"size column (default: {DEFAULTS.x})")
    d.add_argument("--y", default=DEFAULTS.y, help=f"loss column (default: {DEFAULTS.y})")

    _compare_parser(sub.add_parser("compare", help="a variant's compute multiplier over a baseline, "
                                   "per budget with intervals, and its trend"))  # fmt: skip

    _design_parser(sub.add_parser("design", help="before a grid runs, the intervals it can expect; "
                                  "after a pilot, the next points to run"))  # fmt: skip

    c = sub.add_parser("coord-check", help="μP's coordinate check: activation sizes across widths")
    c.add_argument("args", nargs="*", help="[PRESET] then Hydra overrides of the point checked")
    c.add_argument(
        "--widths", default="64,256,1024", help="widths to compare (default: 64,256,1024)"
    )
    c.add_argument("--steps", type=int, default=10, help="training steps recorded (default: 10)")
    c.add_argument("--lr", type=float, default=None, help="learning rate (default: the point's)")
    c.add_argument("--out", default=None, help="folder for the table and figure "
                   "(default: outputs/PRESET/plots, where `scale report` finds them)")  # fmt: skip

    sub.add_parser("presets", help="the sweep presets, each with what it studies")
    ls = sub.add_parser("ls", help="every sweep under a folder, with points per status")
    ls.add_argument("root", nargs="?", default="outputs")
    show = sub.add_parser("show", help="the points of one sweep")
    show.add_argument("target")
    return p


def _sweep_parser(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "args", nargs="*", help="[PRESET] then Hydra overrides (key=value, comma lists, range())"
    ).completer = sweep_words
    s.add_argument("--out", help="sweep folder (default: outputs/PRESET)")
    s.add_argument("--fresh", action="store_true", help="move the old folder aside and start over")
    s.add_argument(
        "--retry-failed", action="store_true", help="also re-run failed, oom and diverged points"
    )
    s.add_argument("--bootstrap", type=int, default=DEFAULTS.bootstrap,
                   help="resamples for the end-of-sweep intervals")  # fmt: skip
    s.add_argument("--max-failures", type=int, default=None, metavar="N",
                   help="stop after N points in a row fail")  # fmt: skip
    s.add_argument("--dry-run", action="store_true", help="plan every point and estimate its "
                   "FLOPs, time and memory from a few timed steps; train and write nothing")  # fmt: skip
    s.add_argument("--info", action="store_true", help="the config groups and their options, "
                   "and where presets and configs are found")  # fmt: skip
    s.add_argument("--cfg", choices=["job"], help="print the first point's composed config "
                   "and stop (nothing is written)")  # fmt: skip


def _at_least(low: float, kind=float):
    """An argparse type: a number ≥ ``low`` (> 0 when ``low`` is 0)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value < low or (low == 0 and value <= 0):
            raise argparse.ArgumentTypeError(
                f"must be {'> 0' if low == 0 else f'≥ {low}'}, got {text}"
            )
        return value

    return parse


def _compare_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="+", metavar="target",
                   help="BASELINE VARIANT: two sweep folders, sweep names or CSV/Parquet files; "
                   "or one table with --by")  # fmt: skip
    p.add_argument("--by", metavar="COL", help="compare the two values of this column of one table")
    p.add_argument("--baseline", metavar="VALUE", help="with --by: the value that is the baseline")
    p.add_argument("--x", default="flops_total", help="compute column (default: flops_total)")
    p.add_argument("--y", default=DEFAULTS.y, help=f"loss column (default: {DEFAULTS.y})")
    p.add_argument("--n", default="params", help="size column (default: params)")
    p.add_argument("--d", default=None, help="data column: compare L(N, D)'s compute-optimal "
                   "envelopes (sweeps: found when it varies)")  # fmt: skip
    p.add_argument("--target", type=_at_least(0), default=None, metavar="C",
                   help="also the multiplier at this compute (marked when extrapolated)")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=DEFAULTS.bootstrap,
                   help=f"resamples per side (default: {DEFAULTS.bootstrap})")  # fmt: skip
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the bootstrap")
    p.add_argument(
        "--json", action="store_true", help="print compare.json's record instead of tables"
    )
    p.add_argument("--out", default=None, help="folder for compare.json, .md, .html and the figure")


def _design_parser(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("check", help="simulate studies of a grid: expected intervals, "
                           "each budget's optimum against its sizes, the cost")  # fmt: skip
    c.add_argument("args", nargs="*", help="[PRESET] then Hydra overrides of the grid")
    c.add_argument("--prior", metavar="STUDY", help="a finished study whose law, noise and "
                   "throughput to assume (default: a generic prior)")  # fmt: skip
    c.add_argument("--noise", type=_at_least(0), default=None, help="noise of log loss (default: the "
                   "prior study's, else 0.02)")  # fmt: skip
    c.add_argument("--target", type=_at_least(0), default=None, metavar="N",
                   help="the size whose loss to predict (default: 4× the largest)")  # fmt: skip
    c.add_argument(
        "--studies", type=_at_least(20, int), default=200, help="simulated studies (default: 200)"
    )
    c.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    s = actions.add_parser("suggest", help="the next points of a finished study that most "
                           "shrink a target's interval per FLOP, as a preset")  # fmt: skip
    s.add_argument("target_study", metavar="STUDY", help="a sweep folder or a sweep name")
    s.add_argument("--target", type=_at_least(0), default=None, metavar="N",
                   help="the size whose loss to predict (default: 4× the largest)")  # fmt: skip
    s.add_argument(
        "--k", type=_at_least(1, int), default=2, help="points to propose at most (default: 2)"
    )
    s.add_argument("--tight", type=_at_least(0), default=None, metavar="SHARE",
                   help="stop once the target's 95%% interval is within ± this share (0.02: ±2%%)")  # fmt: skip
    s.add_argument("--bootstrap", type=int, default=200, help="resamples for the study's law")
    s.add_argument("--preset-out", default=None, metavar="PATH",
                   help="where to write the preset (default: sweeps/STUDY_next.yaml)")  # fmt: skip


def _analysis_options(p: argparse.ArgumentParser) -> None:
    D = DEFAULTS
    p.add_argument("--x", default=D.x, help=f"size column N (default: {D.x})")
    p.add_argument("--y", default=D.y, help=f"loss column (default: {D.y})")
    p.add_argument(
        "--d", default=D.d, help="data column D, for L(N, D) (sweeps: found when it varies)"
    )
    p.add_argument("--c", default=D.c, help="compute-budget column, for IsoFLOP minima")
    p.add_argument("--form", default=D.form, choices=("saturating", "power"), help="the law in N")
    p.add_argument("--holdout", type=int, default=D.holdout,
                   help="hold out the K largest sizes (default: 1 when there are enough)")  # fmt: skip
    p.add_argument("--bootstrap", type=int, default=D.bootstrap,
                   help=f"resamples for 95%% intervals (default: {D.bootstrap})")  # fmt: skip
    p.add_argument("--seed", type=int, default=D.seed, help="seed of the bootstrap")
    p.add_argument("--tolerance", type=float, default=D.tolerance,
                   help=f"the prediction of held-out sizes passes within this relative error (default: {D.tolerance})")  # fmt: skip
    p.add_argument("--group", default=D.group, metavar="COL",
                   help="fit one law per value of this column (a training set, a recipe)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    if argcomplete is not None:  # answers the shell's tab key and exits; otherwise nothing
        argcomplete.autocomplete(parser)
    args, extra = parser.parse_known_args(argv)
    # overrides may come after options (scale sweep --fresh model.width=8,16)
    if extra and (not hasattr(args, "args") or any(e.startswith("-") for e in extra)):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        args.args += extra

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


if __name__ == "__main__":
    sys.exit(main())
