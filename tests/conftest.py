import os
from pathlib import Path

import faulty  # noqa: F401 - model=faulty, a family that fails on demand
import pytest

# processes the tests start (launchers' workers, torchrun's ranks) find faulty.py too: its
# points' configs travel pickled
HERE = str(Path(__file__).parent)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")]))

# Tiny settings that make any point train in well under a second on a CPU; a preset's lr
# tuning (the default one tunes) is off, so a sweep trains its own grid alone.
TINY = ["trainer.steps=4", "trainer.eval_interval=2", "trainer.batch_size=16", "trainer.device=cpu",
        "tune.lrs=[]"]  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """One cache of generated data sets for the whole session, never the user's own."""
    path = tmp_path_factory.mktemp("cache")
    old = os.environ.get("SCALING_CACHE")
    os.environ["SCALING_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SCALING_CACHE", None)
    else:
        os.environ["SCALING_CACHE"] = old


@pytest.fixture
def compose():
    """Compose and validate one point from overrides, as `scale run` does: its typed config."""
    from scaling import compose as compose_point

    def _compose(*overrides, tiny=True):
        return compose_point(list(overrides) + (TINY if tiny else []))

    return _compose


@pytest.fixture
def point(compose):
    """Compose and plan one point: what `train_point` trains."""
    from scaling import plan

    def _point(*overrides, tiny=True):
        return plan(compose(*overrides, tiny=tiny))[0]

    return _point


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from an empty working directory (outputs/ and sweeps/ are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
