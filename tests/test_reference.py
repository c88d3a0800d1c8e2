"""Reference loss curves for tiny CPU configs: a silent change in numerics fails here.

To re-record after an intended change: ``python tests/test_reference.py``.
"""

import json
from pathlib import Path

import pytest

from scaling import compose, plan, train_point

ASSET = Path(__file__).parent / "assets" / "reference_losses.json"
CONFIGS = {
    "mlp_mnist1d": ["model=mlp", "model.width=16", "data.train_size=2000"],
    "transformer_text": ["model=transformer", "model.size=debug", "data=text", "data.seq_len=32"],
    # generating the teacher's data draws from the global RNG: the seed must come first
    "mlp_teacher": ["model=mlp", "model.width=16", "data=teacher", "data.train_size=2000"],
}
WORDS = "the loss falls as a power of the model size until data or compute runs out".split()


def _corpus(folder: Path) -> Path:
    """A fixed text (the default corpus differs between Python versions)."""
    import random

    rng = random.Random(0)
    path = folder / "corpus.txt"
    path.write_text(" ".join(rng.choice(WORDS) for _ in range(20000)))
    return path


COMMON = [
    "trainer.steps=20",
    "trainer.eval_interval=5",
    "trainer.batch_size=32",
    "trainer.device=cpu",
]


def _curve(name, point_dir):
    point_dir.mkdir(parents=True, exist_ok=True)
    extra = [f"data.path={_corpus(point_dir)}"] if "data=text" in CONFIGS[name] else []
    cfg = compose(CONFIGS[name] + COMMON + extra)
    row = train_point(plan(cfg)[0], point_dir)
    assert row["status"] == "ok", row["error"]
    lines = (point_dir / "history.csv").read_text().splitlines()[1:]
    return [
        float(v) for line in lines for v in line.split(",")[1:3]
    ]  # train_loss, val_loss per eval


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_loss_curve_matches_the_reference(name, tmp_path):
    expected = json.loads(ASSET.read_text())[name]
    assert _curve(name, tmp_path) == pytest.approx(expected, rel=1e-4)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        curves = {name: _curve(name, Path(tmp) / name) for name in CONFIGS}
    ASSET.write_text(json.dumps(curves) + "\n")
    print(f"wrote {ASSET}")
