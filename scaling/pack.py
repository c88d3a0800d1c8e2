"""``trainer.pack_seeds=K``: train K seeds of one point at once, one row per seed.

Small models are bound by per-step overhead (kernel launches, Python), not by
arithmetic, so training K copies as one batched model costs little more than
training one. The copies are stacked with ``torch.func.stack_module_state`` and
run with ``torch.vmap`` over ``functional_call``; each keeps its own
initialisation (``torch.manual_seed(seed + k)``), its own batch order and its
own gradient clipping, so seed k's row is the row ``trainer.seed=seed+k`` would
give on its own, up to floating-point order. Each seed has its own point id and
folder; a seed whose loss turns NaN is recorded as diverged while the others go on.

Wall time, throughput, peak memory and MFU in the rows are the whole pack's.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch.func import functional_call, stack_module_state

from . import measure
from .data import load_data
from .distill import load_teacher, objective
from .loggers import open_logger
from .models import build_model
from .mup import param_groups
from .train import (
    Batches,
    Diverged,
    after_training,
    autocast_for,
    eval_batch_size,
    evaluate,
    finish_row,
    loss_fn_for,
    lr_at,
    make_optimizer,
    new_row,
    peak_lr,
    plan_point,
    record_eval,
    resolve_device,
    resolve_dtype,
    seed_everything,
    totals,
)


def pack_configs(cfg) -> list:
    """The pack's points: ``cfg`` with seeds seed … seed+K-1 and ``pack_seeds=1``."""
    configs = []
    for k in range(cfg.trainer.pack_seeds):
        one = copy.deepcopy(cfg)
        one.trainer.seed = cfg.trainer.seed + k
        one.trainer.pack_seeds = 1
        configs.append(one)
    return configs


def train_pack(configs: list, point_dirs: list[Path | None]) -> list[dict]:
    """Train the points of ``configs`` (which differ only in seed) together; their rows.

    A failure of the whole pack (OOM, an error) is every unfinished point's row;
    Ctrl-C writes ``interrupted`` rows and is raised again.
    """
    point_dirs = [None if d is None else Path(d) for d in point_dirs]
    rows = [new_row(c, d) for c, d in zip(configs, point_dirs)]
    histories: list[list[dict]] = [[] for _ in configs]
    loggers = [open_logger(c, d, r) for c, d, r in zip(configs, point_dirs, rows)]
    done = [False] * len(configs)

    def finish(k, status, error):
        finish_row(rows[k], status, error, histories[k], point_dirs[k], loggers[k])
        done[k] = True

    def finish_rest(status, error):
        for k in range(len(configs)):
            if not done[k]:
                finish(k, status, error)

    try:
        _train_pack(configs, rows, histories, point_dirs, loggers, finish)
    except KeyboardInterrupt:
        finish_rest("interrupted", "interrupted by the user")
        raise
    except torch.OutOfMemoryError as e:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        finish_rest("oom", e)
    except Exception as e:  # noqa: BLE001 - a failure of the pack is each of its points' row
        finish_rest("failed", e)
    else:
        finish_rest("ok", None)
    return rows


def clip_per_model(params, max_norm: float) -> None:
    """``clip_grad_norm_`` for each of the K stacked models separately, without a host sync."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (K,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))


def _train_pack(configs, rows, histories, point_dirs, loggers, finish) -> None:
    cfg, K = configs[0], len(configs)
    # plain dataclasses: a DictConfig attribute costs ~10 µs, too much inside the step loop
    tr, optim = OmegaConf.to_object(cfg.trainer), OmegaConf.to_object(cfg.optim)
    if tr.threads:
        torch.set_num_threads(tr.threads)
    device = resolve_device(tr.device)
    dtype = resolve_dtype(tr.precision, device)
    seed_everything(tr.seed)
    data = load_data(cfg.data)
    spec = data.spec
    lm = spec.task == "lm"
    models = []
    for c in configs:  # each seed's initialisation, as its own run would draw it
        seed_everything(c.trainer.seed)
        models.append(build_model(c.model, spec).to(device))
    with torch.device("meta"):
        base = build_model(cfg.model, spec)  # built on meta so tied weights stay tied
    loss_fn = loss_fn_for(spec.task)
    teacher = load_teacher(cfg, spec, device) if cfg.distill.alpha > 0 else None
    objective_of = objective(loss_fn, teacher, cfg.distill)
    seeds = ", ".join(str(c.trainer.seed) for c in configs)
    fields, steps, examples_per_step = plan_point(
        cfg, tr, models[0], data, device, dtype, loss_fn, teacher, f", seeds {seeds} packed"
    )
    flops_per_step, nonembedding = fields["flops_per_step"], fields["params_nonembedding"]
    lr_peak = peak_lr(cfg)
    for row in rows:
        row.update(fields, lr=lr_peak, device=str(device), dtype=dtype)
    batches = [Batches(data, tr.batch_size, device, c.trainer.seed) for c in configs]

    params, buffers = stack_module_state(models)  # leaves of shape (K, ...)

    def one_loss(p, b, x, y):
        return objective_of(functional_call(base, (p, b), (x,)), x, y)

    losses_of = torch.vmap(one_loss)
    if tr.compile:
        losses_of = torch.compile(losses_of)
    opt = make_optimizer(param_groups(params, cfg, spec), cfg, device)
    autocast = autocast_for(device, dtype)
    eval_batch = eval_batch_size(tr)
    loss_sum = torch.zeros(K, device=device)
    since_eval, train_time, best = 0, 0.0, [math.inf] * K
    alive = list(range(K))
    step = 0
    t0 = time.perf_counter()
    with measure.PeakMemory(device) as mem:
        for step in range(1, steps + 1):
            lr = lr_at(step - 1, steps, optim, lr_peak)
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)
            xs, ys = zip(*(next(b) for b in batches))
            with autocast():
                losses = losses_of(params, buffers, torch.stack(xs), torch.stack(ys))
            losses.sum().backward()  # the models share nothing: each gets its own gradient
            if optim.grad_clip:
                clip_per_model(params.values(), optim.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            loss_sum += losses.detach().float()
            since_eval += 1
            if step % tr.eval_interval == 0 or step == steps:
                train_losses = (loss_sum / since_eval).tolist()  # the only host sync, per eval
                train_time += time.perf_counter() - t0
                for k in list(alive):
                    _load(models[k], params, buffers, k)
                    metrics = evaluate(models[k], data, device, autocast, eval_batch)
                    record_eval(histories[k], point_dirs[k], loggers[k], step, train_losses[k],
                                metrics, lr, step * tr.batch_size,
                                step * examples_per_step if lm else None, train_time)  # fmt: skip
                    rows[k]["steps"] = step
                    best[k] = min(best[k], metrics["val_loss"])
                    if not (math.isfinite(train_losses[k]) and math.isfinite(metrics["val_loss"])):
                        alive.remove(k)
                        finish(k, "diverged", Diverged(f"loss is {train_losses[k]} at step {step}"))
                if not alive:
                    return
                loss_sum.zero_()
                since_eval = 0
                t0 = time.perf_counter()

    peak = measure.peak_flops(device, dtype)
    for k in alive:
        _load(models[k], params, buffers, k)
        final = evaluate(models[k], data, device, autocast, eval_batch, final=True)
        rows[k].update(final)
        rows[k].update(
            totals(step, cfg, examples_per_step, lm, flops_per_step, nonembedding, train_time),
            train_loss=histories[k][-1]["train_loss"],
            best_val_loss=min(best[k], final["val_loss"]),
            peak_memory_bytes=mem.peak,
            throughput=K * step * examples_per_step / train_time if train_time > 0 else None,
            mfu=K * flops_per_step * step / train_time / peak if peak and train_time > 0 else None,
        )  # fmt: skip
        rows[k].update(data.info)
        after_training(models[k], data, configs[k], rows[k], device, eval_batch, point_dirs[k])


@torch.no_grad()
def _load(model, params: dict, buffers: dict, k: int) -> None:
    """Copy the k-th stacked model into ``model`` (for evaluation)."""
    for name, p in model.named_parameters():
        p.copy_(params[name][k])
    for name, b in model.named_buffers():
        b.copy_(buffers[name][k])
