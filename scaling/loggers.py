"""Experiment trackers: each point's metrics beside history.csv (which is always written).

``open_logger(cfg, point_dir, row)`` returns an object with ``log(step, metrics)``
(called at every evaluation with the history row) and ``close(row)`` (called
once with the final row, whatever its status).
"""

from __future__ import annotations

from pathlib import Path


class NoLogger:
    """``logger=csv``: history.csv is all."""

    def log(self, step: int, metrics: dict) -> None:
        pass

    def close(self, row: dict) -> None:
        pass


LOGGERS = {"csv": NoLogger}


def open_logger(cfg, point_dir: Path | None, row: dict):
    """The configured tracker for one point; nothing for a point without a folder."""
    if point_dir is None:
        return NoLogger()
    return (
        LOGGERS[cfg.logger.name](cfg, Path(point_dir), row)
        if cfg.logger.name != "csv"
        else NoLogger()
    )
