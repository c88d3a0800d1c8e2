"""Sweep presets: ``./sweeps/NAME.yaml`` first, then the packaged ones (scaling/sweeps)."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from ..errors import BadInput


def packaged_sweeps() -> Path:
    return Path(str(files("scaling.sweeps")))


def preset_names() -> list[str]:
    names = {p.stem for p in packaged_sweeps().glob("*.yaml")}
    names |= {p.stem for p in Path("sweeps").glob("*.yaml")}
    return sorted(names)


def describe(path: Path) -> str:
    """A preset's first sentence: the comment at its top."""
    comment = []
    for line in Path(path).read_text().splitlines():
        if not line.startswith("#"):
            break
        if "@package" not in line:
            comment.append(line.lstrip("# ").strip())
    text = " ".join(comment)
    return re.split(r"(?<! al)\. (?=[A-Z`])", text)[0].rstrip(".") + "." if text else ""


def presets() -> list[tuple[str, str, Path]]:
    """Every preset found: (name, first sentence, file); ./sweeps first, as ``find_preset``."""
    return [(name, describe(path), path) for name in preset_names() for path in [find_preset(name)]]


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
