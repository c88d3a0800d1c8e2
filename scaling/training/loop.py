"""The one training loop, for a single model, a process group and packed seeds alike.

The runner (``scaling.training.runner``) seeds, loads the data, builds the model and its
optimizer; here is ``lr_at(step)`` → step → evaluate → checkpoint, with a stepper
(``steppers``) taking the steps. Losses are summed on the device and read once per evaluation: no host sync between.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from dataclasses import dataclass

import torch

from .. import store
from .optim import lr_at


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class Course:
    """What the loop needs to know of a point: its length, schedule and evaluations."""

    steps: int
    optim: object  # the optim config (schedule, warmup)
    peak_lr: float
    eval_interval: int
    early_stop_patience: int | None
    batch_size: int
    examples_per_step: int  # tokens for language modelling
    lm: bool
    label: str  # for the log
    warmup: int | None = None  # warmup steps; None: optim.warmup·steps


@dataclass
class Progress:
    step: int = 0
    since_eval: int = 0
    train_time: float = 0.0


def run(stepper, members: list, course: Course, checkpoint=None, profiler=None) -> Progress:
    """Train ``members`` (one per model the stepper trains) for ``course.steps``; where it ended:
    the last step and the training time (evaluations not counted).

    Each member records its evaluations (``member.record``); one whose loss is not finite
    is finished as diverged (``member.diverge``) while the others go on. ``profiler(steps)``
    makes the profiler for the steps left after a resumed checkpoint.
    """
    loss_sum = torch.zeros(stepper.members, device=stepper.device)
    progress = Progress()
    if checkpoint is not None:
        checkpoint.resume(stepper, members, loss_sum, progress)
    with profiler(course.steps - progress.step) if profiler else contextlib.nullcontext() as prof:
        _steps(stepper, members, course, checkpoint, prof, loss_sum, progress)
    return progress


def _steps(stepper, members, course, checkpoint, profiler, loss_sum, progress) -> None:
    t0 = time.perf_counter()
    me = threading.current_thread()  # a job's thread may be asked to stop (hydra/launcher=threads)
    for step in range(progress.step + 1, course.steps + 1):
        if getattr(me, "stop_requested", False):
            raise KeyboardInterrupt  # as Ctrl-C stops a point in a process of its own
        lr = lr_at(step - 1, course.steps, course.optim, course.peak_lr, course.warmup)
        stepper.set_lr(lr)
        loss_sum += stepper.step()
        progress.step, progress.since_eval = step, progress.since_eval + 1
        if profiler is not None:
            profiler.step()
        if step % course.eval_interval == 0 or step == course.steps:
            if stepper.device.type == "cuda":  # the steps queued, not only launched, are timed;
                # this point's stream, not the device: points beside it in threads go on
                torch.cuda.current_stream(stepper.device).synchronize()
            progress.train_time += time.perf_counter() - t0
            stop = _evaluate(stepper, members, loss_sum / progress.since_eval, lr, progress, course)
            loss_sum.zero_()
            progress.since_eval = 0
            if stop:
                if checkpoint is not None and members[0].row.get("status") == "hopeless":
                    checkpoint.save(stepper, members, loss_sum, progress, 0.0)  # resumed from here
                break
            t0 = time.perf_counter()
        if checkpoint is not None and checkpoint.due(step, course.steps):
            checkpoint.save(stepper, members, loss_sum, progress, time.perf_counter() - t0)


def _evaluate(stepper, members, mean_loss, lr, progress, course) -> bool:
    """Every living member's evaluation; True when training stops (all diverged or hopeless,
    or early)."""
    losses = stepper.train_losses(mean_loss)
    step = progress.step
    for k, member in enumerate(members):
        if not member.alive:
            continue
        metrics = stepper.evaluate(k)
        member.record(step, losses[k], metrics, lr * stepper.ratios[k], step * course.batch_size,
                      step * course.examples_per_step if course.lm else None, progress.train_time)  # fmt: skip
        if not (math.isfinite(losses[k]) and math.isfinite(metrics["val_loss"])):
            member.diverge(Diverged(f"loss is {losses[k]} at step {step}"))
    for member in members:  # after every member recorded: a pack's seeds share one forecast
        why = member.hopeless() if member.alive and step < course.steps else None
        if why is not None:
            print(f"[{course.label}] stopped at step {step} (trainer.stop_hopeless)", flush=True)
            member.finish("hopeless", why)
    if not any(m.alive for m in members):
        return True
    patience = course.early_stop_patience  # one model only: packs refuse early stopping
    if patience and members[0].stale >= patience:
        print(f"[{course.label}] early stop at step {step}: no improvement in "
              f"{members[0].stale} evals", flush=True)  # fmt: skip
        return True
    return False


class Checkpoint:
    """Every ``every`` steps, model, optimizer, data order and history in ``path``; a point
    that finds one resumes from it with the losses it would have had (one model only)."""

    def __init__(self, path, every: int | None, group, label: str):
        self.path, self.every, self.group, self.label = path, every, group, label

    def due(self, step: int, steps: int) -> bool:
        return bool(self.every) and step % self.every == 0 and step != steps

    def save(self, stepper, members, loss_sum, progress: Progress, since_eval_time: float) -> None:
        state = stepper.state()  # FSDP: every rank gathers
        loss_now = self.group.mean(loss_sum.clone())  # the group's, as a single process has
        if not self.group.leader:
            return
        m = members[0]
        state |= {"loss_sum": loss_now, "since_eval": progress.since_eval, "best": m.best,
                  "stale": m.stale, "step": progress.step, "history": list(m.history),
                  "train_time": progress.train_time + since_eval_time,
                  "forecast": (m.spec.point_id, m.forecaster and m.forecaster.state())}  # fmt: skip
        store.atomic_write(self.path, lambda f: torch.save(state, f), binary=True)

    def resume(self, stepper, members, loss_sum, progress: Progress) -> None:
        if not self.path.exists():
            return
        # on the CPU: FSDP keeps only its shard of it on the device
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        stepper.load_state(state)
        loss_sum += state["loss_sum"].to(loss_sum.device)
        m = members[0]
        m.best, m.stale, m.history[:] = state["best"], state["stale"], state["history"]
        progress.step, progress.since_eval = state["step"], state["since_eval"]
        progress.train_time = state["train_time"]
        point, forecast = state.get("forecast") or (None, None)
        if m.forecaster is not None and point == m.spec.point_id:  # not a trunk's, for a branch
            m.forecaster.restore(forecast)
        print(f"[{self.label}] resuming from the checkpoint at step {progress.step}", flush=True)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
