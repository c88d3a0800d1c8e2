"""Experiment trackers: each point's metrics beside history.csv (which is always written).

``open_logger(cfg, point_dir, row)`` returns an object with ``log(step, metrics)``
(called at every evaluation with the history row) and ``close(row)`` (called
once with the final row, whatever its status).

The trackers' libraries are optional and imported only when a tracker is opened;
``check_logger(cfg)`` tells a missing one before any point trains.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from contextlib import contextmanager
from pathlib import Path

from ..store import lock

# a history row's values that are curves (the rest are x-axes: step, examples, tokens, wall_s)
_CURVES = ("train_loss", "val_loss", "val_accuracy", "lr")
# a final row's numbers that are settings or bookkeeping, not results
_NOT_RESULTS = {
    "seed", "batch_size", "world_size", "micro_batch_size", "grad_accum", "lr", "compress_level",
}  # fmt: skip
# a point's identity columns, kept with its settings
_IDENTITY = ("sweep", "point_id", "family", "dataset", "seed")
_MLFLOW_RUN_STATUS = {
    "ok": "FINISHED",
    "failed": "FAILED",
    "diverged": "FAILED",
    "oom": "FAILED",
    "interrupted": "KILLED",
    "hopeless": "KILLED",
}
_MLFLOW_PARAM_CHARS = 6000  # MLflow refuses longer parameter values
_MLFLOW_BATCH = 100  # MLflow takes at most 100 parameters per call


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _curves(metrics: dict) -> dict[str, float]:
    """One evaluation's scalars: the losses, accuracy, learning rate and throughput.

    Throughput counts tokens for language models and examples otherwise, as the result row does.
    """
    out = {k: float(metrics[k]) for k in _CURVES if metrics.get(k) is not None}
    seen = metrics.get("tokens") if metrics.get("tokens") is not None else metrics.get("examples")
    if seen is not None and metrics.get("wall_s"):
        out["throughput"] = seen / metrics["wall_s"]
    return out


def _settings(row: dict) -> dict:
    """The point's settings: its identity and its flattened config (``model.width``, …)."""
    return {k: v for k, v in row.items() if k in _IDENTITY or "." in k}


def _results(row: dict) -> dict[str, float]:
    """The final row's finite numbers that are results (losses, accuracy, params, FLOPs, time…)."""
    return {
        k: float(v)
        for k, v in row.items()
        if "." not in k and k not in _NOT_RESULTS and k not in _IDENTITY and _is_number(v)
    }


def _require(package: str) -> None:
    if importlib.util.find_spec(package) is None:
        raise ValueError(
            f"logger={package} needs the {package} package: pip install 'scaling[{package}]'"
        )


class NoLogger:
    """``logger=csv``: history.csv is all."""

    package = None

    def __init__(self, cfg=None, point_dir: Path | None = None, row: dict | None = None):
        pass

    def log(self, step: int, metrics: dict) -> None:
        pass

    def close(self, row: dict) -> None:
        pass


class TensorBoardLogger:
    """``logger=tensorboard``: event files in ``<point>/tensorboard/``.

    Each point is one run: its curves at every evaluation, and at the end its settings
    and final results for the HParams dashboard (``tensorboard --logdir <out>/points``).
    """

    package = "tensorboard"

    def __init__(self, cfg, point_dir: Path, row: dict):
        _require(self.package)
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(point_dir) / "tensorboard"))

    def log(self, step: int, metrics: dict) -> None:
        for k, v in _curves(metrics).items():
            self.writer.add_scalar(k, v, step)
        self.writer.flush()  # a point that is killed keeps its curves so far

    def close(self, row: dict) -> None:
        try:
            hparams = {
                k: v
                for k, v in {**_settings(row), "status": row.get("status")}.items()
                if isinstance(v, (int, float, str, bool))
            }
            # prefixed, or the dashboard would show the last val_loss curve point instead
            results = {f"final/{k}": v for k, v in _results(row).items()}
            # run_name ".": the settings go with this run's curves, not into a run of their own
            self.writer.add_hparams(hparams, results, run_name=".", global_step=row.get("steps"))
        finally:
            self.writer.close()


class MLflowLogger:
    """``logger=mlflow``: one MLflow run per point, in the experiment named after the sweep.

    The store is ``logger.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<out>/mlruns.db``. A client of its own per point (no fluent API, no
    global active run), so points trained together in one process keep their runs apart.
    """

    package = "mlflow"

    def __init__(self, cfg, point_dir: Path, row: dict):
        _require(self.package)
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = tracking_uri(cfg)
        with _sqlite_lock(uri):
            self.client = MlflowClient(tracking_uri=uri)  # creates a new store's tables
            experiment = self._experiment(cfg.logger.experiment or cfg.sweep)
        tags = {"point_id": row["point_id"], "status": "running"}
        tags |= {k: str(row[k]) for k in ("sweep", "family", "dataset") if row.get(k) is not None}
        run = self.client.create_run(
            experiment, run_name=row.get("label") or row["point_id"], tags=tags
        )
        self.run_id = run.info.run_id
        params = [
            Param(k, str(v)[:_MLFLOW_PARAM_CHARS]) for k, v in row.items() if "." in k
        ]  # the flattened config; MLflow keeps parameters as strings
        for i in range(0, len(params), _MLFLOW_BATCH):
            self.client.log_batch(self.run_id, params=params[i : i + _MLFLOW_BATCH])

    def _experiment(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name)
        except MlflowException:  # another point created it meanwhile
            return self.client.get_experiment_by_name(name).experiment_id

    def _log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items() if math.isfinite(v)]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)

    def log(self, step: int, metrics: dict) -> None:
        self._log(_curves(metrics), step)

    def close(self, row: dict) -> None:
        status = row.get("status")
        try:
            self._log(_results(row), row.get("steps") or 0)
            self.client.set_tag(self.run_id, "status", str(status))
            if row.get("error"):
                self.client.set_tag(self.run_id, "error", str(row["error"])[:5000])
        finally:
            self.client.set_terminated(self.run_id, _MLFLOW_RUN_STATUS.get(status, "FAILED"))


class WandbLogger:
    """``logger=wandb``: one Weights & Biases run per point, in the project named after the
    sweep (or ``logger.experiment``) and grouped by it, with the point's settings as config.

    Online when W&B has an API key (``WANDB_API_KEY``, or ``wandb login``), else offline, with
    the run's files under ``<point>/wandb`` (``wandb sync`` uploads them); ``WANDB_MODE``
    chooses. A run that did not end ok finishes with a non-zero exit code (failed); an
    interrupted one, which resumes on the next run of the sweep, is marked preempted first.
    """

    package = "wandb"

    def __init__(self, cfg, point_dir: Path, row: dict):
        _require(self.package)
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if _wandb_key() else "offline")
        self.run = wandb.init(
            project=cfg.logger.experiment or cfg.sweep, group=cfg.sweep, dir=str(point_dir),
            name=row.get("label") or row["point_id"], config=_settings(row), mode=mode,
            reinit="create_new", settings=wandb.Settings(silent=True),
        )  # fmt: skip

    def log(self, step: int, metrics: dict) -> None:
        self.run.log(_curves(metrics), step=step)

    def close(self, row: dict) -> None:
        status = row.get("status")
        try:
            self.run.summary.update({f"final/{k}": v for k, v in _results(row).items()})
            self.run.summary["status"] = str(status)
            if row.get("error"):
                self.run.summary["error"] = str(row["error"])[:5000]
            if status == "interrupted":
                self.run.mark_preempting()
        finally:
            self.run.finish(exit_code=0 if status == "ok" else 1)


def _wandb_key() -> bool:
    """Whether W&B has an API key: the environment's, or a ``wandb login`` in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")


def tracking_uri(cfg) -> str:
    """Where MLflow runs go: ``logger.tracking_uri``, ``$MLFLOW_TRACKING_URI``, or the study's
    own ``sqlite:///<out>/mlruns.db`` (an absolute path)."""
    if cfg.logger.tracking_uri:
        return cfg.logger.tracking_uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(cfg.out).resolve() / 'mlruns.db'}"


@contextmanager
def _sqlite_lock(uri: str):
    """Hold ``<db>.lock`` for a sqlite store: MLflow creates and migrates a store's tables on
    first use, and concurrent jobs doing that at once leave it broken."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    db = Path(uri.removeprefix("sqlite:///").split("?")[0])
    with lock(db.with_name(db.name + ".lock")):
        yield


LOGGERS = {"csv": NoLogger, "tensorboard": TensorBoardLogger, "mlflow": MLflowLogger,
           "wandb": WandbLogger}  # fmt: skip


def check_logger(cfg) -> None:
    """Raise ``ValueError`` when ``cfg.logger`` names an unknown tracker or one not installed."""
    name = cfg.logger.name
    if name not in LOGGERS:
        raise ValueError(f"unknown logger={name}; choose one of {', '.join(LOGGERS)}")
    if LOGGERS[name].package:
        _require(LOGGERS[name].package)


def open_logger(cfg, point_dir: Path | None, row: dict):
    """The configured tracker for one point; nothing for a point without a folder.

    Raises:
        ValueError: the tracker is unknown or its package is not installed.
    """
    if point_dir is None:
        return NoLogger()
    check_logger(cfg)
    return LOGGERS[cfg.logger.name](cfg, Path(point_dir), row)
