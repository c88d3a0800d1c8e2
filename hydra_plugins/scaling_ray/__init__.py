"""Points as Ray tasks: a Hydra launcher on Ray's own API (``hydra/launcher=ray``)."""

from .launcher import RayLauncher

__all__ = ["RayLauncher"]
