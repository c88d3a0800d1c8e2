"""Where and in what precision a point trains, and its seeds."""

from __future__ import annotations

import contextlib
import random
import threading

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """``auto``: cuda, then mps, then cpu; anything else as torch reads it."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(precision: str, device: torch.device) -> str:
    """``auto``: bf16 on a GPU that has it, fp32 elsewhere."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def autocast_for(device: torch.device, dtype: str):
    """A context factory: bf16/fp16 autocast on ``device``, or nothing for fp32."""
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(dtype)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=amp_dtype)

    return autocast


_RNGS = threading.RLock()  # held by the thread that draws from the global RNGs


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int | None):
    """Python's, NumPy's and torch's RNGs seeded with ``seed`` (None: as they are) and held for
    the block: points trained in threads of one process (hydra/launcher=threads) draw their
    initialisation one at a time, each what it would draw alone. Blocks may nest."""
    with _RNGS:
        if seed is not None:
            seed_everything(seed)
        yield


_OWN = threading.local()  # each thread's CUDA streams, by device


@contextlib.contextmanager
def thread_stream(device: torch.device):
    """The block on a CUDA stream of this thread's own where it is not the main thread: points
    trained in threads of one process then queue their kernels side by side on the GPU, not
    one after another on its default stream. The stream is drained on the way out (an error
    included), before the point's memory goes back to the cache. Elsewhere it does nothing."""
    if device.type != "cuda" or threading.current_thread() is threading.main_thread():
        yield
        return
    streams = _OWN.__dict__.setdefault("streams", {})
    index = torch.cuda.current_device() if device.index is None else device.index
    if index not in streams:
        streams[index] = torch.cuda.Stream(index)
    with torch.cuda.stream(streams[index]):
        try:
            yield
        finally:
            streams[index].synchronize()
