"""Training throughput of every family at a few sizes: examples (tokens) per second, FLOP/s, MFU.

    python benchmarks/throughput.py [--steps 200] [--device cpu]

Numbers come from the rows ``train_point`` returns (``throughput`` counts the
training steps only, evaluations excluded); MFU is printed where the device's
peak is known (GPUs in ``scaling.measure.PEAK_FLOPS``).
"""

from __future__ import annotations

import argparse

import torch

from scaling import compose, plan, train_point

CASES = {
    "mlp": [["model.width=64"], ["model.width=512"], ["model.width=2048", "model.depth=3"]],
    "cnn": [["model=cnn", "model.channels=16"], ["model=cnn", "model.channels=128"]],
    "rnn (lstm)": [["model=rnn", "model.hidden=64"], ["model=rnn", "model.hidden=256"]],
    "transformer lm": [
        ["model=transformer", "model.size=2", "data=text", "trainer.batch_size=32"],
        ["model=transformer", "model.size=6", "data=text", "trainer.batch_size=32"],
        [
            "model=transformer",
            "model.size=medium",
            "data=text",
            "data.seq_len=256",
            "trainer.batch_size=16",
        ],
    ],
    "linear": [["model=linear"]],
}
# sizes worth timing only on a GPU (minutes per run on a laptop CPU)
GPU_CASES = {
    "transformer lm": [
        [
            "model=transformer",
            "model.size=medium",
            "data=text",
            "data.seq_len=256",
            "trainer.batch_size=16",
        ],
        [
            "model=transformer",
            "model.size=gpt2",
            "data=text",
            "data.seq_len=1024",
            "trainer.batch_size=8",
        ],
    ],
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", default="auto")
    p.add_argument("--compile", action="store_true")
    args = p.parse_args()
    print(
        f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} steps"
    )
    print(
        f"{'family':16} {'params':>11} {'per s':>12} {'unit':>8} {'GFLOP/s':>9} {'MFU':>6} {'dtype':>6}"
    )
    cases = [(f, o) for f, os_ in CASES.items() for o in os_]
    if args.device.startswith("cuda"):
        cases += [(f, o) for f, os_ in GPU_CASES.items() for o in os_]
    for family, overrides in cases:
        spec = plan(compose(overrides + [
            f"trainer.steps={args.steps}", f"trainer.eval_interval={args.steps}",
            f"trainer.device={args.device}", f"trainer.precision={args.precision}",
            f"trainer.compile={args.compile}",
        ]))[0]  # fmt: skip
        train_point(spec)  # warm-up: data cache, kernels, compilation
        row = train_point(spec)
        if row["status"] != "ok":
            print(f"{family:16} {row['status']}: {row['error']}")
            continue
        unit = "tokens" if row["train_tokens"] else "examples"
        flops_s = row["flops_total"] / row["wall_time_s"]
        mfu = f"{row['mfu']:.1%}" if row["mfu"] else "-"
        print(f"{family:16} {row['params']:>11,} {row['throughput']:>12,.0f} {unit:>8} "
              f"{flops_s / 1e9:>9.2f} {mfu:>6} {row['dtype']:>6}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
