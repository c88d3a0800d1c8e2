"""Parameter counts, FLOPs, memory, model bytes and MFU.

FLOPs are floating-point operations, a multiply-add counting 2, for one
training step (forward + backward), counted by ``torch.utils.flop_counter`` for the
real batch shape: when a point is planned, on a fake model (``planned_flops``), as
the CPU would run it. Where the counter sees nothing (inside ``nn.LSTM``; fused GRU
kernels; scaled-dot-product attention on some devices) the model names the modules
or ops to leave out and counts them analytically, so the number never depends on
the device.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import psutil
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils.flop_counter import FlopCounterMode, flop_registry

from .store import atomic_write_text

# attention kernels are counted analytically by the model (see Transformer.uncounted_flops)
_ATTENTION_OPS = {op: (lambda *args, **kwargs: 0) for op in flop_registry if "attention" in str(op)}


def param_counts(model: nn.Module) -> dict:
    """Trainable parameters: ``total``, ``embedding`` (token and position tables), ``nonembedding``.

    A head tied to the embedding is counted once, as embedding.
    """
    seen, total, embedding = set(), 0, 0
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if id(p) in seen or not p.requires_grad:
                continue
            seen.add(id(p))
            total += p.numel()
            if isinstance(module, nn.Embedding):
                embedding += p.numel()
    counts = {"total": total, "embedding": embedding, "nonembedding": total - embedding}
    assert counts["embedding"] + counts["nonembedding"] == sum(
        p.numel() for p in model.parameters() if p.requires_grad
    )
    return counts


def layer_flops(forward: int, input_grad: bool) -> int:
    """Training FLOPs of a matmul or convolution whose forward costs ``forward``.

    Forward, the weight gradient (another forward's worth) and, where the layer's
    input needs a gradient, the input gradient (one more): 3× forward, or 2× for a
    first layer on raw data.
    """
    return forward * (3 if input_grad else 2)


def analytic_training_flops(model: nn.Module, x: torch.Tensor) -> int | None:
    """The family's closed-form FLOPs of a training step (its ``analytic_flops``), or None."""
    fn = getattr(model, "analytic_flops", None)
    return fn(x) if fn else None


def training_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> dict:
    """FLOPs of one training step (forward + backward) on batch ``(x, y)``.

    Returns ``counter`` (what FlopCounterMode saw, attention kernels excluded),
    ``uncounted`` (what the model counts itself where the counter misses),
    ``total``, the counter's count outside the model's ``uncounted_modules`` plus
    the uncounted part, ``analytic``, the family's closed form for the whole
    step (a cross-check: ``flops_disagreement`` compares it with ``total``), and
    ``recompute``, the forward FLOPs that activation checkpointing runs a second
    time in the backward pass (0 without it), kept apart so that MFU counts only
    the model's FLOPs.
    """
    checkpointed = getattr(model, "checkpoint_activations", False)
    if checkpointed:
        model.checkpoint_activations = False  # the model's own FLOPs, without recomputation
    try:
        counter = _count(model, x, y, loss_fn)
    finally:
        if checkpointed:
            model.checkpoint_activations = True
    counts = counter.get_flop_counts()
    root = type(model).__name__
    skipped = sum(
        sum(counts.get(f"{root}.{name}", {}).values())
        for name in getattr(model, "uncounted_modules", ())
    )
    uncounted = model.uncounted_flops(x) if hasattr(model, "uncounted_flops") else 0
    measured = counter.get_total_flops()
    recompute = 0
    if checkpointed:  # what the backward pass runs again: executed minus the model's own
        executed = _count(model, x, y, loss_fn).get_total_flops()
        recompute = executed - measured + model.recompute_uncounted_flops(x)
    return {
        "counter": measured,
        "uncounted": uncounted,
        "total": measured - skipped + uncounted,
        "analytic": analytic_training_flops(model, x),
        "recompute": recompute,
    }


def planned_flops(build, x: torch.Tensor, y: torch.Tensor, loss_fn, batch_size: int) -> dict:
    """``training_flops`` of a step of ``batch_size`` examples, counted on the model ``build()``
    makes under FakeTensorMode on the examples ``(x, y)``, scaled to the batch.

    A fake model has shapes and no memory, and dispatches as the real one on the CPU
    would, so the count equals a real one (every family checked) at no cost: a 124M
    model is counted in a fraction of a second. Every counted operation is linear in
    the batch, so the scaled count is exact.
    """
    with FakeTensorMode() as mode:
        model = build()
        counts = training_flops(model, mode.from_tensor(x), mode.from_tensor(y), loss_fn)
    n = len(x)
    return {k: v // n * batch_size if isinstance(v, int) else v for k, v in counts.items()}


def forward_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of a forward pass of ``model`` on ``x`` (a distillation teacher's, per step)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops()


def _count(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn) -> FlopCounterMode:
    with FlopCounterMode(display=False, custom_mapping=_ATTENTION_OPS) as counter:
        loss_fn(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter


def flops_disagreement(flops: dict, tolerance: float = 0.05) -> str | None:
    """A warning when the measured and the closed-form counts differ by more than ``tolerance``."""
    if not flops.get("analytic"):
        return None
    gap = abs(flops["total"] - flops["analytic"]) / flops["analytic"]
    if gap <= tolerance:
        return None
    return (
        f"measured FLOPs per step ({flops['total']:,}) and the closed form ({flops['analytic']:,}) "
        f"differ by {gap:.1%}"
    )


def model_bytes(model: nn.Module) -> int:
    """Size of the saved state dict, in bytes."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


class PeakMemory:
    """Peak memory of the block: allocated device memory on CUDA, the rise of process RSS on CPU.

    On Linux the kernel's RSS high-water mark is reset at the start (``/proc/self/clear_refs``)
    and read at the end: exact, and nothing runs beside the training loop. Elsewhere a
    background thread samples RSS (``ru_maxrss`` never falls, so it cannot measure one
    point of many). In a thread other than the main one (points in threads of one process)
    nothing is reset, which would spoil the others' readings: the peak is the process's, its
    CUDA allocations' peak so far or its RSS's rise while the block ran.
    """

    def __init__(self, device: torch.device, interval: float = 0.05):
        self.device, self.interval = device, interval
        self.peak = 0
        self._thread = None

    def __enter__(self):
        alone = threading.current_thread() is threading.main_thread()
        if self.device.type == "cuda":
            if alone:
                torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._proc = psutil.Process()
        self._base = self._max = self._proc.memory_info().rss
        if not (alone and _reset_high_water_mark()):
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.is_set():
            self._max = max(self._max, self._proc.memory_info().rss)
            time.sleep(self.interval)

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._thread is None:
            self.peak = max(0, _high_water_mark() - self._base)
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, self._proc.memory_info().rss) - self._base
        return False


def _reset_high_water_mark() -> bool:
    """Reset the kernel's RSS high-water mark to the current RSS; False where it cannot be."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _high_water_mark() -> int:
    """Peak RSS since the last reset, in bytes (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


# Dense peak FLOP/s (no sparsity) by device-name fragment: (bf16/fp16, fp32 without TF32).
PEAK_FLOPS = {
    "H200": (989e12, 67e12),
    "H100 SXM": (989e12, 67e12),
    "H100 PCIe": (756e12, 51e12),
    "H100": (989e12, 67e12),
    "A100": (312e12, 19.5e12),
    "L40S": (362e12, 91.6e12),
    "L4": (121e12, 30.3e12),
    "A10G": (70e12, 31.2e12),
    "RTX 4090": (165e12, 82.6e12),
    "RTX 3090": (71e12, 35.6e12),
    "V100": (125e12, 15.7e12),
    "T4": (65e12, 8.1e12),
}


def peak_flops(device: torch.device, dtype: str) -> float | None:
    """The device's dense peak FLOP/s for ``dtype``, or None where it is not known."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, (half, single) in PEAK_FLOPS.items():
        if fragment in name:
            return single if dtype == "fp32" else half
    return None


def mfu(
    flops: float, seconds: float, device: torch.device, dtype: str, devices: int = 1
) -> float | None:
    """Model FLOPs utilisation: ``flops`` done in ``seconds`` over the peak of ``devices`` devices
    like ``device`` (a group's FLOPs over the whole group's peak); None where the peak is unknown."""
    peak = peak_flops(device, dtype)
    return flops / seconds / (peak * devices) if peak and seconds > 0 else None


class _NoProfiler:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def step(self) -> None:
        pass


def profiler(on: bool, steps: int, folder, device: torch.device, rank: int, label: str):
    """``trainer.profile=true``: a torch.profiler over a few steps of the loop; a no-op otherwise.

    Skips one step and warms up over one, records three, then writes the trace in
    TensorBoard's format (a Chrome trace, ``<folder>/profile/rank<r>.*.pt.trace.json``;
    ``tensorboard --logdir <folder>/profile`` with torch-tb-profiler, or chrome://tracing,
    opens it) and the top operations by time, printed to the point's log and saved as
    ``top_ops_rank<r>.txt``.
    """
    if not on or folder is None:
        return _NoProfiler()
    from torch.profiler import ProfilerActivity, profile, schedule, tensorboard_trace_handler

    active = min(3, steps)
    warmup = min(1, steps - active)
    wait = min(1, steps - active - warmup)
    out = Path(folder) / "profile"
    write_trace = tensorboard_trace_handler(str(out), worker_name=f"rank{rank}")
    cuda = device.type == "cuda"

    def ready(prof) -> None:
        write_trace(prof)
        table = prof.key_averages().table(
            sort_by="self_device_time_total" if cuda else "self_cpu_time_total", row_limit=12
        )
        atomic_write_text(out / f"top_ops_rank{rank}.txt", table + "\n")
        if rank == 0:
            first = wait + warmup + 1
            print(f"[{label}] top operations over steps {first}–{first + active - 1} "
                  f"(trace in {out}):\n{table}", flush=True)  # fmt: skip

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    return profile(
        activities=activities,
        schedule=schedule(wait=wait, warmup=warmup, active=active, repeat=1),
        on_trace_ready=ready,
    )
