"""Nothing a user or the machine does loses a finished point."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import TINY

from scaling import train_point
from scaling.cli import main
from scaling.store import collect


def _sweep_in_subprocess(cwd, *args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "scaling.cli", "sweep", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def _results(sweep_dir):
    return {
        p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("points/*/result.json")
    }


def _wait_for_results(sweep_dir, n, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = {k: v for k, v in _results(sweep_dir).items() if v["status"] == "ok"}
        if len(done) >= n:
            return done
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.2)
    raise TimeoutError


def _wait_for_a_running_point(sweep_dir, proc, timeout=60):
    """Until a point has written history but no result: it is in the middle of training."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for history in sweep_dir.glob("points/*/history.csv"):
            if not (history.parent / "result.json").exists():
                return
        assert proc.poll() is None
        time.sleep(0.02)
    raise TimeoutError


THREADS = ["hydra/launcher=threads", "hydra.launcher.n_jobs=2"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig,launcher", [(signal.SIGINT, []), (signal.SIGKILL, []), (signal.SIGINT, THREADS)]
)
def test_killed_sweep_resumes_without_retraining_finished_points(in_tmp, sig, launcher):
    args = [
        "model.width=4,8,12,16,20,24",
        "trainer.steps=300",
        "trainer.eval_interval=50",
        "trainer.batch_size=16",
        "tune.lrs=[]",
    ]
    sweep_dir = in_tmp / "outputs" / "mlp_width"
    # the signal goes to the main process alone: the threads launcher passes Ctrl-C on
    proc = _sweep_in_subprocess(in_tmp, *args, *launcher)
    finished = _wait_for_results(sweep_dir, 2, proc)
    _wait_for_a_running_point(sweep_dir, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    before = {k: v["finished_at"] for k, v in _results(sweep_dir).items() if v["status"] == "ok"}
    assert set(finished) <= set(before)
    if sig == signal.SIGINT:  # a clean stop records the running points and the table
        assert any(v["status"] == "interrupted" for v in _results(sweep_dir).values())
        assert (sweep_dir / "results.csv").exists()

    assert main(["sweep", *args]) == 0
    after = _results(sweep_dir)
    assert len(after) == 6 and all(v["status"] == "ok" for v in after.values())
    assert all(after[k]["finished_at"] == t for k, t in before.items())  # not trained again
    df = pd.read_csv(sweep_dir / "results.csv")
    assert len(df) == 6 and df["point_id"].is_unique


@pytest.mark.parametrize("kind,status", [("raise", "failed"), ("nan", "diverged"), ("oom", "oom")])
def test_a_bad_point_becomes_a_row_and_the_sweep_goes_on(in_tmp, monkeypatch, kind, status):
    monkeypatch.setenv("SCALING_FAULT", f"{kind}@1:width=8")  # width 8 fails at its first step
    grid = ["model=faulty", "model.width=4,8,12", *TINY]
    assert main(["sweep", *grid]) == 1
    df = collect(in_tmp / "outputs" / "mlp_width").set_index("model.width")
    assert df.loc[8, "status"] == status and df.loc[8, "error"]
    assert df.loc[4, "status"] == "ok" and df.loc[12, "status"] == "ok"
    if kind == "nan":  # the partial history is kept, and where it stopped
        point = in_tmp / "outputs" / "mlp_width" / "points" / df.loc[8, "point_id"]
        assert pd.read_csv(point / "history.csv")["step"].tolist() == [2]
        assert json.loads((point / "result.json").read_text())["failed_at_step"] == 2

    # failed points are not retried unless asked
    monkeypatch.delenv("SCALING_FAULT")
    assert main(["sweep", *grid]) == 1
    assert main(["sweep", *grid, "--retry-failed"]) == 0


def test_corrupt_result_is_rerun_not_crashed_on(in_tmp, capsys):
    assert main(["sweep", "model.width=4,8,12", *TINY]) == 0
    sweep_dir = in_tmp / "outputs" / "mlp_width"
    victim = sorted(sweep_dir.glob("points/*/result.json"))[0]
    victim.write_text('{"status": "ok", "val_lo')  # torn
    capsys.readouterr()
    assert main(["ls"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "mlp_width" in line)
    cells = [c.strip() for c in row.split("│") if c.strip()]
    # sweep, points, ok, pending: no sweep has a point of another status
    assert cells == ["mlp_width", "3", "2", "1"]
    assert collect(sweep_dir)["status"].tolist().count("pending") == 1
    assert main(["sweep", "model.width=4,8,12", *TINY]) == 0
    assert "1 to run" in capsys.readouterr().out
    assert json.loads(victim.read_text())["status"] == "ok"


def test_max_failures_stops_the_sweep(in_tmp, monkeypatch):
    monkeypatch.setenv("SCALING_FAULT", "raise@1")  # every point fails
    grid = ["model=faulty", "model.width=4,8,12,16,20", *TINY]
    assert main(["sweep", *grid, "--max-failures", "2"]) == 1
    statuses = collect(in_tmp / "outputs" / "mlp_width")["status"].value_counts().to_dict()
    assert statuses == {"failed": 2, "pending": 3}


def test_interrupted_point_resumes_from_its_checkpoint(point, tmp_path, monkeypatch):
    spec = point("model=faulty", "model.width=8", "trainer.steps=20", "trainer.eval_interval=5",
                 "trainer.checkpoint_every=5", tiny=False)  # fmt: skip
    reference = train_point(spec)
    # Ctrl-C in the middle of step 13, after the checkpoint at step 10
    monkeypatch.setenv("SCALING_FAULT", "interrupt@13")
    with pytest.raises(KeyboardInterrupt):
        train_point(spec, tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "interrupted"
    assert (tmp_path / "checkpoint.pt").exists()
    monkeypatch.delenv("SCALING_FAULT")
    resumed = train_point(spec, tmp_path)
    assert resumed["status"] == "ok" and not (tmp_path / "checkpoint.pt").exists()
    assert (
        resumed["val_loss"] == reference["val_loss"]
        and resumed["train_loss"] == reference["train_loss"]
    )
    assert pd.read_csv(tmp_path / "history.csv")["step"].tolist() == [5, 10, 15, 20]


def test_a_thread_asked_to_stop_ends_its_point_as_interrupted(point, tmp_path):
    """The threads launcher asks a job's thread to stop (Ctrl-C reaches the main thread only):
    its point stops at its next step and is recorded as a point stopped by Ctrl-C is."""
    import threading

    spec, seen = point("model.width=8", "trainer.steps=20"), {}

    def job():
        threading.current_thread().stop_requested = True
        try:
            train_point(spec, tmp_path)
        except KeyboardInterrupt:
            seen["raised"] = True

    thread = threading.Thread(target=job)
    thread.start()
    thread.join()
    row = json.loads((tmp_path / "result.json").read_text())
    assert seen.get("raised") and row["status"] == "interrupted"
