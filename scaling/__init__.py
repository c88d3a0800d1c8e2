"""scaling: run parameter-scaling studies of neural networks.

The command line is ``scale``; the same steps from Python::

    from scaling import load_table, analyze, fit_law    # any table; torch is not imported
    from scaling import compose, plan, train_point, run_sweep

    table = load_table("outputs/mlp_width", ["params", "val_loss"])
    analysis = analyze(table)                            # or analyze(df, x="N", y="loss")
    fit = fit_law(df["N"], df["loss"])                   # L = E + A·N^-α with its fit state

    cfg = compose(["model.width=64", "trainer.steps=200"])
    row = train_point(plan(cfg)[0])                      # one point, its result row
    results = run_sweep("mlp_width", ["trainer.steps=200"])
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> (module, attribute); a module is imported when its name is first used, so that
# the analysis side never pays for (or needs) torch
_API = {
    "compose": ("scaling.config.compose", "compose"),
    "plan": ("scaling.planning", "plan_points"),
    "train_point": ("scaling.launch", "train_point"),
    "run_sweep": ("scaling.launch", "run_sweep"),
    "load_table": ("scaling.store", "load_table"),
    "analyze": ("scaling.analysis.study", "analyze"),
    "fit_law": ("scaling.analysis.fit", "fit_law"),
}
__all__ = list(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'scaling' has no attribute '{name}'")
    module, attribute = _API[name]
    return getattr(importlib.import_module(module), attribute)


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
