"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download)."""

from dataclasses import dataclass

import numpy as np

from ..config.schema import DataConfig
from .base import classification


@dataclass
class Config(DataConfig):
    name: str = "digits"
    val_fraction: float = 0.25

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {self.val_fraction}")


def load(cfg):
    from sklearn.datasets import load_digits  # scikit-learn takes a second to import

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5)[:, None]  # (N, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(x))  # a fixed split, whatever the seed
    n_val = int(round(len(x) * cfg.val_fraction))
    val, train = order[:n_val], order[n_val:]
    return classification(
        x[train], d.target[train], x[val], d.target[val], "image", 10, cfg.train_size
    )
