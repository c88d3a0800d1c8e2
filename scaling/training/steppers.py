"""How one optimizer step is taken: the only part of training that differs between a single
model (alone, or one process of a DDP/FSDP group) and K packed seeds.

A stepper trains ``members`` models (1, or K packed seeds) and hands the loop their
losses as a tensor that adds into a (members,) sum on the device: nothing here waits on
the host. The loop (``scaling.training.loop``) is the same for every stepper.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, stack_module_state

from .evaluate import evaluate
from .optim import set_lr
from .parallel import SINGLE, Group, full_model, grad_sync, load_training_state, training_state


class Single:
    """One model, trained as it is, or wrapped by DDP or sharded by FSDP in a process group."""

    members = 1
    ratios = (1.0,)  # each member's peak lr over the first's

    def __init__(self, model, train_model, opt, objective, batches, optim, tr, autocast, device,
                 data, eval_batch: int, group: Group = SINGLE):  # fmt: skip
        self.model, self.train_model, self.opt = model, train_model, opt
        self.batches, self.autocast = batches, autocast
        self.clip, self.accum, self.group = optim.grad_clip, tr.grad_accum, group
        self.device, self.data, self.eval_batch = device, data, eval_batch
        self.scaler = torch.amp.GradScaler(device.type, enabled=tr.precision == "fp16")

        def loss_of(x, y):
            return objective(train_model(x), x, y)

        # compiled with the loss, so the compiler fuses the loss into the model's last layer
        self.loss_of = torch.compile(loss_of) if tr.compile else loss_of

    def set_lr(self, lr: float) -> None:
        set_lr(self.opt, lr)

    def draw(self):
        """The next training batch, on the device."""
        return next(self.batches)

    def step(self) -> torch.Tensor:
        """One optimizer step; its loss, detached."""
        loss = self._compute(*self.draw())
        self.opt.zero_grad(set_to_none=True)
        return loss

    def _compute(self, x, y) -> torch.Tensor:
        """Forward, backward, clipping and the update on one batch, the gradients left in place
        (a CUDA graph captures this); the loss, detached."""
        if self.accum == 1:
            with self.autocast():
                loss = self.loss_of(x, y)
            self.scaler.scale(loss).backward()
        else:
            loss = 0.0
            for j, (xm, ym) in enumerate(zip(x.chunk(self.accum), y.chunk(self.accum))):
                with grad_sync(self.train_model, j == self.accum - 1):
                    with self.autocast():
                        part = self.loss_of(xm, ym) / self.accum
                    self.scaler.scale(part).backward()
                loss = loss + part.detach()
        if self.clip:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach().float()  # 0-d: it adds into the loop's (1,) sum

    def train_losses(self, mean: torch.Tensor) -> list[float]:
        """The members' mean training losses since the last evaluation (the group's mean)."""
        return self.group.mean(mean).tolist()  # the only host sync, once per evaluation

    def evaluate(self, k: int, final: bool = False) -> dict:
        # rank 0's numbers for every rank: early stopping and divergence are decided alike
        metrics = evaluate(
            self.model, self.data, self.device, self.autocast, self.eval_batch, final
        )
        return metrics if final else self.group.share(metrics)

    def trained(self, k: int, cfg, spec):
        """The trained model whole on rank 0 (gathered from FSDP's shards); None elsewhere."""
        return full_model(self.model, cfg, spec, self.group, self.device)

    def state(self) -> dict:
        """Model, optimizer, scaler and data order, for a checkpoint (a collective under FSDP)."""
        model_state, opt_state = training_state(self.model, self.opt)
        return {"model": model_state, "opt": opt_state, "scaler": self.scaler.state_dict(),
                "batches": self.batches.state()}  # fmt: skip

    def load_state(self, state: dict) -> None:
        load_training_state(self.model, self.opt, state["model"], state["opt"])
        self.scaler.load_state_dict(state["scaler"])
        self.batches.load_state(state["batches"])


class Packed:
    """K models of one shape (seeds) trained as one with ``torch.vmap``.

    The copies are stacked with ``torch.func.stack_module_state`` and run through
    ``functional_call`` on a model built on the meta device (so tied weights stay tied).
    Each keeps its own initialisation, batch order and gradient clipping, so seed k
    trains as it would alone, up to floating-point order. Members may differ in peak lr
    (``ratios``, each over the first's: a tuned size's grid of lrs): AdamW's and SGD's
    update is linear in the lr, so each model's update is scaled by its ratio after the step.
    """

    def __init__(self, models, base, make_opt, objective, batches, optim, autocast, device, data,
                 eval_batch: int, compile: bool = False, ratios=None):  # fmt: skip
        self.models, self.batches, self.autocast = models, batches, autocast
        self.members, self.clip = len(models), optim.grad_clip
        self.device, self.data, self.eval_batch = device, data, eval_batch
        self.params, self.buffers = stack_module_state(models)  # leaves of shape (K, ...)

        def one_loss(p, b, x, y):
            return objective(functional_call(base, (p, b), (x,)), x, y)

        self.losses_of = torch.compile(torch.vmap(one_loss)) if compile else torch.vmap(one_loss)
        self.opt = make_opt(self.params)
        self.ratios = tuple(ratios or [1.0] * self.members)
        self.scale = None
        if any(r != 1.0 for r in self.ratios):
            self.scale = torch.tensor(self.ratios, device=device)

    def set_lr(self, lr: float) -> None:
        set_lr(self.opt, lr)

    def draw(self):
        """Each member's next training batch, stacked: (K, batch, ...)."""
        xs, ys = zip(*(next(b) for b in self.batches))
        return torch.stack(xs), torch.stack(ys)

    def step(self) -> torch.Tensor:
        losses = self._compute(*self.draw())
        self.opt.zero_grad(set_to_none=True)
        return losses

    def _compute(self, xs, ys) -> torch.Tensor:
        """Forward, backward, clipping and the update of every member (a CUDA graph captures
        this); their losses, detached."""
        with self.autocast():
            losses = self.losses_of(self.params, self.buffers, xs, ys)
        losses.sum().backward()  # the models share nothing: each gets its own gradient
        if self.clip:
            clip_per_model(self.params.values(), self.clip)
        if self.scale is None:
            self.opt.step()
        else:
            before = [p.detach().clone() for p in self.params.values()]
            self.opt.step()
            scale_updates(list(self.params.values()), before, self.scale)
        return losses.detach().float()

    def train_losses(self, mean: torch.Tensor) -> list[float]:
        return mean.tolist()  # the only host sync, once per evaluation

    def evaluate(self, k: int, final: bool = False) -> dict:
        self._load(k)
        return evaluate(
            self.models[k], self.data, self.device, self.autocast, self.eval_batch, final
        )

    def trained(self, k: int, cfg, spec):
        self._load(k)
        return self.models[k]

    @torch.no_grad()
    def _load(self, k: int) -> None:
        """Copy the k-th stacked model into ``models[k]`` (for evaluation)."""
        model = self.models[k]
        for name, p in model.named_parameters():
            p.copy_(self.params[name][k])
        for name, b in model.named_buffers():
            b.copy_(self.buffers[name][k])


@torch.no_grad()
def scale_updates(params, before, scale: torch.Tensor) -> None:
    """Each of the K stacked models' update since ``before`` times its own factor."""
    for p, old in zip(params, before):
        p.sub_(old).mul_(scale.view(-1, *[1] * (p.dim() - 1)).to(p.dtype)).add_(old)


def clip_per_model(params, max_norm: float) -> None:
    """``clip_grad_norm_`` for each of the K stacked models separately, without a host sync."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (K,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *[1] * (g.dim() - 1)).to(g.dtype))
