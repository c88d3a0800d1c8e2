"""A whole training step as one CUDA graph (``trainer.cuda_graphs``): forward, backward,
clipping and the optimizer's update captured once and replayed, one launch per step instead
of one per kernel, for small models whose steps are bound by kernel launches.

The batch is copied into static buffers and the lr is a device tensor that ``set_lr`` fills,
so nothing of a step is read back to the host. The first ``WARM`` steps run eagerly on a
side stream (the allocator and cuBLAS settle, as capture requires), the next is captured and
every later step replays it. A capture that fails leaves the point training eagerly, with a
warning: the graph is an optimisation, never a reason for a point to fail.
"""

from __future__ import annotations

import threading
import warnings

import torch

from .steppers import Packed, Single

WARM = 3  # eager steps before the capture
# trainer.cuda_graphs=null graphs models up to this size: on an H200 graphs gave 4.3-13 times
# eager's steps per second from 0.8M to 17M parameters (benchmarks/RESULTS.md); larger models
# keep the GPU busy between launches, and were not measured
AUTO_MAX_PARAMS = 20_000_000
CAPTURING = threading.Lock()  # held by the thread whose point captures its step


def graphs_apply(tr, device: torch.device, optimizer: str = "adamw", params: int = 0) -> bool:
    """Whether a point's step is captured: asked for (or, by default, a model of at most
    ``AUTO_MAX_PARAMS`` parameters), on a CUDA device, one micro-batch per step, no fp16 loss
    scaling, no process group, no torch.compile (its own graphs), and AdamW (SGD's foreach
    step reads a tensor lr back to the host, which a capture forbids). One model or a pack of
    them alike."""
    wanted = tr.cuda_graphs if tr.cuda_graphs is not None else params <= AUTO_MAX_PARAMS
    return (wanted and device.type == "cuda" and tr.grad_accum == 1
            and tr.precision != "fp16" and not tr.group and not tr.compile
            and optimizer == "adamw")  # fmt: skip


def capturable(opt: torch.optim.Optimizer, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer with its lr as a device tensor per group and its update capturable."""
    for group in opt.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), device=device)
        group["capturable"] = True
    return opt


class Captured:
    """A stepper's step captured as a CUDA graph after ``WARM`` eager steps: the stepper's own
    ``draw`` (the batch, outside the graph) and ``_compute`` (forward, backward, clipping and
    the update, inside it)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        capturable(self.opt, self.device)
        self.graph, self.static, self.warm, self.eager = None, None, WARM, False
        self.side = torch.cuda.Stream(self.device)  # one, for the warm-up steps

    def load_state(self, state: dict) -> None:
        super().load_state(state)  # a checkpoint's lr comes back a number, or on the CPU
        capturable(self.opt, self.device)

    def set_lr(self, lr: float) -> None:
        for group in self.opt.param_groups:
            group["lr"].fill_(lr * group.get("lr_mult", 1.0))  # on the device: the graph reads it

    def step(self) -> torch.Tensor:
        x, y = self.draw()
        if self.static is not None:
            self.static[0].copy_(x, non_blocking=True)
            self.static[1].copy_(y, non_blocking=True)
            self.graph.replay()
            return self.static[2].clone()
        if self.warm == 0 and not self.eager:
            captured = self._capture(x, y)
            if captured is not None:
                return captured
        if self.eager:  # the capture failed: plain steps on the current stream
            loss = self._compute(x, y)
            self.opt.zero_grad(set_to_none=True)
            return loss
        self.warm -= 1
        current = torch.cuda.current_stream(self.device)
        self.side.wait_stream(current)
        with torch.cuda.stream(self.side):
            loss = self._compute(x, y)
            self.opt.zero_grad(set_to_none=True)
        current.wait_stream(self.side)
        return loss

    def _capture(self, x, y) -> torch.Tensor | None:
        """Capture the step on static copies of ``x``, ``y`` and take it; None (and eager from
        here on) where the capture fails."""
        static_x, static_y = x.clone(), y.clone()
        graph = torch.cuda.CUDAGraph()
        self.opt.zero_grad(set_to_none=True)  # the captured backward writes the gradients anew
        current = torch.cuda.current_stream(self.device)
        try:
            # one capture at a time in a process, as torch asks, on a stream of the point's
            # own device; thread_local: other points' threads may allocate or sync meanwhile
            with CAPTURING, torch.cuda.graph(graph, stream=self.side,
                                             capture_error_mode="thread_local"):  # fmt: skip
                loss = self._compute(static_x, static_y)
        except Exception as e:  # noqa: BLE001 - an uncapturable step trains eagerly instead
            torch.cuda.set_stream(current)  # a failed capture can leave its own stream current
            warnings.warn(f"trainer.cuda_graphs: the step could not be captured ({e}); "
                          "training on without a graph", stacklevel=2)  # fmt: skip
            self.eager = True  # never again
            self.opt.zero_grad(set_to_none=True)
            return None
        self.graph, self.static = graph, (static_x, static_y, loss)
        graph.replay()
        return loss.clone()


class Graphed(Captured, Single):
    """``Single`` graphed: one micro-batch, no loss scaling, so the scaler passes through."""


class GraphedPacked(Captured, Packed):
    """``Packed`` graphed: the K members' batches are drawn outside, their step inside."""
