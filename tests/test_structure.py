"""The package's shape: a point is planned once, units stay readable, analysis needs no torch."""

import ast
import subprocess
import sys
from pathlib import Path

from conftest import TINY

import scaling
import scaling.config.compose as composing
import scaling.store as store
from scaling.cli import main

PACKAGE = Path(scaling.__file__).parent


def test_a_sweep_composes_validates_and_hashes_each_point_once(in_tmp, monkeypatch):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl

    calls = {"compose": 0, "validate": 0, "hash": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    # every composition, whoever asks for it (the planner, the launcher, a job)
    load = ConfigLoaderImpl.load_configuration
    monkeypatch.setattr(ConfigLoaderImpl, "load_configuration", counted("compose", load))
    monkeypatch.setattr(composing, "validate", counted("validate", composing.validate))
    monkeypatch.setattr(store, "point_id", counted("hash", store.point_id))
    assert main(["sweep", "model.width=4,8,12,16", *TINY, "--bootstrap", "0"]) == 0
    # the grid's expansion, each of the 4 points once, and the launcher's config of the sweep
    assert calls == {"compose": 1 + 4 + 1, "validate": 4, "hash": 4}


def test_analysis_works_on_any_table_without_torch():
    code = """
import sys
import numpy as np, pandas as pd
from scaling import analyze, fit_law, load_table
import scaling.analysis, scaling.report
n = np.logspace(3, 6, 6)
df = pd.DataFrame({"N": n, "loss": 0.5 + 30 * n ** -0.3})
assert abs(analyze(df, x="N", y="loss", bootstrap=20).fits[0].params["alpha"] - 0.3) < 1e-3
assert "torch" not in sys.modules, "torch was imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def _functions(tree):
    return [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]


def test_modules_and_functions_stay_readable():
    """No module much over 300 lines, no function over 60."""
    long_modules, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        if len(text.splitlines()) > 320:
            long_modules.append(f"{path.relative_to(PACKAGE)}: {len(text.splitlines())}")
        for f in _functions(ast.parse(text)):
            if f.end_lineno - f.lineno + 1 > 60:
                long_functions.append(f"{path.relative_to(PACKAGE)}:{f.name}")
    assert long_modules == [] and long_functions == []


def test_no_import_hides_inside_a_function_but_the_command_lines():
    """Imports inside functions hid a cycle once; only the commands keep theirs (start-up
    time), and optional packages are imported where they are used."""
    inner = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "commands":
            continue
        for f in _functions(ast.parse(path.read_text())):
            for node in ast.walk(f):
                if isinstance(node, ast.ImportFrom) and (
                    node.level or (node.module or "").startswith("scaling")
                ):
                    inner.append(f"{path.relative_to(PACKAGE)}:{f.name}")
    assert inner == []
