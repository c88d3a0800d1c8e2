"""Byte-level language modelling on a text file or folder.

Default corpus: the Python standard library's own ``.py`` files (without
site-packages or tests), sorted and capped at ``max_bytes``: present on every
machine, though it differs between Python versions, so rows record its hash.
"""

import functools
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config.schema import DataConfig, positive
from .base import language_model

SKIP_PARTS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}


def _files(path, glob) -> list[Path]:
    if path is None:
        root = Path(sysconfig.get_paths()["stdlib"])
        return [
            p for p in sorted(root.rglob("*.py")) if not SKIP_PARTS & set(p.relative_to(root).parts)
        ]
    path = Path(path).expanduser()
    if path.is_file():
        return [path]
    return [p for p in sorted(path.glob(glob)) if p.is_file()]


@dataclass
class Config(DataConfig):
    name: str = "text"
    path: str | None = None  # a file or folder; None: the Python standard library's source
    glob: str = "**/*"  # files to read in a folder
    max_bytes: int = 4_000_000  # cap on the corpus
    seq_len: int = 64  # tokens (bytes) per training sequence
    val_fraction: float = 0.05  # tail of the corpus held out
    val_size: int = 256  # validation windows

    def __post_init__(self):
        super().__post_init__()
        positive(self, "max_bytes", "seq_len")
        if self.path is not None and not Path(self.path).expanduser().exists():
            raise ValueError(f"data.path does not exist: {self.path}")


@functools.lru_cache(maxsize=4)
def _corpus(path, glob, max_bytes) -> bytes:
    chunks, total = [], 0
    for f in _files(path, glob):
        b = f.read_bytes()
        chunks.append(b)
        total += len(b)
        if total >= max_bytes:
            break
    data = b"".join(chunks)[:max_bytes]
    if not data:
        raise ValueError(f"no text found at {path or 'the standard library'} (glob {glob})")
    return data


def corpus(cfg) -> bytes:
    return _corpus(cfg.path, cfg.glob, cfg.max_bytes)


@functools.lru_cache(maxsize=4)
def _hash(path, glob, max_bytes) -> str:
    return hashlib.sha256(_corpus(path, glob, max_bytes)).hexdigest()[:12]


def fingerprint(cfg):
    """A hash of the corpus (the default one differs between Python versions); computed once per process."""
    return _hash(cfg.path, cfg.glob, cfg.max_bytes)


def load(cfg):
    data = np.frombuffer(corpus(cfg), dtype=np.uint8)
    n_val = max(int(len(data) * cfg.val_fraction), cfg.seq_len + 2)
    return language_model(
        data[:-n_val].copy(),
        data[-n_val:].copy(),
        cfg.seq_len,
        256,
        cfg.train_size,
        cfg.val_size,
        bytes_per_token=1.0,
        corpus_hash=fingerprint(cfg),
    )
