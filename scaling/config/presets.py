"""Sweep presets: ``./sweeps/NAME.yaml`` first, then the packaged ones (scaling/sweeps)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from ..errors import BadInput


def packaged_sweeps() -> Path:
    return Path(str(files("scaling.sweeps")))


def preset_names() -> list[str]:
    names = {p.stem for p in packaged_sweeps().glob("*.yaml")}
    names |= {p.stem for p in Path("sweeps").glob("*.yaml")}
    return sorted(names)


def find_preset(name: str) -> Path:
    """``./sweeps/NAME.yaml`` first, then the packaged presets."""
    for root in (Path("sweeps"), packaged_sweeps()):
        path = root / f"{name}.yaml"
        if path.is_file():
            return path.resolve()
    raise BadInput(f"unknown sweep preset '{name}'; choose from: {', '.join(preset_names())}")


def preset_overrides(preset: Path | None) -> list[str]:
    """Overrides that load a preset file: its folder's parent on the search path, ``+sweeps=NAME``."""
    if preset is None:
        return []
    return [f"hydra.searchpath=[file://{preset.parent.parent}]", f"+sweeps={preset.stem}"]
