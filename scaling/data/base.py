"""What every data source returns: ``Data`` (tensors on the CPU) and its ``DataSpec`` (shapes),
and the helpers that wrap arrays into them."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know about its data: shapes, never the data set itself.

    kind: ``vector`` (features, shape (F,)), ``image`` (C, H, W) or ``tokens``
    (integer sequences of length ``input_shape[0]`` for language modelling).
    n_outputs: classes, regression targets or vocabulary size.
    """

    kind: str
    task: str
    input_shape: tuple
    n_outputs: int


@dataclass
class Data:
    """Tensors of one data set, on the CPU.

    Classification and regression: ``x_*`` are inputs, ``y_*`` targets. Language
    modelling: ``x_train`` is the 1-D training token stream (``y_train`` is None)
    and ``x_val``/``y_val`` are fixed windows and their next tokens.
    """

    spec: DataSpec
    x_train: torch.Tensor
    y_train: torch.Tensor | None
    x_val: torch.Tensor
    y_val: torch.Tensor
    bytes_per_token: float | None = None  # for bits per byte in language modelling
    info: dict = field(default_factory=dict)
    _on_device: dict = field(default_factory=dict, repr=False)

    def val_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation set on ``device``, moved once (from pinned memory on CUDA, asynchronously)."""
        key = str(device)
        if key not in self._on_device:
            x, y = self.x_val, self.y_val
            if torch.device(device).type == "cuda":
                x, y = x.pin_memory(), y.pin_memory()
            self._on_device[key] = (
                x.to(device, non_blocking=True),
                y.to(device, non_blocking=True),
            )
        return self._on_device[key]

    @property
    def train_size(self) -> int:
        """Unique training examples (tokens for language modelling)."""
        return len(self.x_train)


def cache_dir() -> Path:
    """Where generated data sets are cached: ``$SCALING_CACHE`` or ``~/.cache/scaling``."""
    path = Path(os.environ.get("SCALING_CACHE", Path.home() / ".cache" / "scaling"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def classification(x_train, y_train, x_val, y_val, kind, n_classes, train_size, **info) -> Data:
    """Wrap arrays of a classification set, keeping the first ``train_size`` training examples."""
    x_train = torch.as_tensor(x_train, dtype=torch.float32)
    y_train = torch.as_tensor(y_train, dtype=torch.long)
    if train_size is not None:
        if train_size > len(x_train):
            raise ValueError(
                f"data.train_size={train_size} is more than the {len(x_train)} training examples available"
            )
        x_train, y_train = x_train[:train_size], y_train[:train_size]
    spec = DataSpec(kind, "classification", tuple(x_train.shape[1:]), n_classes)
    return Data(
        spec,
        x_train,
        y_train,
        torch.as_tensor(x_val, dtype=torch.float32),
        torch.as_tensor(y_val, dtype=torch.long),
        info=info,
    )


def language_model(
    train, val, seq_len, vocab_size, train_size, val_size, bytes_per_token=None, **info
) -> Data:
    """Wrap token streams for next-token prediction.

    The first ``train_size`` training tokens are kept; validation is up to
    ``val_size`` fixed, non-overlapping windows of ``seq_len`` tokens.
    """
    train = torch.as_tensor(train).long()
    val = torch.as_tensor(val).long()
    if train_size is not None:
        if train_size > len(train):
            raise ValueError(
                f"data.train_size={train_size} is more than the {len(train)} training tokens available"
            )
        train = train[:train_size]
    if len(train) <= seq_len + 1 or len(val) <= seq_len + 1:
        raise ValueError(
            f"the text is too short for data.seq_len={seq_len}: {len(train)} training and {len(val)} validation tokens"
        )
    n = min(val_size, (len(val) - 1) // seq_len)
    windows = val[: n * seq_len + 1]
    x_val = windows[:-1].view(n, seq_len)
    y_val = windows[1:].view(n, seq_len)
    spec = DataSpec("tokens", "lm", (seq_len,), vocab_size)
    return Data(spec, train, None, x_val, y_val, bytes_per_token=bytes_per_token, info=info)
