import os

import pytest

# Tiny settings that make any point train in well under a second on a CPU.
TINY = ["trainer.steps=4", "trainer.eval_interval=2", "trainer.batch_size=16", "trainer.device=cpu"]


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
    """Compose and validate one point from overrides, as `scale run` does."""
    from scaling.config.compose import compose as compose_point
    from scaling.config.compose import hydra_context

    def _compose(*overrides, tiny=True):
        with hydra_context():
            return compose_point(list(overrides) + (TINY if tiny else []))

    return _compose


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run from an empty working directory (outputs/ and sweeps/ are relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
