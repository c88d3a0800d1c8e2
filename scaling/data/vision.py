"""torchvision's MNIST and CIFAR-10, downloaded on first use (``pip install scaling[torchvision]``)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.schema import DataConfig, choice
from .base import classification

DATASETS = {
    # class name in torchvision.datasets, number of classes
    "mnist": ("MNIST", 10),
    "cifar10": ("CIFAR10", 10),
}


@dataclass
class Config(DataConfig):
    name: str = "torchvision"
    dataset: str = "mnist"  # mnist | cifar10
    root: str = "~/.cache/scaling/torchvision"
    download: bool = True
    val_size: int = 10000

    def __post_init__(self):
        super().__post_init__()
        choice(self, "dataset", tuple(DATASETS))


def load(cfg):
    try:
        from torchvision import datasets
    except ImportError as e:
        raise ValueError(
            "data=torchvision needs torchvision: pip install 'scaling[torchvision]'"
        ) from e
    cls_name, n_classes = DATASETS[cfg.dataset]
    cls = getattr(datasets, cls_name)
    root = str(Path(cfg.root).expanduser())
    train = cls(root, train=True, download=cfg.download)
    val = cls(root, train=False, download=cfg.download)
    x_train, x_val = _images(train.data), _images(val.data)
    mean, std = x_train.mean(), x_train.std()
    return classification(
        (x_train - mean) / std,
        np.asarray(train.targets),
        ((x_val - mean) / std)[: cfg.val_size],
        np.asarray(val.targets)[: cfg.val_size],
        "image",
        n_classes,
        cfg.train_size,
    )


def _images(data) -> np.ndarray:
    """uint8 images as (N, H, W) or (N, H, W, C) → float32 (N, C, H, W) in [0, 1]."""
    x = np.asarray(data, dtype=np.float32) / 255.0
    return x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
