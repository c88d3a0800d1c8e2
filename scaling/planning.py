"""A point planned once: ``PointSpec``, and every check before anything trains.

The process that plans a sweep composes and validates each point (``config.compose``),
loads its data's shapes, counts its parameters and a training step's FLOPs on a fake
model (no memory, no compute), plans its steps from the budget, checks what depends on
this machine (devices, trackers, a teacher's path) and hashes its id, once. The jobs that
train the points read their specs; they do not compose, validate or measure again.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist

from . import measure, store
from .config import compose as composing
from .config import launchers
from .config.schema import BUDGETS, Config, validate
from .data import fingerprint, load_data
from .errors import BadInput
from .models import build_model
from .studies.distill import find_teacher
from .training.device import resolve_device, resolve_dtype
from .training.evaluate import loss_fn_for
from .training.loggers import check_logger
from .training.optim import decay_start, peak_lr, rule_batch
from .training.parallel import backend_for

PACK_KEYS = ("trainer.seed", "trainer.pack_seeds")  # a packed seed's own overrides


@dataclass(frozen=True)
class PointSpec:
    """One point of a study, planned: what a job needs to train it and nothing to recompute."""

    cfg: Config  # composed and validated, model.size applied
    overrides: tuple  # the point's own overrides (grid.json), which compose it again
    label: str  # a short name: the settings that differ between the sweep's points
    point_id: str  # hash of what changes its result (store.point_identity)
    params: dict  # total, embedding, nonembedding
    flops: dict  # per training step: total, counter, analytic, recompute
    steps: int
    examples_per_step: int  # tokens for language modelling
    train_size: int  # unique training examples (tokens)
    task: str
    lr: float  # the peak learning rate (optim.lr_scaling applied)
    lr_source: str = "config"  # config | mup | rule: <name> | tuned | tuning (a tuning run)
    role: str = "point"  # point | packed (a seed trained with others) | teacher | tuning
    job: str | None = None  # the first point of the job that trains it; None for a teacher
    teacher: PointSpec | None = None  # the study's teacher, trained before this point
    start: int | None = None  # a branch's first cooldown step, its trunk's snapshot
    trunk_id: str | None = None  # a branch's trunk
    starts: tuple = ()  # a trunk's snapshots: its branches' starts

    def entry(self) -> dict:
        """The point's line in grid.json."""
        return {"point_id": self.point_id, "overrides": list(self.overrides), "label": self.label,
                "params": self.params["total"], "role": self.role, "job": self.job,
                "lr": self.lr, "lr_source": self.lr_source}  # fmt: skip


@dataclass
class Sweep:
    """A sweep planned: its points, the jobs that train them, and how they are launched."""

    name: str
    out: Path
    specs: list  # every point, a study's teacher included
    jobs: list  # lists of points trained together (one, or a pack's seeds)
    hydra_overrides: list  # what configures Hydra itself (the launcher)
    launcher: dict = field(default_factory=dict)  # the launcher's settings, for the checks
    remote: bool = False  # the points run on a scheduler's machines, not this one
    preset: Path | None = None  # the preset's file
    deferred: list = field(default_factory=list)  # jobs that wait for a tuned lr (scaling.tuning)


# ---------------------------------------------------------------- a sweep


def plan_sweep(name: str, preset: Path | None, overrides: list[str], out: Path) -> Sweep:
    """Compose, validate and plan every point of a sweep; a bad one is ``BadInput``, nothing written."""
    with composing.hydra_context():
        grid, hydra_over, master = composing.expand(preset, overrides)
        hydra = master.hydra
        launcher = composing.to_container(hydra.launcher)
        remote = any(k in str(launcher.get("_target_", "")) for k in ("Slurm", "Ray"))
        launchers.check_threads(launcher, hydra.job)
        varying = composing.varying_keys(grid)
        shapes, seen, specs, jobs = {}, set(), [], []
        for point in grid:
            cfg = composing.compose(point, preset, [f"sweep={name}", f"out={out}"])
            launchers.check_point(cfg, launcher)
            planned = plan_points(cfg, point, composing.label(point, varying), shapes, remote)
            job = [s for s in planned if s.point_id not in seen and s.role != "teacher"]
            for s in planned:  # the point and its teacher, when the study trains it
                launchers.check_thread_safe(s.cfg, launcher)
                if s.point_id not in seen:
                    seen.add(s.point_id)
                    specs.append(s)
            if job:
                jobs.append(job)
    return Sweep(name, Path(out), specs, jobs, hydra_over, launcher, remote, preset)


# ---------------------------------------------------------------- one point


def plan_points(cfg: Config, point=(), label: str = "default", shapes: dict | None = None,
                remote: bool = False) -> list[PointSpec]:  # fmt: skip
    """The planned points of one composed config: its teacher (when the study trains it), then
    the point itself, or one point per seed of its pack."""
    shapes = {} if shapes is None else shapes
    teacher = None
    if cfg.distill.trains_teacher:
        own = list(cfg.distill.teacher_overrides)
        name = "teacher " + composing.label(own, {composing.key_of(o) for o in own})
        teacher = plan_point(
            composing.teacher_config(cfg), own, name, shapes, remote, role="teacher"
        )
    one = plan_point(cfg, point, label, shapes, remote, teacher=teacher)
    if cfg.trainer.branches:
        return plan_branches(one)
    if cfg.trainer.pack_seeds == 1:
        return [s for s in (teacher, replace(one, job=one.point_id)) if s is not None]
    seeds, specs = range(cfg.trainer.seed, cfg.trainer.seed + cfg.trainer.pack_seeds), []
    own = composing.without(list(point), PACK_KEYS)
    for seed in seeds:
        c = replace(cfg, trainer=replace(cfg.trainer, seed=seed, pack_seeds=1))
        specs.append(replace(one, cfg=c, point_id=point_id(c), role="packed",
                             overrides=(*own, f"trainer.seed={seed}", "trainer.pack_seeds=1"),
                             label=f"{label} seed={seed}".removeprefix("default ")))  # fmt: skip
    specs = [replace(s, job=specs[0].point_id) for s in specs]
    return ([teacher] if teacher else []) + specs


def plan_point(cfg: Config, point=(), label: str = "default", shapes: dict | None = None,
               remote: bool = False, role: str = "point", teacher: PointSpec | None = None) -> PointSpec:  # fmt: skip
    """Plan one composed point; what cannot work on this machine or with this data is BadInput."""
    shapes = {} if shapes is None else shapes
    try:
        spec, train_size = data_shape(cfg, shapes)
        check_devices(cfg, remote)
        check_logger(cfg)
        check_distillation(cfg, spec)
        with torch.device("meta"):
            counts = measure.param_counts(build_model(cfg.model, spec))
        flops = count_flops(cfg, spec)
        per_example = spec.input_shape[0] if spec.task == "lm" else 1
        if cfg.trainer.batch_scaling != "none":
            cfg = scaled_batch(cfg, counts, flops["total"], per_example, train_size)
            flops = count_flops(cfg, spec)
        per_step = cfg.trainer.batch_size * per_example
        steps = plan_steps(cfg.trainer, counts["total"], per_step, train_size, flops["total"])
        lr, lr_source = peak_lr(cfg, counts["nonembedding"], flops["total"] * steps)
    except (ValueError, OSError) as e:
        if isinstance(e, BadInput):
            raise
        raise BadInput(str(e).splitlines()[0]) from None
    disagreement = measure.flops_disagreement(flops)
    if disagreement:
        warnings.warn(f"{cfg.model.family}: {disagreement}", stacklevel=1)
    return PointSpec(cfg, tuple(point), label, point_id(cfg), counts, flops, steps, per_step,
                     train_size, spec.task, lr, lr_source, role=role, teacher=teacher)  # fmt: skip


def plan_branches(one: PointSpec) -> list[PointSpec]:
    """A branched point as its trunk (constant lr to the last branch's start, snapshots at every
    start) and one branch per budget: a wsd run of that budget, which starts from the trunk."""
    cfg, tr = one.cfg, one.cfg.trainer
    field = BUDGETS[tr.budget]
    budgets = [int(b) if field == "steps" else b for b in tr.branches]
    steps = {b: plan_steps(replace(tr, **{field: b}), one.params["total"], one.examples_per_step,
                           one.train_size, one.flops["total"]) for b in budgets}  # fmt: skip
    optim = replace(cfg.optim, warmup_steps=cfg.optim.warmup_steps
                    or max(1, int(cfg.optim.warmup * min(steps.values()))))  # fmt: skip
    trunk_cfg = replace(cfg, optim=replace(optim, schedule="constant"),
                        trainer=replace(tr, branches=[], budget="steps", steps=1))  # fmt: skip
    identity = store.point_identity(asdict(trunk_cfg), fingerprint(cfg.data), *_device(cfg))
    trunk_id = store.point_id(identity | {"trunk": True})  # one trunk, however long
    fixed = [o for o in one.overrides if composing.key_of(o) not in ("trainer.branches", f"trainer.{field}")]
    branches = []
    for b, n in sorted(steps.items(), key=lambda item: item[1]):
        c = replace(cfg, optim=optim, trainer=replace(tr, branches=[], **{field: b}))
        branches.append(replace(one, cfg=c, point_id=point_id(c), steps=n, role="branch",
                                start=decay_start(n, optim.decay), trunk_id=trunk_id,
                                overrides=(*fixed, "trainer.branches=[]", f"trainer.{field}={b:g}",
                                           f"optim.warmup_steps={optim.warmup_steps}"),
                                label=f"{one.label} {field}={b:g}".removeprefix("default ")))  # fmt: skip
    starts = tuple(sorted({s.start for s in branches}))
    trunk = replace(one, cfg=replace(trunk_cfg, trainer=replace(trunk_cfg.trainer, steps=starts[-1])),
                    point_id=trunk_id, steps=starts[-1], role="trunk", starts=starts,
                    label=f"{one.label} trunk".removeprefix("default "))  # fmt: skip
    return [trunk, *branches]


def scaled_batch(cfg: Config, counts: dict, flops_per_step: int, per_example: int,
                 train_size: int) -> Config:  # fmt: skip
    """The config with ``trainer.batch_size`` set by its ``batch_scaling`` rule; the compute the
    DeepSeek rule reads is the budget's, which does not depend on the batch."""
    tr = cfg.trainer
    per_step = tr.batch_size * per_example
    steps = plan_steps(tr, counts["total"], per_step, train_size, flops_per_step)
    batch = rule_batch(
        tr.batch_scaling, counts["nonembedding"], flops_per_step * steps, per_example
    )
    cfg = replace(cfg, trainer=replace(tr, batch_size=batch))
    validate(cfg)
    return cfg


def point_id(cfg: Config) -> str:
    """The point's id: a hash of what changes its result (``store.point_identity``)."""
    return store.point_id(store.point_identity(asdict(cfg), fingerprint(cfg.data), *_device(cfg)))


def _device(cfg: Config) -> tuple[str, str]:
    device = resolve_device(cfg.trainer.device)
    return device.type, resolve_dtype(cfg.trainer.precision, device)


def data_shape(cfg: Config, shapes: dict):
    """The data's spec and training-set size, loaded once per distinct data config."""
    key = json.dumps(asdict(cfg.data), sort_keys=True, default=str)
    if key not in shapes:
        data = load_data(cfg.data)
        shapes[key] = (data.spec, data.train_size)
    return shapes[key]


def count_flops(cfg: Config, spec) -> dict:
    """A training step's FLOPs, counted on a fake model (``measure.planned_flops``)."""
    n = min(2, cfg.trainer.batch_size)  # two: batch norm needs more than one example
    if spec.kind == "tokens":
        x = y = torch.zeros(n, *spec.input_shape, dtype=torch.long)
    else:
        x = torch.zeros(n, *spec.input_shape)
        y = (torch.zeros(n, dtype=torch.long) if spec.task == "classification"
             else torch.zeros(n, spec.n_outputs))  # fmt: skip
    return measure.planned_flops(lambda: build_model(cfg.model, spec), x, y, loss_fn_for(spec.task),
                                 cfg.trainer.batch_size)  # fmt: skip


def plan_steps(
    trainer, params: int, examples_per_step: int, train_size: int, flops_per_step: int
) -> int:
    """Training steps from the budget: steps, epochs over train_size, tokens per parameter, or FLOPs."""
    if trainer.budget == "steps":
        steps = trainer.steps
    elif trainer.budget == "epochs":
        steps = math.ceil(trainer.epochs * train_size / examples_per_step)
    elif trainer.budget == "tokens_per_param":
        steps = math.ceil(trainer.tokens_per_param * params / examples_per_step)
    else:
        steps = int(trainer.target_flops // flops_per_step)
    if steps < 1:
        raise ValueError(
            f"trainer.budget={trainer.budget} gives {steps} steps for this model; raise the budget"
        )
    return steps


def check_devices(cfg: Config, remote: bool) -> None:
    """What a process group needs of this machine's devices (``remote``: not this machine's)."""
    tr = cfg.trainer
    if not tr.group or remote:
        return
    device = resolve_device(tr.device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"trainer.nproc/fsdp: torch.distributed has no backend for {device.type}")
    backend = backend_for(tr, device)
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(
            f"trainer.backend=nccl needs CUDA devices; on {device.type} use trainer.backend=gloo"
        )
    if not dist.is_available() or not getattr(dist, f"is_{backend}_available")():
        raise ValueError(f"trainer.backend={backend}: this torch build has no {backend}")
    if device.type == "cuda" and tr.nproc > torch.cuda.device_count():
        raise ValueError(f"trainer.nproc={tr.nproc} needs {tr.nproc} GPUs, this machine has "
                         f"{torch.cuda.device_count()}")  # fmt: skip


def check_distillation(cfg: Config, spec) -> None:
    if cfg.distill.alpha <= 0:
        return
    if spec.task == "regression":
        raise ValueError("distill: a regression task has no logits to distil")
    if cfg.distill.teacher:
        find_teacher(Path(cfg.distill.teacher))
