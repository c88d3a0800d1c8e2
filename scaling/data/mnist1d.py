"""MNIST-1D, generated offline with the ``mnist1d`` package and cached on disk.

Training examples are prefixes of one generated pool (at least 20,000 examples),
so data-size sweeps train on nested sets; the validation set is generated
separately with its own seed and never changes with ``train_size``.
"""

import hashlib
from dataclasses import dataclass

import numpy as np

from ..config.schema import DataConfig
from ..store import atomic_write
from .base import cache_dir, classification

POOL = 20_000


@dataclass
class Config(DataConfig):
    name: str = "mnist1d"
    train_size: int | None = 20000
    val_size: int = 4000
    val_seed: int = 1_000_003  # the validation set is generated apart and stays fixed


def _generate(n: int, seed: int):
    path = cache_dir() / f"mnist1d_n{n}_seed{seed}.npz"
    if not path.exists():
        # the package takes a second to import: only when the cache misses
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples, args.seed, args.train_split = n, seed, 1.0
        d = make_dataset(args)
        x, y = d["x"].astype(np.float32), d["y"].astype(np.int64)
        atomic_write(path, lambda f: np.savez(f, x=x, y=y), binary=True)
    with np.load(path) as f:
        return f["x"], f["y"]


def load(cfg):
    # make_dataset draws the same number of examples per class: round up to tens
    pool = max(POOL, -(-(cfg.train_size or POOL) // 10) * 10)
    x, y = _generate(pool, cfg.seed)
    x_val, y_val = _generate(-(-cfg.val_size // 10) * 10, cfg.val_seed)
    return classification(
        x, y, x_val[: cfg.val_size], y_val[: cfg.val_size], "vector", 10, cfg.train_size or POOL
    )


def fingerprint(cfg):
    return hashlib.sha1(f"mnist1d-{POOL}".encode()).hexdigest()[:8]
