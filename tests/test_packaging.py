import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.slow
def test_wheel_ships_configs_and_presets(tmp_path):
    """An installed (not editable) copy must find conf/ and sweeps/ inside the package."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("scaling-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for conf in ROOT.glob("conf/**/*.yaml"):
        assert f"scaling/conf/{conf.relative_to(ROOT / 'conf')}" in names
    for preset in ROOT.glob("sweeps/*.yaml"):
        assert f"scaling/sweeps/{preset.name}" in names
    modules = {f"scaling/{m.relative_to(ROOT / 'scaling')}" for m in ROOT.glob("scaling/**/*.py")}
    assert modules - names == set()  # every subpackage is listed in pyproject.toml
    plugins = {str(m.relative_to(ROOT)) for m in ROOT.glob("hydra_plugins/*/*.py")}
    assert plugins and plugins - names == set()  # the launchers, where Hydra looks for them
