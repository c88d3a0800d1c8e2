"""``train_point(cfg)``: train one point of a study and return its result row.

One readable loop: seed → data → model → optimizer → ``lr_at(step)`` → loop →
final eval. Data stays on the device, the loop never waits on the host between
evals (losses are summed on the device and read at eval time), and every
failure becomes a row with a status instead of an exception that loses the sweep.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from . import compress, distill, measure
from .data import fingerprint, load_data
from .distributed import (
    clear_failures,
    full_model,
    grad_accum,
    grad_sync,
    in_group,
    join,
    launch,
    load_training_state,
    micro_batch,
    training_state,
    uses_group,
    wrap,
)
from .loggers import open_logger
from .models import build_model, family
from .mup import param_groups
from .store import COLUMNS, atomic_write_text, point_id, point_identity, write_json

HISTORY_COLUMNS = (
    "step",
    "train_loss",
    "val_loss",
    "val_accuracy",
    "lr",
    "examples",
    "tokens",
    "wall_s",
)


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(precision: str, device: torch.device) -> str:
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def peak_lr(cfg) -> float:
    """The point's learning rate: ``optim.lr``, or with ``lr_scaling=width`` lr·base_width/width."""
    if cfg.optim.lr_scaling == "none":
        return cfg.optim.lr
    field = family(cfg.model.family).Config.WIDTH
    return cfg.optim.lr * cfg.optim.base_width / cfg.model[field]


def lr_at(step: int, steps: int, optim, peak: float | None = None) -> float:
    """Linear warmup over ``optim.warmup``·steps, then cosine down to ``min_lr_ratio``·peak (or constant)."""
    peak = optim.lr if peak is None else peak
    warmup = int(optim.warmup * steps)
    if step < warmup:
        return peak * (step + 1) / warmup
    if optim.schedule == "constant":
        return peak
    progress = (step - warmup) / max(1, steps - warmup)
    floor = peak * optim.min_lr_ratio
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def loss_fn_for(task: str):
    if task == "regression":
        return F.mse_loss
    # classification: (B, C) logits; language modelling: (B, T, V) logits
    return lambda logits, y: F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


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


class Batches:
    """Random training batches drawn on the device: shuffled epochs, or windows of a token stream.

    In a process group every rank draws the same global batch of ``batch_size`` from the
    same seed and keeps its own slice (``rank`` of ``world``): disjoint shards whose union
    is the batch a single process would train on.
    """

    def __init__(self, data, batch_size: int, device: torch.device, seed: int,
                 rank: int = 0, world: int = 1):  # fmt: skip
        self.lm = data.spec.task == "lm"
        self.x = data.x_train.to(device)
        self.y = None if self.lm else data.y_train.to(device)
        self.batch_size, self.seq_len = batch_size, data.spec.input_shape[0]
        share = batch_size // world
        self.shard = slice(rank * share, (rank + 1) * share) if world > 1 else slice(None)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.order, self.pos = None, 0

    def state(self) -> dict:
        return {"gen": self.gen.get_state(), "order": self.order, "pos": self.pos}

    def load_state(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.order, self.pos = state["order"], state["pos"]
        if self.order is not None:
            self.order = self.order.to(self.x.device)

    def __next__(self):
        if self.lm:
            starts = torch.randint(
                len(self.x) - self.seq_len - 1,
                (self.batch_size,),
                device=self.x.device,
                generator=self.gen,
            )[self.shard]
            idx = starts[:, None] + torch.arange(self.seq_len + 1, device=self.x.device)
            window = self.x[idx]
            return window[:, :-1], window[:, 1:]
        n = len(self.x)
        if self.order is None or self.pos + self.batch_size > n:
            self.order = torch.randperm(n, device=self.x.device, generator=self.gen)
            self.pos = 0
        idx = self.order[self.pos : self.pos + self.batch_size][self.shard]
        self.pos += self.batch_size
        return self.x[idx], self.y[idx]


@torch.no_grad()
def evaluate(model, data, device, autocast, batch_size: int, final: bool = False) -> dict:
    """Validation loss (nats) and accuracy; on the final pass also P/R/F1, R² and bits per byte."""
    model.eval()
    task = data.spec.task
    total, correct, count, preds = 0.0, 0, 0, []
    x_val, y_val = data.val_on(device)
    for i in range(0, len(x_val), batch_size):
        x, y = x_val[i : i + batch_size], y_val[i : i + batch_size]
        with autocast():
            out = model(x).float()
        if task == "regression":
            total += F.mse_loss(out, y, reduction="sum").item()
            count += y.numel()
            preds.append(out.cpu())
            continue
        logits = out.reshape(-1, out.shape[-1])
        total += F.cross_entropy(logits, y.reshape(-1), reduction="sum").item()
        pred = logits.argmax(-1)
        correct += (pred == y.reshape(-1)).sum().item()
        count += y.numel()
        if final and task == "classification":
            preds.append(pred.cpu())
    model.train()
    metrics = {"val_loss": total / count}
    if task != "regression":
        metrics["val_accuracy"] = correct / count
    if final and task == "classification":
        from sklearn.metrics import precision_recall_fscore_support

        p, r, f1, _ = precision_recall_fscore_support(
            data.y_val.numpy(), torch.cat(preds).numpy(), average="macro", zero_division=0
        )
        metrics.update(val_precision=float(p), val_recall=float(r), val_f1=float(f1))
    if final and task == "regression":
        from sklearn.metrics import r2_score

        metrics["val_r2"] = float(r2_score(data.y_val.numpy(), torch.cat(preds).numpy()))
    if final and task == "lm" and data.bytes_per_token:
        metrics["val_bpb"] = metrics["val_loss"] / math.log(2) / data.bytes_per_token
    return metrics


def flat_config(cfg) -> dict:
    """The point's settings as dotted columns (``model.width``, ``trainer.steps``, …)."""
    out = {}

    def walk(node, prefix):
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            elif not isinstance(v, list):
                out[f"{prefix}{k}"] = v

    container = OmegaConf.to_container(cfg, resolve=True)
    walk(
        {k: container[k] for k in ("model", "data", "optim", "trainer", "distill", "compress")}, ""
    )
    return out


def identify(cfg) -> str:
    """The point's id: a hash of what changes its result (see ``results.point_identity``)."""
    device = resolve_device(cfg.trainer.device)
    container = OmegaConf.to_container(cfg, resolve=True)
    identity = point_identity(
        container, fingerprint(cfg.data), device.type, resolve_dtype(cfg.trainer.precision, device)
    )
    return point_id(identity)


def new_row(cfg, point_dir: Path | None) -> dict:
    """The point's row before training: every column present, its settings filled in.

    Also writes the point's config.yaml when it has a folder.
    """
    row = dict.fromkeys(COLUMNS)  # empty where a column does not apply
    row |= {
        "sweep": cfg.sweep,
        "family": cfg.model.family,
        "dataset": cfg.data.name,
        "seed": cfg.trainer.seed,
        "batch_size": cfg.trainer.batch_size,
        "world_size": cfg.trainer.nproc,
        "micro_batch_size": micro_batch(cfg.trainer),
        "grad_accum": grad_accum(cfg.trainer),
        "torch_version": torch.__version__,
        "started_at": _now(),
        "point_id": identify(cfg),
        **flat_config(cfg),
    }
    if point_dir is not None:
        atomic_write_text(Path(point_dir) / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    return row


def make_optimizer(params, cfg, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (fused on CUDA) or SGD over ``params`` (tensors or groups), as ``cfg.optim`` says.

    Groups carry an ``lr_mult`` (μP's per-layer learning rates) that the loop applies.
    """
    if cfg.optim.name == "adamw":
        return torch.optim.AdamW(
            params, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
            weight_decay=cfg.optim.weight_decay, fused=device.type == "cuda" or None,
        )  # fmt: skip
    return torch.optim.SGD(
        params, lr=cfg.optim.lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
    )


def autocast_for(device: torch.device, dtype: str):
    """A context factory: bf16/fp16 autocast on ``device``, or nothing for fp32."""
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    return autocast


def eval_batch_size(trainer) -> int:
    """Examples per evaluation pass: at least 256, but never more than a micro-batch when the
    point accumulates (its micro-batch is what fits the device)."""
    if grad_accum(trainer) > 1:
        return micro_batch(trainer)
    return max(micro_batch(trainer), 256)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def totals(
    step: int,
    cfg,
    examples_per_step: int,
    lm: bool,
    flops_per_step: int,
    nonembedding: int,
    train_time: float,
) -> dict:
    """The row's size-of-training fields after ``step`` steps: D, FLOPs, time, throughput."""
    d = step * examples_per_step
    return {
        "steps": step,
        "train_examples": step * cfg.trainer.batch_size,
        "train_tokens": d if lm else None,
        "flops_total": flops_per_step * step,
        "flops_6nd": 6 * nonembedding * d,
        "wall_time_s": train_time,
        "throughput": d / train_time if train_time > 0 else None,
    }  # fmt: skip


def train_point(cfg, point_dir: Path | None = None) -> dict:
    """Train the point described by ``cfg`` and return its result row (see ``results.COLUMNS``).

    Args:
        cfg: a composed and validated config (``scaling.config``), ``model.size`` already applied.
        point_dir: where to write config.yaml, history.csv (at every eval) and result.json;
            None writes nothing.

    Returns:
        The row. Exceptions become rows with status ``failed``, ``oom`` or ``diverged``;
        Ctrl-C writes an ``interrupted`` row and is raised again.

    With ``trainer.nproc`` > 1 (or ``trainer.fsdp``) the point runs as a process group
    (``scaling.distributed``): started here with torchrun, or joined when this process
    is already one of the group's. Only rank 0 writes results; every rank returns its row.
    """
    if uses_group(cfg.trainer) and not in_group():
        if point_dir is None:
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                return launch(cfg, Path(tmp))
        return launch(cfg, point_dir)
    group = join(cfg)
    folder = None if point_dir is None else Path(point_dir)  # read by every rank (a checkpoint)
    point_dir = folder if group.leader else None  # written by rank 0 alone
    if folder is not None and group.joined:
        clear_failures(folder, group.rank)
    row = new_row(cfg, point_dir)
    history: list[dict] = []
    logger = open_logger(cfg, point_dir, row)
    try:
        _train(cfg, row, history, point_dir, logger, group, folder)
    except KeyboardInterrupt:
        finish_row(row, "interrupted", "interrupted by the user", history, point_dir, logger)
        raise
    except torch.OutOfMemoryError as e:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the next point starts with the memory this one held
        finish_row(row, *group.blame("oom", e, folder), history, point_dir, logger)
    except Diverged as e:
        finish_row(row, "diverged", e, history, point_dir, logger)
    except Exception as e:  # noqa: BLE001 - any failure of one point is that point's row
        finish_row(row, *group.blame("failed", e, folder), history, point_dir, logger)
    else:
        finish_row(row, "ok", None, history, point_dir, logger)
    finally:
        if row["status"] in ("ok", "diverged"):  # every rank got here; after a failure peers may
            group.leave()  # be stuck in a collective, and the process's exit ends the group
    return row


def plan_point(cfg, tr, model, data, device, dtype: str, loss_fn, teacher=None,
               note: str = "") -> tuple[dict, int, int]:  # fmt: skip
    """Measure the model on two examples and plan its steps.

    Returns the row's size and FLOP fields, the number of steps and the examples
    (tokens for language modelling) per step. Every counted operation (matmuls,
    convolutions, attention) is linear in the batch, so a step's FLOPs are two
    examples' times batch_size / 2, exact, and the count needs the memory of two
    examples, not of a batch: the points that need micro-batches or activation
    checkpointing fit the measurement too.

    Prints the point's one-line plan (``note`` appended) and warns when the measured
    and closed-form FLOPs disagree.
    """
    spec = data.spec
    counts = measure.param_counts(model)
    micro = micro_batch(tr)
    n = min(2, tr.batch_size)  # two: batch norm needs more than one example
    x, y = next(Batches(data, n, device, tr.seed))  # not a training batch

    def per_step(count: int) -> int:
        return count // n * tr.batch_size

    flops = {k: per_step(v) if isinstance(v, int) else v
             for k, v in measure.training_flops(model, x, y, loss_fn).items()}  # fmt: skip
    examples_per_step = tr.batch_size * (spec.input_shape[0] if spec.task == "lm" else 1)
    steps = plan_steps(tr, counts["total"], examples_per_step, data.train_size, flops["total"])
    disagreement = measure.flops_disagreement(flops)
    if disagreement:
        warnings.warn(f"{cfg.model.family}: {disagreement}", stacklevel=1)
    if tr.nproc > 1 or micro != tr.batch_size:
        note = f", {tr.nproc} × {grad_accum(tr)} micro-batches of {micro}" + note
    if tr.fsdp:
        note = ", FSDP" + note
    print(
        f"[{cfg.sweep}] {cfg.model.family} N={counts['total']:,} on {cfg.data.name}: "
        f"{steps} steps (budget {tr.budget}), batch {tr.batch_size}, {device} {dtype}{note}",
        flush=True,
    )
    fields = {
        "task": spec.task, "train_size": data.train_size,
        "params": counts["total"], "params_nonembedding": counts["nonembedding"],
        "model_bytes": measure.model_bytes(model), "flops_per_step": flops["total"],
        "flops_counter": flops["counter"], "flops_analytic": flops["analytic"],
        "flops_recompute_per_step": flops["recompute"],
        "flops_teacher_per_step":
            None if teacher is None
            else per_step(distill.teacher_flops(teacher, x.to(next(teacher.parameters()).device))),
    }  # fmt: skip
    return fields, steps, examples_per_step


def _train(cfg, row: dict, history: list, point_dir: Path | None, logger, group,
           folder: Path | None) -> None:  # fmt: skip
    # point_dir: where rank 0 writes (None on other ranks); folder: the point's, read by all
    # plain dataclasses: a DictConfig attribute costs ~10 µs, too much inside the step loop
    tr, optim = OmegaConf.to_object(cfg.trainer), OmegaConf.to_object(cfg.optim)
    row["lr"] = peak_lr(cfg)
    if tr.threads:
        torch.set_num_threads(tr.threads)
    seed_everything(tr.seed)  # every rank builds the same model
    device = resolve_device(tr.device)
    dtype = resolve_dtype(tr.precision, device)
    row.update(device=str(device), dtype=dtype)

    data = load_data(cfg.data)
    spec = data.spec
    lm = spec.task == "lm"
    model = build_model(cfg.model, spec).to(device)  # whole on every rank; FSDP shards it later
    loss_fn = loss_fn_for(spec.task)
    teacher = distill.load_teacher(cfg, spec, device) if cfg.distill.alpha > 0 else None
    objective = distill.objective(loss_fn, teacher, cfg.distill)
    fields, steps, examples_per_step = plan_point(
        cfg, tr, model, data, device, dtype, loss_fn, teacher
    )
    row.update(fields)
    flops_per_step, nonembedding = fields["flops_per_step"], fields["params_nonembedding"]
    batches = Batches(data, tr.batch_size, device, tr.seed, group.rank, group.world)
    accum = grad_accum(tr)

    train_model = wrap(model, group, device)  # DDP, or the model sharded in place (FSDP)
    opt = make_optimizer(param_groups(dict(model.named_parameters()), cfg, spec), cfg, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == "fp16")
    autocast = autocast_for(device, dtype)

    if tr.compile:
        train_model = torch.compile(train_model)
    eval_batch = eval_batch_size(tr)
    loss_sum = torch.zeros((), device=device)
    since_eval, best, stale, start = 0, math.inf, 0, 0
    train_time = 0.0
    ckpt = None if folder is None else folder / "checkpoint.pt"
    if ckpt is not None and ckpt.exists():
        # on the CPU: FSDP keeps only its shard of it on the device
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        load_training_state(model, opt, state["model"], state["opt"])
        scaler.load_state_dict(state["scaler"])
        batches.load_state(state["batches"])
        loss_sum += state["loss_sum"].to(device)
        since_eval, best, stale, start, train_time = (
            state[k] for k in ("since_eval", "best", "stale", "step", "train_time")
        )
        history[:] = state["history"]
        print(f"[{cfg.sweep}] resuming from the checkpoint at step {start}", flush=True)
    step = start
    profiler = measure.profiler(tr, steps - start, folder, device, group.rank, cfg.sweep)
    t0 = time.perf_counter()
    with measure.PeakMemory(device) as mem, profiler:
        model.train()
        for step in range(start + 1, steps + 1):
            lr = lr_at(step - 1, steps, optim, row["lr"])
            for param_group in opt.param_groups:
                param_group["lr"] = lr * param_group.get("lr_mult", 1.0)
            x, y = next(batches)
            if accum == 1:
                with autocast():
                    loss = objective(train_model(x), x, y)
                scaler.scale(loss).backward()
            else:
                loss = 0.0
                for j, (xm, ym) in enumerate(zip(x.chunk(accum), y.chunk(accum))):
                    with grad_sync(train_model, j == accum - 1):
                        with autocast():
                            part = objective(train_model(xm), xm, ym) / accum
                        scaler.scale(part).backward()
                    loss = loss + part.detach()
            if optim.grad_clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(model.parameters(), optim.grad_clip)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float()
            since_eval += 1
            profiler.step()
            if step % tr.eval_interval == 0 or step == steps:
                # the only host sync, once per eval
                train_loss = group.mean(loss_sum / since_eval).item()
                train_time += time.perf_counter() - t0
                # rank 0's numbers for every rank: early stopping and divergence decided alike
                metrics = group.share(evaluate(model, data, device, autocast, eval_batch))
                record_eval(history, point_dir, logger, step, train_loss, metrics, lr,
                            step * tr.batch_size, step * examples_per_step if lm else None,
                            train_time)  # fmt: skip
                row["steps"] = step
                if not (math.isfinite(train_loss) and math.isfinite(metrics["val_loss"])):
                    raise Diverged(f"loss is {train_loss} at step {step}")
                best, stale = (
                    (metrics["val_loss"], 0) if metrics["val_loss"] < best else (best, stale + 1)
                )
                if tr.early_stop_patience and stale >= tr.early_stop_patience:
                    print(
                        f"[{cfg.sweep}] early stop at step {step}: no improvement in {stale} evals",
                        flush=True,
                    )
                    break
                loss_sum.zero_()
                since_eval = 0
                t0 = time.perf_counter()

            if (
                ckpt is not None
                and tr.checkpoint_every
                and step % tr.checkpoint_every == 0
                and step != steps
            ):
                model_state, opt_state = training_state(model, opt)  # FSDP: every rank gathers
                loss_sum_now = group.mean(loss_sum.clone())  # the group's, as a single process has
                if group.leader:
                    _save_checkpoint(ckpt, {
                        "model": model_state, "opt": opt_state, "scaler": scaler.state_dict(),
                        "batches": batches.state(), "loss_sum": loss_sum_now, "since_eval": since_eval,
                        "best": best, "stale": stale, "step": step, "history": list(history),
                        "train_time": train_time + time.perf_counter() - t0,
                    })  # fmt: skip

    final = evaluate(model, data, device, autocast, eval_batch, final=True)
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)  # the point is done: its result replaces the checkpoint
    row.update(final)
    row.update(
        totals(step, cfg, examples_per_step, lm, flops_per_step, nonembedding, train_time),
        train_loss=history[-1]["train_loss"],
        best_val_loss=min(best, final["val_loss"]),
        peak_memory_bytes=mem.peak,
    )
    peak = measure.peak_flops(device, dtype)  # one device's: the group has world of them
    row["mfu"] = (
        flops_per_step * step / train_time / (peak * group.world)
        if peak and train_time > 0
        else None
    )
    row.update(data.info)
    whole = full_model(model, cfg, spec, group, device)
    if whole is not None:
        after_training(whole, data, cfg, row, device, eval_batch, point_dir)


def after_training(model, data, cfg, row: dict, device, eval_batch: int, point_dir) -> None:
    """What follows a finished point: model.pt when asked, and its compressed variants' rows."""
    row.update(compression="none", params_nonzero=compress.nonzero_params(model))
    distill.save_model(model, cfg, point_dir)
    if cfg.compress.method == "none":
        return
    for variant in compress.rows(model, data, cfg, row, device, eval_batch):
        if point_dir is not None:
            write_json(Path(point_dir).parent / variant["point_id"] / "result.json",
                       variant | {"finished_at": _now()})  # fmt: skip


def _save_checkpoint(path: Path, state: dict) -> None:
    """Save through a temporary file and rename, so a kill mid-save leaves the previous checkpoint."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def record_eval(history: list, point_dir: Path | None, logger, step: int, train_loss: float,
                metrics: dict, lr: float, examples: int, tokens: int | None,
                wall_s: float) -> None:  # fmt: skip
    """One evaluation's history row (``HISTORY_COLUMNS``): kept, written to history.csv, logged."""
    history.append({
        "step": step, "train_loss": train_loss, "val_loss": metrics["val_loss"],
        "val_accuracy": metrics.get("val_accuracy"), "lr": lr, "examples": examples,
        "tokens": tokens, "wall_s": wall_s,
    })  # fmt: skip
    write_history(point_dir, history)
    logger.log(step, history[-1])


def write_history(point_dir: Path | None, history: list) -> None:
    if point_dir is None:
        return
    lines = [",".join(HISTORY_COLUMNS)]
    for h in history:
        lines.append(
            ",".join(
                "" if h[c] is None else repr(h[c]) if isinstance(h[c], float) else str(h[c])
                for c in HISTORY_COLUMNS
            )
        )
    atomic_write_text(point_dir / "history.csv", "\n".join(lines) + "\n")


def finish_row(
    row: dict, status: str, error, history: list, point_dir: Path | None, logger
) -> None:
    row["status"] = status
    row["error"] = (
        None
        if error is None
        else (error if isinstance(error, str) else f"{type(error).__name__}: {error}")
    )
    if status != "ok":
        row["failed_at_step"] = history[-1]["step"] if history else 0
    if history and row.get("train_loss") is None:
        row["train_loss"] = history[-1]["train_loss"]
        row["val_loss"] = history[-1]["val_loss"]
    row["finished_at"] = _now()
    if point_dir is not None and status in ("failed", "diverged", "oom"):
        (point_dir / "checkpoint.pt").unlink(missing_ok=True)  # a retry starts clean
    if point_dir is not None:
        write_history(point_dir, history)
        write_json(point_dir / "result.json", row)
    try:
        logger.close(row)
    except Exception as e:  # noqa: BLE001 - the row is written; a tracker's failure must not lose it
        warnings.warn(f"logger={type(logger).__name__}: {type(e).__name__}: {e}", stacklevel=1)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
