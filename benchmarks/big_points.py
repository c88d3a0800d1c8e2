"""What the large-point options cost and save: activation checkpointing, micro-batches, FSDP.

Trains one transformer LM point several ways through ``scale run`` and prints,
for each, the loss, throughput, peak memory, MFU and the recompute FLOPs:

    python benchmarks/big_points.py [--steps 30] [--d-model 1024] [--n-layer 8]

On a GPU the default model has about 100M parameters (bytes of the standard
library, context 512, batch 32, bf16). ``--nproc K`` adds a K-process DDP row
where the machine has K devices (or K CPU processes with gloo).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from scaling.cli import main


def run(overrides: list[str], out: Path) -> dict:
    code = main(["run", *overrides, "--out", str(out)])
    rows = [json.loads(p.read_text()) for p in out.glob("points/*/result.json")]
    if code != 0 or len(rows) != 1:
        return {"status": f"exit {code}"}
    return rows[0]


def main_(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--d-model", type=int, default=1024)
    p.add_argument("--n-layer", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--nproc", type=int, default=0, help="also run a DDP row with K processes")
    args = p.parse_args(argv)
    base = [
        "model=transformer", f"model.d_model={args.d_model}", f"model.n_layer={args.n_layer}",
        f"model.n_head={max(1, args.d_model // 64)}", "data=text", f"data.seq_len={args.seq_len}",
        f"trainer.batch_size={args.batch}", f"trainer.steps={args.steps}",
        f"trainer.eval_interval={args.steps}", "data.val_size=64",
    ]  # fmt: skip
    micro = max(1, args.batch // 4)
    variants = {
        "plain": [],
        "checkpoint_activations": ["model.checkpoint_activations=true"],
        f"micro-batch {micro} × 4": [f"trainer.micro_batch_size={micro}"],
        "FSDP, 1 process": ["trainer.fsdp=true"],
    }
    if args.nproc > 1:
        variants[f"DDP, {args.nproc} processes"] = [f"trainer.nproc={args.nproc}"]
        variants[f"FSDP, {args.nproc} processes"] = [
            f"trainer.nproc={args.nproc}",
            "trainer.fsdp=true",
        ]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    print(
        f"| variant ({device}) | val loss | tokens/s | peak memory MiB | MFU | recompute / model FLOPs |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        run(base[:-2] + ["trainer.steps=5"], Path(tmp) / "warm-up")  # the process's first CUDA work
        for i, (name, extra) in enumerate(variants.items()):
            row = run(base + extra, Path(tmp) / str(i))
            if row.get("status") != "ok":
                print(f"| {name} | {row.get('status')}: {row.get('error')} | | | | |")
                continue
            mfu = f"{row['mfu']:.1%}" if row.get("mfu") else "–"
            recompute = row["flops_recompute_per_step"] / row["flops_per_step"]
            print(
                f"| {name} | {row['val_loss']:.4f} | {row['throughput']:,.0f} | "
                f"{row['peak_memory_bytes'] / 2**20:,.0f} | {mfu} | {recompute:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main_()
