"""The runner on a GPU beside a plain hand-written loop, in one call: whole sweeps of small
models, a tiny MLP's steps per second (eager, graphed, packed) and MFU at GPT-2 small.

    python benchmarks/gpu_sweep.py [--parts anchor,study,mlp,gpt] [--out outputs/bench_gpu]

It runs ../shared/bench/gpu_anchor.py first (the reference loop, on the same device, in the
same call) and reports every runner number beside it and as a ratio to it. The part
``anchor_mlp`` runs only the reference's MLP loops (seconds, not minutes of compiling), for a
call that measures the study alone; ``anchor_process`` times the reference's MLP loop as a
point run on its own, a fresh process of 2,000 steps (three of them), the study's other
baseline:

- study: the default study (mlp_width, 23 points) end to end, with its points one after
  another (the basic launcher), with several at once per GPU (hydra/launcher=local and
  trainer.gpu_slots), with CUDA graphs as well, and with each tuned size's lrs packed
  (tune.pack) too; against the reference loop's steps per second for the same number of
  steps run one after another. ``study_concurrent`` runs the concurrent modes that matter
  now: worker processes graphed, and points as threads of one process (hydra/launcher=threads)
  graphed, twice, and packed; ``study_processes`` the worker-process modes; ``study_threads``
  the README's threads command as a user types it (twice, then with 4 jobs);
  ``study_precision`` the same in fp32 at seeds 0, 1, 2 and in bf16 at seeds 1, 2, for the
  study's own check (the law fitted without its largest size, at that size).
- startup: a fresh process's import of torch and its device context, seconds.
- mlp: a tiny MLP point's training steps per second in fp32 (as the reference), eager and
  graphed, and model-steps per second with trainer.pack_seeds=8 and 32, eager and graphed;
  after the first evaluation (as the reference leaves out its warm-up) and over the whole run.
- gpt: MFU of a GPT-2-sized point (12 layers, d_model 768, vocabulary 50,304, context 1024,
  batch 16, bf16), eager and with trainer.compile, steps 11-40 and the whole run.
- sizes: larger MLPs and transformers, steps per second eager and graphed (where graphs stop
  paying).

SMALL=1 shrinks every part to seconds (a CPU smoke run of the script itself). The results,
as JSON and as a Markdown table, go to --out. The ratio column is the runner's speed over the
reference's (the study: the reference's seconds over the runner's; MFU: the runner's over
the reference's).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from scaling import compose, measure, plan, train_point
from scaling.training.runner import train_points

SMALL = os.environ.get("SMALL") == "1"
ROOT = Path(__file__).resolve().parents[1]
ANCHORS = [
    ROOT.parent / "shared" / "bench" / "gpu_anchor.py",
    ROOT / "shared" / "bench" / "gpu_anchor.py",
]
SLOTS = 8  # points at once on the GPU in the concurrent study
STUDY_TIMEOUT = float(os.environ.get("STUDY_TIMEOUT", "1800"))  # seconds per study variant


def anchor(out: Path, path: Path | None) -> dict:
    """The reference loops' numbers (their JSON), measured now on this device."""
    if path is None:
        print("no reference loop (gpu_anchor.py; --anchor PATH): ratios left out", flush=True)
        return {}
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OUT": str(out)}
    subprocess.run([sys.executable, str(path)], check=True, env=env)
    found = sorted(out.glob("*.json"))
    return json.loads(found[-1].read_text()) if found else {}


def reference(path: Path | None):
    """The reference loops' module, loaded without running its script (None without one)."""
    if path is None:
        return None
    spec = importlib.util.spec_from_file_location("gpu_anchor", path)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)  # its loops run only as a script
    return ref


def anchor_mlp(path: Path | None) -> dict:
    """The reference's MLP loops alone (width 256; vmapped K = 8 and 32), in this process."""
    ref = reference(path)
    if ref is None:
        return {}
    ref.mlp_bench(256, steps=50 if SMALL else 300)
    for k in (8, 32):
        ref.mlp_vmap_bench(256, k, steps=30 if SMALL else 300)
    return ref.res


def anchor_process(path: Path | None, points: int = 3) -> dict:
    """The reference's MLP loop as a point run on its own: a fresh process each (Python,
    torch, the device, 2,000 steps of width 256), ``points`` times: seconds per point."""
    if path is None:
        return {}
    steps = 100 if SMALL else 2000
    code = (f"import importlib.util as u; s = u.spec_from_file_location('a', {str(path)!r}); "
            f"m = u.module_from_spec(s); s.loader.exec_module(m); m.mlp_bench(256, steps={steps})")  # fmt: skip
    walls = []
    for _ in range(points):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
        walls.append(time.perf_counter() - start)
    return {"mlp_w256_process": {"steps": steps, "wall_s": walls}}


def anchor_gpt(path: Path | None) -> dict:
    """The reference's GPT-2 small loops alone (eager and compiled), in this process."""
    ref = reference(path)
    if ref is None:
        return {}
    for name, compiled in (("gpt2_124M", False), ("gpt2_124M_compiled", True)):
        if SMALL:
            ref.gpt_bench(name, 256, 64, 2, 64, 4, 8, compile_=compiled, steps=5)
        else:
            ref.gpt_bench(name, 50304, 1024, 12, 768, 12, 16, compile_=compiled, steps=20)
    return ref.res


def startup() -> dict:
    """What a fresh process pays before its first step: Python with torch imported, then
    the device's context (the first tensor on it); seconds, from a process of its own."""
    code = ("import time; t = time.perf_counter(); import torch; i = time.perf_counter() - t; "
            "d = 'cuda' if torch.cuda.is_available() else 'cpu'; t = time.perf_counter(); "
            "torch.zeros(1, device=d).sum().item(); print(i, time.perf_counter() - t)")  # fmt: skip
    start = time.perf_counter()
    found = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    imports, context = (float(x) for x in found.stdout.split())
    return {"startup": {"process_s": wall, "import_torch_s": imports, "context_s": context}}


def study(out: Path, extra: list[str], name: str) -> dict:
    """The default study end to end in a fresh process, as a user runs it: wall seconds."""
    steps = ["trainer.steps=200", "model.width=16,32,64"] if SMALL else []
    args = [sys.executable, "-m", "scaling.cli", "sweep", "mlp_width", *steps, *extra,
            "--bootstrap", "0", "--out", str(out / name)]  # fmt: skip
    start, began = time.perf_counter(), time.time()
    with open(out / f"{name}.log", "w") as log:  # the sweep's own output, for a look later
        try:
            subprocess.run(args, check=False, stdout=log, stderr=subprocess.STDOUT,
                           timeout=STUDY_TIMEOUT)  # fmt: skip
        except subprocess.TimeoutExpired:
            print(f"the {name} study ran past {STUDY_TIMEOUT:.0f} s: stopped", flush=True)
    wall = time.perf_counter() - start
    rows = [json.loads(p.read_text()) for p in (out / name).glob("points/*/result.json")]
    # where the time went, from the points' own timestamps (to the second)
    started = [datetime.fromisoformat(r["started_at"]).timestamp() for r in rows]
    finished = [datetime.fromisoformat(r["finished_at"]).timestamp() for r in rows]
    phases = {"to_first_point_s": min(started) - began, "points_s": max(finished) - min(started),
              "after_points_s": began + wall - max(finished)} if rows else {}  # fmt: skip
    # each point's own steps per second after its first evaluation: beside the single point's
    # rate (part mlp), whether points at once slow each other (one interpreter lock, one GPU)
    rates = [n / t for n, t in (steady(f.parent) for f in (out / name).glob("points/*/history.csv"))
             if t > 0]  # fmt: skip
    if rates:
        phases["median_point_steps_s"] = float(np.median(rates))
    try:  # the study's own check: the law fitted without its largest size, at that size
        held = json.loads((out / name / "fits.json").read_text())["extrapolation"]["saturating"]
        phases["check_error"] = float(np.mean([r["rel_error"] for r in held[0]["rows"]]))
    except (OSError, KeyError, IndexError, TypeError, ValueError):
        pass
    return {"wall_s": wall, "points": len(rows), "ok": sum(r["status"] == "ok" for r in rows),
            "steps": sum(int(r["steps"]) for r in rows),
            "train_s": sum(float(r.get("wall_time_s") or 0) for r in rows), **phases}  # fmt: skip


def steady(folder: Path) -> tuple[int, float]:
    """Steps and training seconds from the point's first evaluation to its last, from its
    history: warm-up, graph capture and compiling left out, as the reference leaves out its
    warm-up steps."""
    with open(folder / "history.csv") as f:
        history = list(csv.DictReader(f))
    first, last = history[0], history[-1]
    return int(last["step"]) - int(first["step"]), float(last["wall_s"]) - float(first["wall_s"])


def tiny_mlp(extra: list[str], steps: int, folder: Path) -> dict:
    """A width-256 MLP point, 40 → 256 → 256 → 10 as the reference's (or a pack of them):
    model-steps per second of training, over the whole run and after the first evaluation."""
    common = ["model=mlp", "model.width=256", "model.depth=2", f"trainer.steps={steps}",
              f"trainer.eval_interval={steps // 4}", "data.val_size=512", *extra]  # fmt: skip
    specs = plan(compose(common))
    dirs = [folder / f"{k}" for k in range(len(specs))]
    rows = train_points(specs, dirs) if len(specs) > 1 else [train_point(specs[0], dirs[0])]
    wall = rows[0]["wall_time_s"]
    n, seconds = steady(dirs[0])
    return {"model_steps_s": len(rows) * steps / wall, "steady_model_steps_s": len(rows) * n / seconds,
            "wall_s": wall, "K": len(rows), "status": sorted({r["status"] for r in rows})}  # fmt: skip


def tokens(out: Path) -> Path:
    """GPT-2's vocabulary size over the bytes of the standard library's source, in nanoGPT's
    format (the throughput is the point; the ids stay below 256)."""
    folder = out / "tokens"
    folder.mkdir(parents=True, exist_ok=True)
    text = b"".join(p.read_bytes() for p in sorted(Path(os.__file__).parent.glob("*.py")))
    ids = np.frombuffer(text, dtype=np.uint8).astype(np.uint16)
    ids[: len(ids) // 10].tofile(folder / "val.bin")
    ids[len(ids) // 10 :].tofile(folder / "train.bin")
    return folder


def gpt(extra: list[str], out: Path, name: str) -> dict:
    """A GPT-2-small-sized point (124M, vocabulary 50,304, context 1024, batch 16, bf16): MFU
    of the whole run (compiling included) and after the first evaluation (steps 11–40)."""
    shape = (["model.n_layer=2", "model.d_model=64", "model.n_head=2", "data.seq_len=64",
              "trainer.batch_size=4"] if SMALL else
             ["model.n_layer=12", "model.d_model=768", "model.n_head=12", "data.seq_len=1024",
              "trainer.batch_size=16", "trainer.precision=bf16"])  # fmt: skip
    steps = 8 if SMALL else 40
    spec = plan(compose(["model=transformer", "data=tokens", f"data.path={tokens(out)}",
                         "data.val_size=16", *shape, f"trainer.steps={steps}",
                         f"trainer.eval_interval={steps // 4}", *extra]))[0]  # fmt: skip
    row = train_point(spec, out / name)
    n, seconds = steady(out / name)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    mfu = measure.mfu(row["flops_per_step"] * n, seconds, device, row["dtype"])
    return {"params": row["params"], "mfu": mfu, "mfu_whole": row["mfu"],
            "throughput": row["throughput"], "status": row["status"]}  # fmt: skip


SIZES = {  # where graphs stop paying: larger models, more GPU time per launch
    "mlp_w1024": ["model=mlp", "model.width=1024"],
    "mlp_w4096": ["model=mlp", "model.width=4096"],
    "transformer_s4": ["model=transformer", "data=text", "model.size=4"],
    "transformer_s8": ["model=transformer", "data=text", "model.size=8"],
    "transformer_s16": ["model=transformer", "data=text", "model.size=16"],
}


def sizes(out: Path) -> dict:
    """Steps per second of larger points (the default precision), eager and graphed."""
    steps, res = (40 if SMALL else 400), {}
    for name, shape in SIZES.items():
        for mode in ("eager", "graphs"):
            extra = [f"trainer.cuda_graphs={str(mode == 'graphs').lower()}"]
            spec = plan(compose([*shape, f"trainer.steps={steps}", "data.val_size=256",
                                 f"trainer.eval_interval={steps // 4}", *extra]))[0]  # fmt: skip
            row = train_point(spec, out / f"{name}_{mode}")
            n, seconds = steady(out / f"{name}_{mode}")
            res[f"size_{name}_{mode}"] = {"params": row["params"], "steps_s": n / seconds,
                                          "status": row["status"]}  # fmt: skip
    return res


def study_parts(out: Path, modes=("sequential", "slots", "slots_graphs", "packed")) -> dict:
    """The default study as each mode runs it: its points one after another (sequential), in
    worker processes with places on the GPU (slots), or in threads of one process (threads);
    eager or graphed; with each tuned size's lrs packed."""
    gpus = max(1, torch.cuda.device_count())
    jobs, places = f"hydra.launcher.n_jobs={SLOTS * gpus}", f"trainer.gpu_slots={SLOTS}"
    slots = ["hydra/launcher=local", jobs, places]
    threads = ["hydra/launcher=threads", jobs, places]
    eager, graphs = ["trainer.cuda_graphs=false"], ["trainer.cuda_graphs=true"]
    extra = {"sequential": eager, "slots": [*slots, *eager], "slots_graphs": [*slots, *graphs],
             "slots_graphs_again": [*slots, *graphs],  # a second time: the machine's caches warm
             "packed": [*slots, *graphs, "tune.pack=true"],
             "threads_graphs": [*threads, *graphs], "threads_graphs_again": [*threads, *graphs],
             "threads_packed": [*threads, *graphs, "tune.pack=true"],
             # as the README has a user type it: graphs and places on the GPU by default
             "threads": ["hydra/launcher=threads", "tune.pack=true"],
             "threads_again": ["hydra/launcher=threads", "tune.pack=true"],
             "threads_4": ["hydra/launcher=threads", "hydra.launcher.n_jobs=4", "tune.pack=true"],
             # the same in fp32 and at other seeds: whether precision or seed moves the check
             **{f"threads_{p}_s{seed}": ["hydra/launcher=threads", "tune.pack=true",
                                         f"trainer.precision={p}", f"trainer.seed={seed}"]
                for p, seed in (("fp32", 0), ("fp32", 1), ("bf16", 1), ("fp32", 2), ("bf16", 2))}}  # fmt: skip
    return {f"study_{mode}": study(out, extra[mode], mode) for mode in modes}


def mlp_parts(out: Path) -> dict:
    """The tiny MLP in fp32, as the reference loop trains it: alone and packed, eager and
    graphed."""
    steps, fp32 = (100 if SMALL else 2000), ["trainer.precision=fp32"]
    eager, graphs = ["trainer.cuda_graphs=false"], ["trainer.cuda_graphs=true"]
    tiny_mlp(fp32, 40, out / "mlp_warm")  # warm-up: imports, data, the allocator
    res = {
        "mlp_eager": tiny_mlp([*fp32, *eager], steps, out / "mlp_eager"),
        "mlp_graphs": tiny_mlp([*fp32, *graphs], steps, out / "mlp_graphs"),
    }
    for k in (8, 32):
        pack = [*fp32, f"trainer.pack_seeds={k}"]
        res[f"mlp_pack{k}"] = tiny_mlp([*pack, *eager], steps, out / f"mlp_pack{k}")
        res[f"mlp_pack{k}_graphs"] = tiny_mlp([*pack, *graphs], steps, out / f"mlp_pack{k}_graphs")
    return res


def run_parts(parts: list[str], out: Path, anchor_path: Path | None = None) -> dict:
    """The parts in the order given; the JSON is written after each, so a run cut short keeps
    what it measured."""
    anchor_path = anchor_path or next((p for p in ANCHORS if p.is_file()), None)
    res = {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
           "torch": torch.__version__, "small": SMALL}  # fmt: skip
    run = {
        "anchor": lambda: {"anchor": anchor(out / "anchor", anchor_path)},
        "anchor_mlp": lambda: {"anchor": res.get("anchor", {}) | anchor_mlp(anchor_path)},
        "anchor_gpt": lambda: {"anchor": res.get("anchor", {}) | anchor_gpt(anchor_path)},
        "anchor_process": lambda: {"anchor": res.get("anchor", {}) | anchor_process(anchor_path)},
        "study": lambda: study_parts(out),
        "study_concurrent": lambda: study_parts(
            out, ("slots_graphs", "threads_graphs", "threads_graphs_again", "threads_packed")
        ),
        "study_threads": lambda: study_parts(out, ("threads", "threads_again", "threads_4")),
        "study_precision": lambda: study_parts(
            out, ("threads_fp32_s0", "threads_fp32_s1", "threads_bf16_s1", "threads_fp32_s2",
                  "threads_bf16_s2")
        ),
        "startup": startup,
        "study_processes": lambda: study_parts(
            out, ("slots", "slots_graphs", "slots_graphs_again", "packed")
        ),
        "sizes": lambda: sizes(out),
        "mlp": lambda: mlp_parts(out),
        "gpt": lambda: {
            "gpt_eager": gpt([], out, "gpt_eager"),
            "gpt_compiled": gpt(["trainer.compile=true"], out, "gpt_compiled"),
        },
    }
    for part in parts:
        start = time.perf_counter()
        found = run[part]()
        res.update(found)
        print(f"== {part} ({time.perf_counter() - start:.0f} s): {json.dumps(found, default=str)}",
              flush=True)  # fmt: skip
        (out / "gpu_sweep.json").write_text(json.dumps(res, indent=1, default=str))
    return res


def study_lines(res: dict, line, mlp_ref: float | None, process: list | None) -> None:
    """The table's lines for each study mode measured: its wall time against the reference's
    steps one after another and against a process per point, its own check, and a point's own
    rate."""
    for key, r in res.items():  # in the order they were measured
        if not key.startswith("study_"):
            continue
        mode = key.removeprefix("study_")
        plain = r["steps"] / mlp_ref if mlp_ref else None  # its steps, one after another
        name = f"default study, {mode} ({r['ok']}/{r['points']} ok), wall"
        line(name, r["wall_s"], plain, " s", faster_is_less=True)
        if process:  # each point a plain loop in a fresh process (2,000 steps each)
            each = sum(process) / len(process)
            line(f"{name}, against a process per point", r["wall_s"], each * r["points"],
                 " s", faster_is_less=True)  # fmt: skip
        if r.get("check_error") is not None:  # the law without the largest, at the largest
            line(f"default study, {mode}: the held-out check", 100 * r["check_error"], unit="%")
        if r.get("median_point_steps_s"):  # each point's own rate, while others ran
            line(f"default study, {mode}: a point's steps/s (median)",
                 r["median_point_steps_s"], mlp_ref)  # fmt: skip


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

    study_lines(res, line, mlp_ref, (ref.get("mlp_w256_process") or {}).get("wall_s"))
    for key, reference in (("mlp_eager", mlp_ref), ("mlp_graphs", mlp_ref),
                           ("mlp_pack8", pack_ref[8]), ("mlp_pack8_graphs", pack_ref[8]),
                           ("mlp_pack32", pack_ref[32]), ("mlp_pack32_graphs", pack_ref[32])):  # fmt: skip
        if key in res:
            line(f"tiny MLP {key[4:]}, model-steps/s", res[key]["steady_model_steps_s"], reference)
            line(f"tiny MLP {key[4:]}, whole run", res[key]["model_steps_s"], reference)
    gpt_ref = {"gpt_eager": (ref.get("gpt2_124M") or {}).get("mfu"),
               "gpt_compiled": (ref.get("gpt2_124M_compiled") or {}).get("mfu")}  # fmt: skip
    for key, reference in gpt_ref.items():
        if key in res and res[key].get("mfu"):
            line(f"GPT-2 small {key[4:]}, MFU", res[key]["mfu"], reference)
            line(f"GPT-2 small {key[4:]}, MFU whole run", res[key]["mfu_whole"], reference)
    for name in SIZES:
        eager, graphs = res.get(f"size_{name}_eager"), res.get(f"size_{name}_graphs")
        if eager and graphs:
            line(f"{name} ({eager['params']:,}) graphed, steps/s over eager", graphs["steps_s"],
                 eager["steps_s"])  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", default="anchor,study,mlp,gpt")
    p.add_argument("--out", default="outputs/bench_gpu")
    p.add_argument("--anchor", type=Path, default=None, help="the reference loop's script")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    res = run_parts(args.parts.split(","), out, args.anchor)
    text = table(res)
    (out / "gpu_sweep.md").write_text(text + "\n")
    print(f"{res['device']}, torch {res['torch']}\n{text}")


if __name__ == "__main__":
    main()
