"""The commands of ``scale``, one function each: they call the package and print; each returns
its exit code. Imports are made inside the commands, so that each pays only for what it uses
(``scale fit`` never imports torch)."""

from __future__ import annotations

from .decide import cmd_compare, cmd_design
from .study import cmd_doctor, cmd_fit, cmd_plot, cmd_report
from .train import cmd_coord_check, cmd_ls, cmd_presets, cmd_run, cmd_show, cmd_sweep, sweep_words

COMMANDS = {
    "sweep": cmd_sweep,
    "run": cmd_run,
    "fit": cmd_fit,
    "plot": cmd_plot,
    "report": cmd_report,
    "doctor": cmd_doctor,
    "compare": cmd_compare,
    "design": cmd_design,
    "coord-check": cmd_coord_check,
    "presets": cmd_presets,
    "ls": cmd_ls,
    "show": cmd_show,
}

__all__ = ["COMMANDS", "sweep_words"]
