"""A config field's own checks, shared by every group's dataclass."""

from __future__ import annotations


def positive(obj, *names, allow_zero=False):
    """ValueError unless each of ``obj``'s fields ``names`` (where set) is > 0 (≥ 0)."""
    for name in names:
        value = getattr(obj, name)
        if value is None:
            continue
        if value < 0 or (value == 0 and not allow_zero):
            bound = "≥ 0" if allow_zero else "> 0"
            raise ValueError(f"{obj.GROUP}.{name} must be {bound}, got {value}")


def choice(obj, name: str, options) -> None:
    value = getattr(obj, name)
    if value not in options:
        raise ValueError(f"{obj.GROUP}.{name} must be one of {', '.join(options)}, got '{value}'")
