"""``train_point(spec)``: train one planned point (or several seeds packed) and return its row.

Each point's row is built and written here (``Member``): every failure becomes a row
with a status (``failed``, ``oom``, ``diverged``, ``interrupted``) instead of an exception
that loses the sweep. In a process group every rank runs this; only rank 0 writes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

from .. import measure, store
from ..data import load_data
from ..models import build_model
from ..models.parametrization import base_config
from ..studies import compress, distill, mup
from .batches import Batches
from .branches import checkpoint_for
from .device import autocast_for, resolve_device, resolve_dtype, seeded, thread_stream
from .evaluate import eval_batch_size, evaluate, loss_fn_for
from .forecast import Forecaster
from .graphs import CAPTURING, Graphed, GraphedPacked, graphs_apply
from .loop import Course, run
from .member import HERE, Member, Resources, now
from .optim import make_optimizer
from .parallel import join, wrap
from .steppers import Packed, Single


def train_point(spec, point_dir: Path | None = None, resources: Resources = HERE) -> dict:
    """Train a planned point (``scaling.planning.PointSpec``) and return its row (``store.COLUMNS``).

    Args:
        spec: the point, planned.
        point_dir: where to write config.yaml, history.csv (at every evaluation) and
            result.json; None writes nothing.
        resources: the device and threads the job was given.

    Returns:
        The row. Exceptions become rows with status ``failed``, ``oom`` or ``diverged``;
        Ctrl-C writes an ``interrupted`` row and is raised again. A process-group point
        (``trainer.nproc``) runs here in each of its processes, which ``scaling.launch``
        starts (``scaling.launch.train_point`` does when needed); each returns its row.
    """
    return train_points([spec], [point_dir], resources)[0]


def train_points(
    specs: list, point_dirs: list, resources: Resources = HERE, watch=None
) -> list[dict]:
    """Train points that differ only in their seed as one packed model; one row each.

    ``watch(model)``, when given, is called with each model before it trains (to hook it).
    """
    members, group, device, dtype = _members(specs, point_dirs, resources)

    def finish_rest(status, error):
        for m in members:
            if m.alive:
                m.finish(status, error)

    try:
        with thread_stream(device):
            _train(members, group, device, dtype, watch)
    except KeyboardInterrupt:
        finish_rest("interrupted", "interrupted by the user")
        raise
    except torch.OutOfMemoryError as e:
        if torch.cuda.is_available():
            with CAPTURING:  # not while a point in another thread captures its graph
                torch.cuda.empty_cache()  # the next point starts with the memory this one held
        finish_rest(*group.blame("oom", e, members[0].folder))
    except Exception as e:  # noqa: BLE001 - any failure of one point is that point's row
        finish_rest(*group.blame("failed", e, members[0].folder))
    else:
        finish_rest("ok", None)
    finally:
        if all(m.row["status"] in ("ok", "diverged", "hopeless") for m in members):
            group.leave()  # every rank got here; after a failure peers may be stuck in a collective
    return [m.row for m in members]


def time_point(specs, steps: int = 5, warmup: int = 2) -> dict:
    """A planned job's cost on this machine from a few real steps, nothing written: seconds
    per training step, seconds per evaluation of one of its points, and peak memory (bytes).
    ``specs``: one point, or a pack's points (timed packed, as they train)."""
    specs = list(specs) if isinstance(specs, (list, tuple)) else [specs]
    members, group, device, dtype = _members(specs, [None] * len(specs), HERE)
    cfg = specs[0].cfg
    data, models = _initialised(specs, device)
    objective = distill.objective(loss_fn_for(data.spec.task), None, 0.0, cfg.distill.temperature)
    stepper = _stepper(members, models, data, objective, group, device, dtype)
    stepper.set_lr(specs[0].lr)
    with measure.PeakMemory(device) as mem:
        for _ in range(warmup):
            stepper.step()
        blocks = []  # the median of a few blocks: one slow block (another process) is ignored
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(max(1, steps // 3)):
                loss = stepper.step()
            float(loss.sum())  # waits for the device
            blocks.append((time.perf_counter() - start) / max(1, steps // 3))
        step_s = sorted(blocks)[1]
        start = time.perf_counter()
        stepper.evaluate(0)
        eval_s = time.perf_counter() - start
    for m in members:
        m.logger.close(m.row)
    return {"step_s": step_s, "eval_s": eval_s, "peak_memory_bytes": mem.peak}


def _members(specs: list, point_dirs: list, resources: Resources):
    """The points' rows and files, in this process's place in the group: (members, group,
    device, dtype)."""
    tr = specs[0].cfg.trainer
    threads = resources.threads or tr.threads
    if threads:
        torch.set_num_threads(threads)
    group, device = join(tr, resolve_device(resources.device or tr.device))
    folders = [None if d is None else Path(d) for d in point_dirs]
    if folders[0] is not None and group.joined:
        store.clear_failures(folders[0], group.rank)
    given = resources.device or (str(device) if group.joined and device.type == "cuda" else None)
    members = [
        Member(s, f, group.leader, threads=threads, device=given) for s, f in zip(specs, folders)
    ]
    dtype = resolve_dtype(tr.precision, device)
    for m in members:
        m.row.update(lr=m.spec.lr, lr_source=m.spec.lr_source, device=str(device), dtype=dtype,
                     branch_start=m.spec.start)  # fmt: skip
    return members, group, device, dtype


def _initialised(specs: list, device: torch.device, watch=None) -> tuple:
    """The points' data and models, each model initialised as its own run would draw it (a
    pack's seeds one after another), holding the RNGs against other points' threads."""
    with seeded(specs[0].cfg.trainer.seed):  # before the data: data=teacher draws from it
        data = load_data(specs[0].cfg.data)
        models = []
        for s in specs:
            with seeded(s.cfg.trainer.seed if len(specs) > 1 else None):
                models.append(build_model(s.cfg.model, data.spec).to(device))
            if watch is not None:
                watch(models[-1])
    return data, models


def _train(members: list, group, device: torch.device, dtype: str, watch=None) -> None:
    spec, cfg = members[0].spec, members[0].spec.cfg
    tr = cfg.trainer
    data, models = _initialised([m.spec for m in members], device, watch)
    teacher = None
    if cfg.distill.alpha > 0:
        path = cfg.distill.teacher or store.point_folder(cfg.out, spec.teacher.point_id)
        with seeded(None):  # its initialisation draws, though its weights replace it
            teacher = distill.load_teacher(path, cfg.data.name, data.spec, device)
    objective = distill.objective(loss_fn_for(data.spec.task), teacher, cfg.distill.alpha,
                                  cfg.distill.temperature)  # fmt: skip
    _announce(members, device, dtype)
    fields = _planned_fields(spec, data, teacher, device) | {
        "model_bytes": measure.model_bytes(models[0])
    }
    for m in members:
        m.row.update(fields)
    stepper = _stepper(members, models, data, objective, group, device, dtype)
    checkpoint = None
    if len(members) == 1 and members[0].folder is not None:
        checkpoint = checkpoint_for(spec, members[0].folder, tr.checkpoint_every, group, cfg.sweep)
    course = Course(spec.steps, cfg.optim, spec.lr, tr.eval_interval, tr.early_stop_patience,
                    tr.batch_size, spec.examples_per_step, spec.task == "lm", cfg.sweep,
                    cfg.optim.warmup_steps)  # fmt: skip
    for m in members:
        m.forecaster = Forecaster(course, m, tr.forecast, members)

    def profiler(steps_left: int):
        return measure.profiler(
            tr.profile, steps_left, members[0].folder, device, group.rank, cfg.sweep
        )

    with measure.PeakMemory(device) as mem:
        progress = run(stepper, members, course, checkpoint, profiler)
    _finish_training(members, stepper, data, progress, mem.peak, group, device, dtype, checkpoint)


def _stepper(members, models, data, objective, group, device, dtype):
    cfg, tr = members[0].spec.cfg, members[0].spec.cfg.trainer
    autocast, eval_batch = autocast_for(device, dtype), eval_batch_size(tr)
    base = None
    if cfg.model.parametrization == "mup":
        with torch.device("meta"):
            base = {
                n: p.shape
                for n, p in build_model(base_config(cfg.model), data.spec).named_parameters()
            }

    def make_opt(named: dict):
        groups = mup.param_groups(named, base, cfg.optim.name == "sgd", cfg.optim.weight_decay)
        return make_optimizer(groups, cfg.optim, device)

    seeds = [m.spec.cfg.trainer.seed for m in members]
    graphed = graphs_apply(tr, device, cfg.optim.name, members[0].spec.params["total"])
    if len(members) > 1:
        batches = [Batches(data, tr.batch_size, device, s) for s in seeds]
        with torch.device("meta"):
            shape = build_model(cfg.model, data.spec)  # on meta so tied weights stay tied
        ratios = [m.spec.lr / members[0].spec.lr for m in members]  # a tuned size's lrs
        kind = GraphedPacked if graphed else Packed
        return kind(models, shape, make_opt, objective, batches, cfg.optim, autocast, device, data,
                    eval_batch, tr.compile, ratios)  # fmt: skip
    model = models[0]
    batches = Batches(data, tr.batch_size, device, seeds[0], group.rank, group.world)
    train_model = wrap(model, group, device)  # DDP, or the model sharded in place (FSDP)
    opt = make_opt(dict(model.named_parameters()))
    kind = Graphed if graphed else Single
    return kind(model, train_model, opt, objective, batches, cfg.optim, tr, autocast, device,
                data, eval_batch, group)  # fmt: skip


def _announce(members, device, dtype: str) -> None:
    """The point's one-line plan, at the top of its log."""
    spec, cfg = members[0].spec, members[0].spec.cfg
    tr, note = cfg.trainer, ""
    if len(members) > 1:
        note = ", seeds " + ", ".join(str(m.spec.cfg.trainer.seed) for m in members) + " packed"
    if tr.nproc > 1 or tr.micro_batch != tr.batch_size:
        note = f", {tr.nproc} × {tr.grad_accum} micro-batches of {tr.micro_batch}" + note
    if tr.fsdp:
        note = ", FSDP" + note
    line = (f"[{cfg.sweep}] {cfg.model.family} N={spec.params['total']:,} on {cfg.data.name}: "
            f"{spec.steps} steps (budget {tr.budget}), batch {tr.batch_size}, {device} {dtype}{note}")  # fmt: skip
    folder = members[0].point_dir
    if os.environ.get(store.WATCHED) and folder is not None:
        store.atomic_write_text(folder / store.PLAN, line)  # the display prints it in order
    else:
        print(line, flush=True)


def _planned_fields(spec, data, teacher, device) -> dict:
    """The row's size and FLOP fields, as planned; the teacher's forward FLOPs per step."""
    flops, teacher_flops = spec.flops, None
    if teacher is not None:  # counted on two examples, scaled to the batch (linear in the batch)
        x, _ = next(Batches(data, 2, device, 0))
        teacher_flops = measure.forward_flops(teacher, x) // 2 * spec.cfg.trainer.batch_size
    return {"task": spec.task, "train_size": spec.train_size, "params": spec.params["total"],
            "params_nonembedding": spec.params["nonembedding"], "flops_per_step": flops["total"],
            "flops_counter": flops["counter"], "flops_analytic": flops["analytic"],
            "flops_recompute_per_step": flops["recompute"], "flops_teacher_per_step": teacher_flops}  # fmt: skip


def _finish_training(members, stepper, data, progress, peak_memory, group, device, dtype,
                     checkpoint=None) -> None:  # fmt: skip
    """Each living member's final evaluation, totals and what follows training; the checkpoint
    goes once the final evaluation is done (its result replaces it)."""
    spec, step, train_time = members[0].spec, progress.step, progress.train_time
    flops_per_step = spec.flops["total"]
    d = step * spec.examples_per_step
    K = len(members)  # a pack's throughput and MFU are all of its seeds' (as trained, diverged too)
    finals = {k: stepper.evaluate(k, final=True) for k, m in enumerate(members) if m.alive}
    if checkpoint is not None and finals:  # a hopeless point's stays, to resume from
        checkpoint.remove()
    for k, final in finals.items():
        m = members[k]
        m.row.update(final)
        m.row.update(
            steps=step, train_examples=step * spec.cfg.trainer.batch_size,
            train_tokens=d if spec.task == "lm" else None, flops_total=flops_per_step * step,
            flops_6nd=6 * spec.params["nonembedding"] * d, wall_time_s=train_time,
            throughput=K * d / train_time if train_time > 0 else None,
            train_loss=m.history[-1]["train_loss"], best_val_loss=min(m.best, final["val_loss"]),
            peak_memory_bytes=peak_memory,
            mfu=measure.mfu(K * flops_per_step * step, train_time, device, dtype, group.world),
        )  # fmt: skip
        m.row.update(data.info)
        whole = stepper.trained(k, m.spec.cfg, data.spec)
        if whole is not None:
            after_training(whole, data, m, device)


def after_training(model, data, member: Member, device) -> None:
    """What follows a finished point: model.pt when asked, and its compressed variants' rows."""
    cfg, row = member.spec.cfg, member.row
    row.update(compression="none", params_nonzero=compress.nonzero_params(model))
    if member.point_dir is not None and cfg.trainer.save_model:
        distill.save_model(model, cfg, member.point_dir)
    if cfg.compress.method == "none":
        return
    batch = eval_batch_size(cfg.trainer)
    for level in cfg.compress.levels:
        variant = _compressed_row(model, data, cfg, row, level, device, batch)
        if member.point_dir is not None:
            store.write_result(Path(member.point_dir).parent / variant["point_id"],
                               variant | {"finished_at": now()})  # fmt: skip


def _compressed_row(model, data, cfg, base: dict, level, device, batch: int) -> dict:
    """One compression level's row, from the trained point's row ``base``; a level the backend
    cannot run is a ``failed`` row with the error."""
    method = cfg.compress.method
    row = dict(base) | {"point_id": store.variant_id(base["point_id"], compress.level_name(cfg.compress, level)),
                        "compression": method, "compress_level": str(level)}  # fmt: skip
    for key in ("val_loss", "best_val_loss", "val_accuracy", "val_precision", "val_recall",
                "val_f1", "val_bpb", "val_r2"):  # fmt: skip
        row[key] = None
    try:
        small, on = compress.variant(model, cfg.compress, level, device)
        metrics = evaluate(small, data, on, autocast_for(on, "fp32"), batch, final=True)
        row.update(metrics, best_val_loss=metrics["val_loss"], status="ok", error=None,
                   **compress.measures(small, method))  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a level the backend cannot run is that row's error
        row.update(status="failed", error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
    return row


__all__ = ["HERE", "Member", "Resources", "time_point", "train_point", "train_points"]
