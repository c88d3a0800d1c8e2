import sys
import types

import numpy as np
import pytest
import torch

from scaling import plan, train_point
from scaling.data import load_data


def test_mnist1d_validation_set_does_not_change_with_train_size(compose):
    small = load_data(compose("data.train_size=500").data)
    large = load_data(compose("data.train_size=2000").data)
    assert len(small.x_train) == 500 and len(large.x_train) == 2000
    assert torch.equal(small.x_val, large.x_val)
    assert torch.equal(small.x_train, large.x_train[:500])  # nested subsets


def test_text_from_a_folder(compose, tmp_path):
    (tmp_path / "a.txt").write_text("hello world " * 400)
    (tmp_path / "b.txt").write_text("scaling laws " * 400)
    cfg = compose(
        "model=rnn", "model.hidden=8", "data=text", f"data.path={tmp_path}", "data.seq_len=16"
    )
    data = load_data(cfg.data)
    assert data.spec.n_outputs == 256 and data.spec.input_shape == (16,)
    row = train_point(plan(cfg)[0])
    assert row["status"] == "ok" and row["corpus_hash"]


def test_default_corpus_is_the_standard_library(compose):
    data = load_data(compose("model=transformer", "data=text").data)
    assert len(data.x_train) > 1_000_000
    assert data.info["corpus_hash"]


def test_tokens_bin(compose, tmp_path):
    rng = np.random.default_rng(0)
    rng.integers(0, 100, 5000, dtype=np.uint16).tofile(tmp_path / "train.bin")
    rng.integers(0, 100, 1000, dtype=np.uint16).tofile(tmp_path / "val.bin")
    cfg = compose("model=transformer", "model.size=debug", "data=tokens", f"data.path={tmp_path}",
                  "data.vocab_size=100", "data.seq_len=32", "data.train_size=3000")  # fmt: skip
    data = load_data(cfg.data)
    assert len(data.x_train) == 3000 and int(data.x_train.max()) < 100
    assert train_point(plan(cfg)[0])["status"] == "ok"


def test_teacher_regression_reports_r2(point):
    row = train_point(point("data=teacher", "model.width=8", "data.train_size=256"))
    assert row["task"] == "regression" and row["val_r2"] is not None and row["val_accuracy"] is None


class _FakeMNIST:
    """Stands in for torchvision.datasets.MNIST: same constructor, same attributes."""

    calls = []

    def __init__(self, root, train=True, download=False):
        self.calls.append((root, train, download))
        n = 64 if train else 32
        gen = torch.Generator().manual_seed(int(train))
        self.data = torch.randint(0, 256, (n, 28, 28), dtype=torch.uint8, generator=gen)
        self.targets = torch.randint(0, 10, (n,), generator=gen)


def test_torchvision_source_with_a_local_stand_in(compose, monkeypatch, tmp_path):
    fake = types.ModuleType("torchvision")
    fake.datasets = types.SimpleNamespace(MNIST=_FakeMNIST)
    monkeypatch.setitem(sys.modules, "torchvision", fake)
    cfg = compose(
        "data=torchvision",
        "data.dataset=mnist",
        f"data.root={tmp_path}",
        "model=cnn",
        "model.size=debug",
    )
    data = load_data(cfg.data)
    assert data.spec.input_shape == (1, 28, 28) and len(data.x_train) == 64
    assert (str(tmp_path), True, True) in _FakeMNIST.calls  # asked to download into the root
    assert train_point(plan(cfg)[0])["status"] == "ok"


def test_missing_torchvision_is_a_clear_error(compose, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)
    with pytest.raises(ValueError, match="needs torchvision"):
        load_data(compose("data=torchvision").data)
