"""Pre-tokenised data in nanoGPT's format: ``train.bin`` and ``val.bin`` of uint16 tokens."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import MISSING

from ..config.schema import DataConfig, positive
from .base import language_model


@dataclass
class Config(DataConfig):
    name: str = "tokens"
    path: str = MISSING  # folder with train.bin and val.bin (uint16, nanoGPT format)
    vocab_size: int = 50304
    seq_len: int = 256
    val_size: int = 256
    bytes_per_token: float | None = None  # set it to get bits per byte

    def __post_init__(self):
        super().__post_init__()
        positive(self, "vocab_size", "seq_len")
        for split in ("train.bin", "val.bin"):
            if not (Path(self.path).expanduser() / split).is_file():
                raise ValueError(f"data.path has no {split}: {self.path}")


def _bins(cfg):
    root = Path(cfg.path).expanduser()
    return root / "train.bin", root / "val.bin"


def fingerprint(cfg):
    h = hashlib.sha1()
    for f in _bins(cfg):
        h.update(str(f.stat().st_size).encode())
        with open(f, "rb") as fh:
            h.update(fh.read(1 << 20))
    return h.hexdigest()[:12]


def load(cfg):
    train_bin, val_bin = _bins(cfg)
    train = np.memmap(train_bin, dtype=np.uint16, mode="r")
    val = np.memmap(val_bin, dtype=np.uint16, mode="r")
    if cfg.train_size is not None:
        train = train[: cfg.train_size]
    n_val = min(len(val), cfg.val_size * cfg.seq_len + 1)
    top = max(int(train.max()), int(val[:n_val].max()))
    if top >= cfg.vocab_size:
        raise ValueError(
            f"token id {top} in {cfg.path} is not below data.vocab_size={cfg.vocab_size}"
        )
    return language_model(
        train.astype(np.int64),
        val[:n_val].astype(np.int64),
        cfg.seq_len,
        cfg.vocab_size,
        None,
        cfg.val_size,
        bytes_per_token=cfg.bytes_per_token,
        tokens_hash=fingerprint(cfg),
    )
