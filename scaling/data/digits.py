"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download)."""

import numpy as np


def load(cfg):
    from sklearn.datasets import load_digits

    from . import classification

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0 - 0.5)[:, None]  # (N, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(x))  # a fixed split, whatever the seed
    n_val = int(round(len(x) * cfg.val_fraction))
    val, train = order[:n_val], order[n_val:]
    return classification(
        x[train], d.target[train], x[val], d.target[val], "image", 10, cfg.train_size
    )
