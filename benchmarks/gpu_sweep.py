"""The runner on a GPU beside a plain hand-written loop, in one call: whole sweeps of small
models, a tiny MLP's steps per second (eager, graphed, packed) and MFU at GPT-2 small.

    python benchmarks/gpu_sweep.py [--parts anchor,study,mlp,gpt] [--out outputs/bench_gpu]

It runs ../shared/bench/gpu_anchor.py first (the reference loop, on the same device, in the
same call) and reports every runner number beside it and as a ratio to it:

- study: the default study (mlp_width, 23 points) end to end, with its points one after
  another (the basic launcher), with several at once per GPU (hydra/launcher=local and
  trainer.gpu_slots), with CUDA graphs as well, and with each tuned size's lrs packed
  (tune.pack) too; against the reference loop's steps per second for the same number of
  steps run one after another.
- mlp: a tiny MLP point's training steps per second, eager and with trainer.cuda_graphs, and
  model-steps per second with trainer.pack_seeds=8 and 32.
- gpt: MFU of a GPT-2-small-sized point (12 layers, d_model 768, context 1024, batch 16,
  bf16), eager and with trainer.compile.

SMALL=1 shrinks every part to seconds (a CPU smoke run of the script itself). The results,
as JSON and as a Markdown table, go to --out. The ratio column is the runner's speed over the
reference's (the study: the reference's seconds over the runner's; MFU: the runner's over
the reference's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from scaling import compose, plan, train_point
from scaling.training.runner import train_points

SMALL = os.environ.get("SMALL") == "1"
ROOT = Path(__file__).resolve().parents[1]
ANCHORS = [
    ROOT.parent / "shared" / "bench" / "gpu_anchor.py",
    ROOT / "shared" / "bench" / "gpu_anchor.py",
]
SLOTS = 8  # points at once on the GPU in the concurrent study


def anchor(out: Path, path: Path | None) -> dict:
    """The reference loops' numbers (their JSON), measured now on this device."""
    path = path or next((p for p in ANCHORS if p.is_file()), None)
    if path is None:
        print("no reference loop (gpu_anchor.py; --anchor PATH): ratios left out", flush=True)
        return {}
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OUT": str(out)}
    subprocess.run([sys.executable, str(path)], check=True, env=env)
    found = sorted(out.glob("*.json"))
    return json.loads(found[-1].read_text()) if found else {}


def study(out: Path, extra: list[str], name: str) -> dict:
    """The default study end to end in a fresh process, as a user runs it: wall seconds."""
    steps = ["trainer.steps=200", "model.width=16,32,64"] if SMALL else []
    args = [sys.executable, "-m", "scaling.cli", "sweep", "mlp_width", *steps, *extra,
            "--bootstrap", "0", "--out", str(out / name)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(args, check=False, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    rows = [json.loads(p.read_text()) for p in (out / name).glob("points/*/result.json")]
    return {"wall_s": wall, "points": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "steps": sum(int(r["steps"]) for r in rows)}  # fmt: skip


def tiny_mlp(extra: list[str], steps: int) -> dict:
    """A width-256 MLP point, 40 → 256 → 256 → 10 as the reference's (or a pack of them):
    model-steps per second of training."""
    common = ["model=mlp", "model.width=256", "model.depth=2", f"trainer.steps={steps}",
              f"trainer.eval_interval={steps}", "data.val_size=512", *extra]  # fmt: skip
    specs = plan(compose(common))
    rows = train_points(specs, [None] * len(specs)) if len(specs) > 1 else [train_point(specs[0])]
    wall = rows[0]["wall_time_s"]
    return {"model_steps_s": len(rows) * steps / wall, "wall_s": wall, "K": len(rows),
            "status": sorted({r["status"] for r in rows})}  # fmt: skip


def gpt(extra: list[str]) -> dict:
    shape = (["model.n_layer=2", "model.d_model=64", "model.n_head=2", "data.seq_len=64",
              "trainer.batch_size=4"] if SMALL else
             ["model.n_layer=12", "model.d_model=768", "model.n_head=12", "data.seq_len=1024",
              "trainer.batch_size=16", "trainer.precision=bf16"])  # fmt: skip
    steps = 5 if SMALL else 30
    spec = plan(compose(["model=transformer", "data=text", *shape, f"trainer.steps={steps}",
                         f"trainer.eval_interval={steps}", *extra]))[0]  # fmt: skip
    row = train_point(spec)
    return {"params": row["params"], "mfu": row["mfu"], "throughput": row["throughput"],
            "status": row["status"]}  # fmt: skip


def measure(parts: set, out: Path, anchor_path: Path | None = None) -> dict:
    res = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "torch": torch.__version__, "small": SMALL}  # fmt: skip
    if "anchor" in parts:
        res["anchor"] = anchor(out / "anchor", anchor_path)
    if "study" in parts:
        gpus = max(1, torch.cuda.device_count())
        res["study_sequential"] = study(out, [], "sequential")
        slots = ["hydra/launcher=local", f"hydra.launcher.n_jobs={SLOTS * gpus}",
                 f"trainer.gpu_slots={SLOTS}"]  # fmt: skip
        res["study_slots"] = study(out, slots, "slots")
        res["study_slots_graphs"] = study(out, [*slots, "trainer.cuda_graphs=true"], "graphs")
        res["study_packed"] = study(out, [*slots, "trainer.cuda_graphs=true", "tune.pack=true"],
                                    "packed")  # fmt: skip
    if "mlp" in parts:
        steps = 100 if SMALL else 2000
        tiny_mlp([], 50)  # warm-up: imports, data, the allocator
        res["mlp_eager"] = tiny_mlp([], steps)
        res["mlp_graphs"] = tiny_mlp(["trainer.cuda_graphs=true"], steps)
        for k in (8, 32):
            res[f"mlp_pack{k}"] = tiny_mlp([f"trainer.pack_seeds={k}"], steps)
    if "gpt" in parts:
        res["gpt_eager"] = gpt([])
        res["gpt_compiled"] = gpt(["trainer.compile=true"])
    return res


def table(res: dict) -> str:
    """Markdown: each runner number, the reference's, and their ratio."""
    ref = res.get("anchor", {})
    mlp_ref = (ref.get("mlp_w256") or {}).get("steps_s")
    pack_ref = {k: (ref.get(f"mlp_vmap_w256_K{k}") or {}).get("model_steps_s") for k in (8, 32)}
    lines = ["| measure | runner | reference loop | ratio |", "|---|---|---|---|"]

    def line(name, value, reference=None, unit="", faster_is_less=False):
        ratio = ""
        if value and reference:  # how many times the reference: faster > 1
            ratio = f"{(reference / value if faster_is_less else value / reference):.2f}×"
        shown = f"{reference:,.3g}{unit}" if reference else ""
        lines.append(f"| {name} | {value:,.3g}{unit} | {shown} | {ratio} |")

    for mode in ("sequential", "slots", "slots_graphs", "packed"):
        r = res.get(f"study_{mode}")
        if r:
            plain = r["steps"] / mlp_ref if mlp_ref else None  # its steps, one after another
            name = f"default study, {mode} ({r['ok']}/{r['points']} ok), wall"
            line(name, r["wall_s"], plain, " s", faster_is_less=True)
    for key, reference in (("mlp_eager", mlp_ref), ("mlp_graphs", mlp_ref),
                           ("mlp_pack8", pack_ref[8]), ("mlp_pack32", pack_ref[32])):  # fmt: skip
        if key in res:
            line(f"tiny MLP {key[4:]}, model-steps/s", res[key]["model_steps_s"], reference)
    gpt_ref = {"gpt_eager": (ref.get("gpt2_124M") or {}).get("mfu"),
               "gpt_compiled": (ref.get("gpt2_124M_compiled") or {}).get("mfu")}  # fmt: skip
    for key, reference in gpt_ref.items():
        if key in res and res[key].get("mfu"):
            line(f"GPT-2 small {key[4:]}, MFU", res[key]["mfu"], reference)
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="anchor,study,mlp,gpt")
    p.add_argument("--out", default="outputs/bench_gpu")
    p.add_argument("--anchor", type=Path, default=None, help="the reference loop's script")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = measure(set(args.parts.split(",")), out, args.anchor)
    (out / "gpu_sweep.json").write_text(json.dumps(res, indent=1, default=str))
    text = table(res)
    (out / "gpu_sweep.md").write_text(text + "\n")
    print(f"{res['device']}, torch {res['torch']}\n{text}")


if __name__ == "__main__":
    main()
