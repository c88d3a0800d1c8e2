"""A point being trained: its row, history, tracker and files, and how it ends."""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .. import store
from .loggers import open_logger


@dataclass(frozen=True)
class Resources:
    """What the job that runs a point was given: a device and CPU threads (None: the config's)."""

    device: str | None = None
    threads: int | None = None
    visible: str | None = None  # a process group's GPUs, its torchrun's CUDA_VISIBLE_DEVICES


HERE = Resources()  # the config's own device and threads


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Member:
    """One point being trained: its row, history, tracker and files."""

    def __init__(self, spec, folder: Path | None, leader: bool, track: bool = True,
                 threads: int | None = None, device: str | None = None):  # fmt: skip
        cfg = spec.cfg
        # what the job was given (its share of the cores, its GPU) is recorded as its settings
        given = {k: v for k, v in (("threads", threads), ("device", device)) if v}
        if given:
            cfg = replace(cfg, trainer=replace(cfg.trainer, **given))
        self.spec, self.folder = spec, folder  # read by every rank (a checkpoint)
        self.point_dir = folder if leader else None  # written by rank 0 alone
        tr = cfg.trainer
        self.row = store.new_row(store.settings_columns(asdict(cfg)), sweep=cfg.sweep,
                                 family=cfg.model.family, dataset=cfg.data.name, seed=tr.seed,
                                 batch_size=tr.batch_size, world_size=tr.nproc,
                                 micro_batch_size=tr.micro_batch, grad_accum=tr.grad_accum,
                                 torch_version=torch.__version__, started_at=now(),
                                 point_id=spec.point_id)  # fmt: skip
        if self.point_dir is not None:
            yaml = OmegaConf.to_yaml(OmegaConf.structured(cfg), resolve=True)
            store.atomic_write_text(Path(self.point_dir) / "config.yaml", yaml)
        self.history: list[dict] = []
        self.best, self.stale, self.done = math.inf, 0, False
        self.logger = open_logger(cfg, self.point_dir if track else None, self.row)
        self.forecaster = None  # set once the run's course is known (training.forecast)

    @property
    def alive(self) -> bool:
        return not self.done

    def record(self, step, train_loss, metrics, lr, examples, tokens, wall_s) -> None:
        """One evaluation: a history row, kept, written to history.csv and logged."""
        self.history.append({"step": step, "train_loss": train_loss, "val_loss": metrics["val_loss"],
                             "val_accuracy": metrics.get("val_accuracy"), "lr": lr,
                             "examples": examples, "tokens": tokens, "wall_s": wall_s})  # fmt: skip
        if self.point_dir is not None:
            store.write_history(self.point_dir, self.history)
        self.logger.log(step, self.history[-1])
        if self.forecaster is not None:
            try:
                self.forecaster.update()
            except Exception as e:  # noqa: BLE001 - a forecast is an extra: never a point's failure
                warnings.warn(f"forecast: {type(e).__name__}: {e}", stacklevel=1)
                self.forecaster = None
        self.row["steps"] = step
        val = metrics["val_loss"]
        self.best, self.stale = (val, 0) if val < self.best else (self.best, self.stale + 1)

    def hopeless(self) -> str | None:
        """Why it stops, where its first forecast lies above the study's law and
        ``trainer.stop_hopeless`` asks to stop such a point."""
        f = self.forecaster
        if f is not None and f.above and self.spec.cfg.trainer.stop_hopeless:
            return f.off_trend
        return None

    def diverge(self, error) -> None:
        self.finish("diverged", error)

    def finish(self, status: str, error) -> None:
        row, self.done = self.row, True
        row["status"] = status
        if error is not None and not isinstance(error, str):
            error = f"{type(error).__name__}: {error}"
        row["error"] = error
        if status != "ok":
            row["failed_at_step"] = self.history[-1]["step"] if self.history else 0
        if self.history and row.get("train_loss") is None:
            row["train_loss"] = self.history[-1]["train_loss"]
            row["val_loss"] = self.history[-1]["val_loss"]
        row["finished_at"] = now()
        if self.point_dir is not None:
            if status in store.FAILED:
                store.checkpoint_path(self.point_dir).unlink(
                    missing_ok=True
                )  # a retry starts clean
            store.write_history(self.point_dir, self.history)
            store.write_result(self.point_dir, row)
        try:
            self.logger.close(row)
        except Exception as e:  # noqa: BLE001 - the row is written; a tracker's failure must not lose it
            warnings.warn(
                f"logger={type(self.logger).__name__}: {type(e).__name__}: {e}", stacklevel=1
            )
