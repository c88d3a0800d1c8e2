"""The Hydra side of a sweep: presets, composing and validating every point, launching.

``scale sweep`` expands the grid itself (Hydra's basic-sweeper rules: comma
lists, ``range()``, the preset's ``hydra.sweeper.params``, plus explicit
``points``), composes and validates every point before anything trains, writes
``grid.json``, and then hands the points still to run to the configured Hydra launcher
(basic, joblib, submitit, ray), as Hydra's own multirun does after its
sweeper has expanded a grid. Each job writes its own files; the end-of-sweep step reads them
from disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config.compose import (
    CONFIG_NAME,
    expand,
    hydra_context,
    label,
    prepare,
    preset_overrides,
)
from .config.compose import compose as compose_point
from .errors import BadInput
from .store import atomic_write_text, read_result, try_lock, write_json


def check_shapes(cfg, specs: dict, remote: bool = False) -> int:
    """Build the model on the meta device against the data's shapes; returns its parameter count.

    ``remote``: the point runs on another machine (a scheduler's), whose devices are not checked.
    """
    import torch

    from .data import load_data
    from .measure import param_counts
    from .models import build_model
    from .train import plan_steps

    key = _data_key(cfg)
    try:
        if key not in specs:
            data = load_data(cfg.data)
            specs[key] = (data.spec, data.train_size)
        spec, train_size = specs[key]
        with torch.device("meta"):
            model = build_model(cfg.model, spec)
        params = param_counts(model)["total"]
        check_studies(cfg, specs, remote)
        per_step = cfg.trainer.batch_size * (spec.input_shape[0] if spec.task == "lm" else 1)
        flops = (
            _meta_flops(model, spec, cfg.trainer.batch_size) if cfg.trainer.budget == "flops" else 1
        )
        plan_steps(cfg.trainer, params, per_step, train_size, flops)
    except (ValueError, FileNotFoundError, OSError, OmegaConfBaseException) as e:
        raise BadInput(str(e).splitlines()[0]) from None
    return params


def check_studies(cfg, specs: dict, remote: bool = False) -> None:
    """Pre-flight checks of process groups, distillation, μP and trackers (ValueError or BadInput)."""
    from .distill import find_teacher, teacher_config
    from .distributed import check_distributed
    from .loggers import check_logger

    if not remote:
        check_distributed(cfg)
    check_logger(cfg)
    if cfg.distill.alpha > 0:
        if spec_of(cfg, specs).task == "regression":
            raise ValueError("distill: a regression task has no logits to distil")
        if cfg.distill.teacher:
            find_teacher(Path(cfg.distill.teacher).expanduser())
        else:
            check_shapes(teacher_config(cfg), specs, remote)


def check_tasks(cfg, launcher: dict) -> None:
    """A launcher that runs each point as several tasks (submitit's ``tasks_per_node``) makes
    those tasks the point's process group: their number must be ``trainer.nproc`` (BadInput)."""
    tasks = (launcher.get("nodes") or 1) * (launcher.get("tasks_per_node") or 1)
    if tasks == 1:
        return
    if tasks != cfg.trainer.nproc:
        raise BadInput(
            f"hydra.launcher runs each point as {tasks} tasks (nodes × tasks_per_node), "
            f"trainer.nproc={cfg.trainer.nproc}: set them equal"
        )
    if cfg.distill.alpha > 0 and cfg.distill.teacher_overrides and not cfg.distill.teacher:
        raise BadInput(
            "distill.teacher_overrides: a point's tasks cannot train its teacher; train the "
            "teacher first (trainer.save_model=true) and give distill.teacher=PATH"
        )


def _data_key(cfg) -> str:
    """The data settings as a key: points with the same data share one loaded spec."""
    return json.dumps(OmegaConf.to_container(cfg.data, resolve=True), sort_keys=True)


def spec_of(cfg, specs: dict):
    """The data spec ``check_shapes`` loaded for ``cfg``."""
    return specs[_data_key(cfg)][0]


def _meta_flops(model, spec, batch_size: int) -> int:
    """FLOPs of a training step counted on the meta device: no memory, no compute.

    Close to the measured count (attention's math path is counted on meta), enough
    to refuse a FLOPs budget that buys no step.
    """
    import torch

    from .measure import training_flops
    from .train import loss_fn_for

    with torch.device("meta"):
        if spec.kind == "tokens":
            x = torch.zeros(batch_size, *spec.input_shape, dtype=torch.long)
            y = x
        else:
            x = torch.zeros(batch_size, *spec.input_shape)
            y = (
                torch.zeros(batch_size, dtype=torch.long)
                if spec.task == "classification"
                else torch.zeros(batch_size, spec.n_outputs)
            )
        return training_flops(model, x, y, loss_fn_for(spec.task))["total"]


def plan(
    name: str, preset: Path | None, overrides: list[str], out: Path
) -> tuple[list[dict], list[str]]:
    """Compose and validate every point of the sweep; returns the points and Hydra's own overrides."""
    from .distill import teacher_config

    with hydra_context():
        grid, hydra_over, master = expand(preset, overrides)
        launcher = OmegaConf.to_container(master.hydra.launcher, resolve=False) or {}
        # on a scheduler the points run on other machines: this one's devices say nothing
        remote = any(k in str(launcher.get("_target_", "")) for k in ("Slurm", "Ray"))
        settings = {}
        for point in grid:
            for o in point:
                key, _, value = o.partition("=")
                settings.setdefault(key, set()).add(value)
        varying = {k for k, values in settings.items() if len(values) > 1 or len(grid) == 1}
        points, specs, seen = [], {}, set()
        for point in grid:
            cfg = compose_point(point, preset, [f"sweep={name}", f"out={out}"])
            params = check_shapes(cfg, specs, remote)
            check_tasks(cfg, launcher)
            for entry in _entries(cfg, point, label(point, varying)):
                if entry["point_id"] not in seen:
                    seen.add(entry["point_id"])
                    trained_by_others = "job" in entry and entry["job"] is None  # the teacher
                    n = (
                        check_shapes(teacher_config(cfg), specs, remote)
                        if trained_by_others
                        else params
                    )
                    points.append({**entry, "params": n})
    return points, hydra_over


def _entries(cfg, point: list[str], name: str) -> list[dict]:
    """The grid entries of one composed point: itself, or one per seed of its pack.

    A packed seed's ``overrides`` train it alone; its ``job`` is the pack's, which
    the launcher runs once for all the pack's seeds.
    """
    from .distill import teacher_config
    from .pack import pack_configs
    from .train import identify

    teacher = []
    if cfg.distill.alpha > 0 and cfg.distill.teacher_overrides and not cfg.distill.teacher:
        # trained by the first of its students (job None: not launched on its own)
        overrides = list(cfg.distill.teacher_overrides)
        teacher = [{"point_id": identify(teacher_config(cfg)), "overrides": overrides,
                    "label": "teacher " + label(overrides, {o.split("=")[0] for o in overrides}),
                    "job": None}]  # fmt: skip
    if cfg.trainer.pack_seeds == 1:
        return teacher + [{"point_id": identify(cfg), "overrides": point, "label": name}]
    own = [o for o in point if o.split("=")[0].lstrip("+~") not in PACK_KEYS]
    return teacher + [
        {
            "point_id": identify(c),
            "overrides": own + [f"trainer.seed={c.trainer.seed}", "trainer.pack_seeds=1"],
            "label": f"{name} seed={c.trainer.seed}".removeprefix("default "),
            "job": point,
        }
        for c in pack_configs(cfg)
    ]


PACK_KEYS = ("trainer.seed", "trainer.pack_seeds")


def write_grid(
    out: Path, name: str, points: list[dict], command: str = "", preset: Path | None = None
) -> None:
    """Write grid.json: this sweep's points added to those already in the folder, the command and the preset."""
    path = out / "grid.json"
    old = []
    with contextlib.suppress(OSError, json.JSONDecodeError, KeyError):
        old = json.loads(path.read_text())["points"]
    ids = {p["point_id"] for p in points}
    write_json(path, {
        "sweep": name,
        "command": command,
        "preset": preset.read_text() if preset else "",
        "points": [p for p in old if p["point_id"] not in ids] + points,
    })  # fmt: skip


def to_run(out: Path, points: list[dict], retry_failed: bool) -> list[dict]:
    """Points without a result, or interrupted (and failed ones with ``retry_failed``)."""
    todo = []
    for p in points:
        row = read_result(out / "points" / p["point_id"])
        if (
            row is None
            or row["status"] == "interrupted"
            or (retry_failed and row["status"] != "ok")
        ):
            todo.append(p)
    return todo


def launch(
    name: str,
    preset: Path | None,
    points: list[dict],
    hydra_over: list[str],
    out: Path,
    max_failures: int | None = None,
) -> None:
    """Run the points with the configured Hydra launcher, as Hydra's multirun does."""
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobStatus
    from hydra.types import HydraContext, RunMode

    # Hydra composes each job from the master's hydra.* overrides plus the job's own list
    hydra_part = [o for o in preset_overrides(preset) if o.startswith("hydra.")]
    job_part = [o for o in preset_overrides(preset) if o not in hydra_part] + [
        f"sweep={name}",
        f"out={out}",
    ]
    if max_failures:
        job_part.append(f"max_failures={max_failures}")
    atomic_write_text(out / STREAK, "0")
    master = hydra_part + job_part + hydra_over
    with hydra_context() as hydra:
        cfg = hydra.compose_config(
            CONFIG_NAME, master, run_mode=RunMode.MULTIRUN, with_log_configuration=True
        )
        callbacks = Callbacks(cfg)
        callbacks.on_multirun_start(config=cfg, config_name=CONFIG_NAME)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=hydra.config_loader, callbacks=callbacks),
            task_function=run_job,
            config=cfg,
        )
        jobs = dict.fromkeys(
            tuple(p.get("job", p["overrides"]) or ()) for p in points
        )  # packs once
        jobs.pop((), None)  # points trained by others (a study's teacher)
        returns = launcher.launch([job_part + list(job) for job in jobs], initial_job_idx=0)
    # a job raises only where the runner itself broke (train_point turns training errors into rows);
    # say so rather than leave the point pending without a word
    for ret in returns or []:
        if ret.status == JobStatus.FAILED:
            raise ret._return_value
    callbacks.on_multirun_end(config=cfg, config_name=CONFIG_NAME)


STREAK = ".failure_streak"  # failures in a row, shared by the jobs of a sweep through the folder


def failure_streak(out: Path) -> int:
    try:
        return int((Path(out) / STREAK).read_text())
    except (OSError, ValueError):
        return 0


GPU_LOCKS = Path(tempfile.gettempdir()) / "scaling-gpu-locks"


@contextlib.contextmanager
def device_slot(n_devices: int, lock_dir: Path = GPU_LOCKS, poll: float = 1.0, count: int = 1):
    """Hold ``count`` of ``n_devices`` devices for the duration of the block: yields their indices
    (one index when ``count`` is 1).

    A lock file per device, locked with ``flock``, so concurrent jobs on one machine
    (joblib workers, several sweeps) never share a device and none runs on none; a
    job that finds too few devices free waits, holding none. The locks are released
    if the job dies.
    """
    while True:
        held = []
        try:
            for i in range(n_devices):
                device_lock = try_lock(lock_dir / f"device{i}.lock")
                if device_lock is None:
                    continue
                held.append((i, device_lock))
                if len(held) == count:
                    yield held[0][0] if count == 1 else [i for i, _ in held]
                    return
        finally:  # after the block, or when too few were free
            for _, device_lock in held:
                device_lock.release()
        time.sleep(poll)


def _job_resources(cfg) -> contextlib.AbstractContextManager:
    """Per job, not per process (joblib reuses workers): CPU threads and, on a multi-GPU node, a GPU.

    Returns a context that holds the GPU while the point trains.
    """
    import torch
    from hydra.core.hydra_config import HydraConfig

    from .distributed import in_group

    launcher = HydraConfig.get().launcher if HydraConfig.initialized() else {}
    n_jobs = (
        launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")).lower() else None
    )
    if cfg.trainer.threads is None and n_jobs and n_jobs > 0:
        # each job's share of the cores, split again between the processes of a group
        cfg.trainer.threads = max(1, (os.cpu_count() or 1) // (n_jobs * cfg.trainer.nproc))
    n_gpus = torch.cuda.device_count() if cfg.trainer.device in ("auto", "cuda") else 0
    nproc = cfg.trainer.nproc
    if n_gpus <= 1 or nproc > n_gpus or in_group():
        return contextlib.nullcontext()  # one GPU, or a scheduler's group

    @contextlib.contextmanager
    def hold():
        with device_slot(n_gpus, count=nproc) as held:
            if nproc == 1:
                cfg.trainer.device = f"cuda:{held}"
                yield
                return
            # the group's torchrun sees only its GPUs
            before = os.environ.get("CUDA_VISIBLE_DEVICES")
            visible = before.split(",") if before else [str(i) for i in range(n_gpus)]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(visible[i] for i in held)
            try:
                yield
            finally:
                if before is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES")
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = before

    return hold()


def run_job(cfg) -> str:
    """Hydra's task function: train one point into ``out/points/<id>/`` unless it is done.

    With ``max_failures``, a point is not started once that many points in a row
    have failed: it stays pending for the next run.
    """
    from .distributed import export_scheduler_env, in_group

    cfg = prepare(cfg)
    out = Path(cfg.out)
    export_scheduler_env(cfg)  # submitit's K tasks of one point: they are its process group
    # the tasks of a group could read the streak apart and disagree: they train regardless
    if cfg.max_failures and not in_group() and failure_streak(out) >= cfg.max_failures:
        return "skipped"
    with _job_resources(cfg):
        rows = train_points(cfg, out)
    statuses = {row["status"] for row in rows} or {"ok"}
    status = (
        "interrupted" if "interrupted" in statuses else "ok" if statuses == {"ok"} else "failed"
    )
    if rows and status != "interrupted" and os.environ.get("RANK", "0") == "0":
        atomic_write_text(out / STREAK, "0" if status == "ok" else str(failure_streak(out) + 1))
    return status


def train_points(cfg, out: Path, again: bool = False) -> list[dict]:
    """Train the point (or each seed of its pack) into ``out/points/<id>/``; the new rows.

    Points with an ok result are skipped unless ``again``.
    """
    from .distill import ensure_teacher
    from .pack import pack_configs, train_pack
    from .train import identify, train_point

    configs = pack_configs(cfg) if cfg.trainer.pack_seeds > 1 else [cfg]
    todo = []
    for c in configs:
        point_dir = Path(out) / "points" / identify(c)
        done = read_result(point_dir)
        if again or done is None or done["status"] != "ok":
            todo.append((c, point_dir))
    if todo:
        ensure_teacher(cfg)
    if len(todo) == 1:
        return [train_point(*todo[0])]
    return train_pack(*zip(*todo)) if todo else []
