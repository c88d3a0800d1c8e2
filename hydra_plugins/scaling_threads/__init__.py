"""Points as threads of one process: a Hydra launcher (``hydra/launcher=threads``)."""

from .launcher import ThreadsLauncher

__all__ = ["ThreadsLauncher"]
