"""Data sources behind one registry.

Each source module defines ``Config`` (extending ``config.schema.DataConfig``),
``load(cfg) -> Data`` and may define ``fingerprint(cfg) -> str``, a hash of the content
that identifies the data where a path alone would not (a corpus that differs between
machines). Adding a source is one module plus one line in ``SOURCES``; the config group
``data=<name>`` follows from it.
"""

from __future__ import annotations

from . import digits, mnist1d, teacher, text, tokens, vision
from .base import Data, DataSpec, cache_dir

SOURCES = {
    "mnist1d": mnist1d,
    "digits": digits,
    "teacher": teacher,
    "text": text,
    "torchvision": vision,
    "tokens": tokens,
}


def source(name: str):
    if name not in SOURCES:
        raise ValueError(f"unknown data set '{name}'; choose from: {', '.join(SOURCES)}")
    return SOURCES[name]


def load_data(data_cfg) -> Data:
    return source(data_cfg.name).load(data_cfg)


def fingerprint(data_cfg) -> str:
    fn = getattr(source(data_cfg.name), "fingerprint", None)
    return fn(data_cfg) if fn else ""


__all__ = ["SOURCES", "Data", "DataSpec", "cache_dir", "fingerprint", "load_data", "source"]
