"""Points bigger than one device: process groups, micro-batches, activation checkpointing, profiling."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import psutil
import pytest
import torch

from scaling import plan, train_point
from scaling.cli import main
from scaling.launch.torchrun import HANDOFF

LM = [
    "model=transformer", "model.d_model=32", "model.n_layer=2", "model.n_head=2",
    "data=text", "data.seq_len=32", "data.val_size=32", "data.max_bytes=200000",
    "trainer.steps=8", "trainer.eval_interval=4", "trainer.batch_size=8", "trainer.device=cpu",
]  # fmt: skip
MLP = ["model=mlp", "model.width=32", "trainer.steps=12", "trainer.eval_interval=6",
       "trainer.batch_size=32", "trainer.device=cpu", "data.train_size=2000", "tune.lrs=[]"]  # fmt: skip


def _row(out):
    rows = [json.loads(p.read_text()) for p in out.glob("points/*/result.json")]
    assert len(rows) == 1
    return rows[0]


def _close(a, b, rel=1e-4):
    return abs(a - b) <= rel * abs(b)


@pytest.mark.slow
def test_two_gloo_processes_give_the_single_process_row(in_tmp):
    """`scale run trainer.nproc=2`: torchrun, DDP over gloo, rank 0's row for the whole group."""
    assert main(["run", *LM, "--out", "one"]) == 0
    assert main(["run", *LM, "trainer.nproc=2", "--out", "two"]) == 0
    one, two = _row(in_tmp / "one"), _row(in_tmp / "two")
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert (one["micro_batch_size"], two["micro_batch_size"]) == (8, 4)
    assert one["point_id"] == two["point_id"]  # how a point is computed is not what it computes
    for key in ("train_loss", "val_loss", "best_val_loss"):
        assert _close(two[key], one[key]), key
    # the whole group's work: the same FLOPs and tokens per step as one process
    assert two["flops_total"] == one["flops_total"] and two["train_tokens"] == one["train_tokens"]
    history = pd.read_csv(in_tmp / "two" / "points" / two["point_id"] / "history.csv")
    assert list(history["step"]) == [4, 8]  # written once, by rank 0
    assert not list((in_tmp / "two").glob(f"points/*/{HANDOFF}"))


@pytest.mark.slow
def test_a_study_trains_its_teacher_as_a_group_too(in_tmp):
    """The teacher inherits the student's processes: both run under torchrun."""
    teacher = "distill.teacher_overrides=['model.width=64']"
    assert main(["run", *MLP, "distill.alpha=0.5", teacher, "trainer.nproc=2", "--out", "d"]) == 0
    rows = [json.loads(p.read_text()) for p in (in_tmp / "d").glob("points/*/result.json")]
    assert sorted((r["model.width"], r["world_size"], r["status"]) for r in rows) == [
        (32, 2, "ok"), (64, 2, "ok")]  # fmt: skip


@pytest.mark.slow
def test_fsdp_with_accumulation_matches_one_process(compose, tmp_path, point):
    """The issue's K=1 vs K=2 check on the tiny MLP, through FSDP2 and 2 micro-batches per rank."""
    one = train_point(point(*MLP, tiny=False), tmp_path / "one")
    cfg = compose(*MLP, "trainer.nproc=2", "trainer.fsdp=true", "trainer.micro_batch_size=8",
                  "trainer.save_model=true", tiny=False)  # fmt: skip
    two = train_point(plan(cfg)[0], tmp_path / "two")
    assert two["status"] == "ok", two["error"]
    assert (two["world_size"], two["micro_batch_size"], two["grad_accum"]) == (2, 8, 2)
    assert _close(two["val_loss"], one["val_loss"]) and _close(two["train_loss"], one["train_loss"])
    # rank 0 gathered the shards into a whole model for model.pt
    saved = torch.load(tmp_path / "two" / "model.pt", weights_only=False)["state_dict"]
    assert sum(t.numel() for t in saved.values()) == two["params"]
    assert not any(type(t).__name__ == "DTensor" for t in saved.values())


def test_accumulating_4_micro_batches_of_8_is_a_batch_of_32(point):
    whole = train_point(point(*MLP, tiny=False))
    accumulated = train_point(point(*MLP, "trainer.micro_batch_size=8", tiny=False))
    assert (accumulated["micro_batch_size"], accumulated["grad_accum"]) == (8, 4)
    assert accumulated["batch_size"] == whole["batch_size"] == 32
    assert _close(accumulated["val_loss"], whole["val_loss"])
    assert _close(accumulated["train_loss"], whole["train_loss"])
    assert accumulated["flops_per_step"] == whole["flops_per_step"]  # 4 × the micro-batch's


def test_checkpointed_activations_count_their_recompute_apart(point):
    plain = train_point(point(*LM, tiny=False))
    checkpointed = train_point(point(*LM, "model.checkpoint_activations=true", tiny=False))
    assert checkpointed["point_id"] == plain["point_id"]
    assert _close(checkpointed["val_loss"], plain["val_loss"], 1e-5)
    # MFU stays honest: the model's FLOPs are the same; the recompute is counted on its own,
    # at most one more forward pass of the blocks (a third of a training step)
    assert checkpointed["flops_per_step"] == plain["flops_per_step"]
    assert plain["flops_recompute_per_step"] == 0
    assert 0 < checkpointed["flops_recompute_per_step"] < plain["flops_per_step"] / 3


def test_a_profiled_point_writes_a_trace_and_its_top_operations(tmp_path, capsys, point):
    row = train_point(point(*LM, "trainer.profile=true", tiny=False), tmp_path)
    assert row["status"] == "ok"
    traces = list((tmp_path / "profile").glob("rank0.*.pt.trace.json"))
    assert len(traces) == 1  # one window of steps, not one per step
    trace = json.loads(traces[0].read_text())  # the Chrome trace format TensorBoard's plugin reads
    names = {e.get("name") for e in trace["traceEvents"]}
    assert {"ProfilerStep#2", "ProfilerStep#3", "ProfilerStep#4"} <= names  # steps 3–5
    assert any(str(n).startswith("aten::") for n in names)
    top = (tmp_path / "profile" / "top_ops_rank0.txt").read_text()
    assert "Self CPU" in top and top in capsys.readouterr().out


def test_the_profiler_fits_a_point_shorter_than_its_window(tmp_path, point):
    row = train_point(point(*LM, "trainer.profile=true", "trainer.steps=2", tiny=False), tmp_path)
    assert row["status"] == "ok"
    assert len(list((tmp_path / "profile").glob("*.pt.trace.json"))) == 1


@pytest.mark.slow
def test_a_sweep_through_submitit_runs_each_point_as_its_tasks(in_tmp):
    """Under submitit with tasks_per_node=2 the two tasks of a point are its group (no torchrun)."""
    args = [*MLP, "model.width=8,16", "trainer.nproc=2", "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=2", "hydra.launcher.timeout_min=10"]  # fmt: skip
    assert main(["sweep", "mlp_width", *args]) == 0
    df = pd.read_csv(in_tmp / "outputs" / "mlp_width" / "results.csv")
    assert len(df) == 2 and set(df["status"]) == {"ok"} and set(df["world_size"]) == {2}
    logs = "".join(p.read_text() for p in in_tmp.glob("outputs/mlp_width/.submitit/*/*_1_log.out"))
    assert "2 × 1 micro-batches of 16" in logs  # rank 1 trained in the task itself


@pytest.mark.slow
def test_a_crash_in_one_process_fails_the_point_and_names_the_rank(in_tmp, monkeypatch):
    """Rank 1 fails at its first step; rank 0 loses its peer. Nothing hangs, the row says why."""
    monkeypatch.setenv("SCALING_FAULT", "memory@1:rank=1")
    assert main(["run", *MLP, "model=faulty", "trainer.nproc=2", "--out", "crash"]) == 1
    row = _row(in_tmp / "crash")
    assert row["status"] == "failed" and row["error"] == "rank 1: MemoryError: rank 1 ran out"
    assert row["world_size"] == 2
    assert [p.name for p in (in_tmp / "crash" / "points" / row["point_id"]).iterdir()
            if p.name.startswith(".")] == []  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_stops_the_whole_group_and_records_the_point(in_tmp):
    """Ctrl-C reaches the job, torchrun and every rank (the terminal's process group)."""
    args = [*MLP[:-4], "trainer.steps=100000", "trainer.eval_interval=20", "trainer.nproc=2"]
    proc = subprocess.Popen([sys.executable, "-m", "scaling.cli", "run", *args, "--out", "stop"],
                            cwd=in_tmp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 120
    while not list((in_tmp / "stop").glob("points/*/history.csv")):
        assert proc.poll() is None and time.time() < deadline, proc.stderr.read().decode()
        time.sleep(0.1)
    workers = psutil.Process(proc.pid).children(recursive=True)
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1].decode()
    assert proc.returncode == 130 and "Traceback" not in err
    row = _row(in_tmp / "stop")
    assert row["status"] == "interrupted" and row["steps"] >= 20 and row["world_size"] == 2
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive


@pytest.mark.slow
def test_an_fsdp_checkpoint_resumes_in_one_process(point, tmp_path, monkeypatch):
    """Checkpoints hold whole, name-keyed state: a point stopped under FSDP resumes without it."""
    settings = [*MLP, "model=faulty", "trainer.steps=20", "trainer.eval_interval=5",
                "trainer.checkpoint_every=5"]  # fmt: skip
    reference = train_point(point(*settings, tiny=False))
    with monkeypatch.context() as m:
        m.setenv(
            "SCALING_FAULT", "interrupt@13"
        )  # every rank, in step 13, after the checkpoint at 10
        stopped = train_point(point(*settings, "trainer.nproc=2", "trainer.fsdp=true", tiny=False),
                              tmp_path / "p")  # fmt: skip
    assert stopped["status"] == "interrupted" and (tmp_path / "p" / "checkpoint.pt").exists()
    resumed = train_point(point(*settings, tiny=False), tmp_path / "p")
    assert resumed["status"] == "ok" and not (tmp_path / "p" / "checkpoint.pt").exists()
    assert _close(resumed["val_loss"], reference["val_loss"])
    assert _close(resumed["train_loss"], reference["train_loss"])
    assert pd.read_csv(tmp_path / "p" / "history.csv")["step"].tolist() == [5, 10, 15, 20]


def test_a_scheduler_points_devices_are_not_this_machines(in_tmp):
    """A Slurm sweep is planned on a login node: its GPUs are on the compute nodes."""
    from scaling.config.presets import find_preset
    from scaling.errors import BadInput
    from scaling.planning import plan_sweep

    gpus = ["trainer.nproc=8", "trainer.device=cuda", "trainer.batch_size=64"]
    sweep = plan_sweep(
        "mlp_width", find_preset("mlp_width"), ["hydra/launcher=slurm", *gpus], in_tmp
    )
    assert sweep.specs and sweep.remote
    teacher = ["distill.alpha=0.5", "distill.teacher_overrides=['model.width=256']"]
    sweep = plan_sweep(
        "mlp_width", find_preset("mlp_width"), ["hydra/launcher=slurm", *gpus, *teacher], in_tmp
    )
    assert any(s.role == "teacher" and s.label.startswith("teacher") for s in sweep.specs)
    with pytest.raises(BadInput):  # on this machine the same point is refused
        plan_sweep("mlp_width", find_preset("mlp_width"), gpus, in_tmp)
