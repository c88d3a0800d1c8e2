"""What ``trainer.pack_seeds=K`` buys: K seeds trained one after another vs packed.

Trains K seeds of the same small point with ``train_point`` one at a time and
with ``train_points`` as one vmapped model, interleaved in one process, and
prints model-steps per second for both and their ratio.

    python benchmarks/pack_seeds.py [--steps 300] [--packs 1 4 8] [--device cpu]

Small models are bound by per-step overhead on a GPU (kernel launches), where
packing pays most; on a CPU the arithmetic itself grows with K.
"""

from __future__ import annotations

import argparse
import time

import torch

from scaling import compose, plan, train_point
from scaling.training.runner import train_points

MODELS = {
    "MLP width 32": ["model=mlp", "model.width=32"],
    "MLP width 128": ["model=mlp", "model.width=128"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--packs", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    common = [f"trainer.steps={args.steps}", f"trainer.eval_interval={args.steps}",
              f"trainer.device={args.device}", "data.val_size=512"]  # fmt: skip
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps")
    print("| model | K | K runs s | pack s | model-steps/s alone | packed | packed / alone |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, overrides in MODELS.items():
        train_points(
            plan(compose([*overrides, *common, "trainer.pack_seeds=2"])), [None, None]
        )  # warm-up
        for k in args.packs:
            specs = plan(compose([*overrides, *common, f"trainer.pack_seeds={k}"]))
            t = time.perf_counter()
            for spec in specs:
                train_point(spec)
            alone = time.perf_counter() - t
            t = time.perf_counter()
            rows = train_points(specs, [None] * k)
            packed = time.perf_counter() - t
            assert all(r["status"] == "ok" for r in rows)
            a, p = k * args.steps / alone, k * args.steps / packed
            print(
                f"| {name} | {k} | {alone:.2f} | {packed:.2f} | {a:.0f} | {p:.0f} | {p / a:.2f} |"
            )


if __name__ == "__main__":
    main()
