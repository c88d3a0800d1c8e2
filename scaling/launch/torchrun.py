"""Points bigger than one device: ``trainer.nproc=K`` trains one point as K processes.

The job that owns the point starts ``torchrun --standalone --nproc_per_node=K`` and waits;
each process joins the group and trains (``scaling.training.parallel``). Under Slurm with
``tasks_per_node=K`` (submitit) the K tasks are the group and no torchrun is needed.
A process that crashes takes its group down; the point gets a row with the first
failing rank's error. Ctrl-C reaches every rank once, through this job.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import psutil

from .. import store
from ..training.parallel import in_group
from ..training.runner import HERE, Member, Resources, train_point

HANDOFF = ".group_spec.pkl"  # the spec the job hands its processes, in the point's folder


def launch(spec, point_dir: Path, resources: Resources = HERE) -> dict:
    """Train the point as ``trainer.nproc`` processes with torchrun; rank 0's row.

    A group that dies without rank 0's row (a process crashed or was killed) gets a
    ``failed`` row, with the error of the first rank that failed where it left one;
    Ctrl-C gets an ``interrupted`` one and is raised again.
    """
    point_dir = Path(point_dir)
    point_dir.mkdir(parents=True, exist_ok=True)
    (point_dir / "result.json").unlink(missing_ok=True)  # a retry's old row is not this run's
    store.clear_failures(point_dir)
    nproc = spec.cfg.trainer.nproc
    # the cores shared between the processes
    resources = replace(
        resources, threads=resources.threads or max(1, (os.cpu_count() or 1) // nproc)
    )
    handoff = point_dir / HANDOFF
    store.atomic_write(handoff, lambda f: pickle.dump((spec, resources), f), binary=True)
    command = [sys.executable, "-m", "scaling.launch.torchrun", "torchrun", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "scaling.launch.torchrun", str(handoff), str(point_dir)]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": str(resources.threads)}
    if resources.visible is not None:  # the GPUs the job holds for the group
        env["CUDA_VISIBLE_DEVICES"] = resources.visible
    status, error = None, None
    # its own session: a signal reaches the group once, through this job (below)
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        code = None
        while code is None:  # in short waits: Ctrl-C raised into a job's thread gets through
            try:
                code = proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        if code != 0:
            status = "failed"
            error = f"a process of the group failed (torchrun exit {code}); its error is in the log"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        _stop(proc)
        raise
    finally:
        handoff.unlink(missing_ok=True)
        row = store.read_result(point_dir)
        if row is None:  # rank 0 was killed (by torchrun, after another rank failed) or crashed
            if status != "interrupted":
                status, error = store.first_failure(point_dir) or (status, error)
            member = Member(spec, point_dir, leader=True, track=False, threads=resources.threads)
            member.finish(status or "failed", error or "rank 0 wrote no result")
            row = member.row
        store.clear_failures(point_dir)
    return row


def _stop(proc: subprocess.Popen, grace: float = 45.0) -> None:
    """Ctrl-C for torchrun, which passes it to every rank (rank 0 writes its interrupted
    row), then, after longer than torchrun's own 30 s grace, SIGKILL for whatever is left."""
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    proc.send_signal(signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


def export_scheduler_env(trainer) -> bool:
    """Under submitit with ``tasks_per_node=K`` (Slurm, or its local executor), the K tasks are
    the point's group: export the variables torch.distributed reads, as torchrun would.
    Returns whether this process is now one of a group."""
    if not trainer.group or in_group():
        return in_group()
    try:
        import submitit  # only under submitit's launcher

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return False  # not a submitit job: launch() starts torchrun
    if env.num_tasks == trainer.nproc:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    return in_group()


def _torchrun(argv: list[str]) -> int:
    """torchrun itself, quiet on Ctrl-C: the workers write the interrupted row."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import main

    try:
        main(argv)
    except SignalException:
        return 130
    return 0


def _worker(argv: list[str]) -> int:
    """One process of the group: train the point; rank 0 writes its files."""
    handoff, point_dir = argv
    rank = int(os.environ["RANK"])
    if rank != 0:
        sys.stdout = open(os.devnull, "w")  # the point's log is rank 0's; errors still show
    interrupted = False

    def on_interrupt(signum, frame):
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_interrupt)
    spec, resources = pickle.loads(Path(handoff).read_bytes())
    try:
        row = train_point(spec, Path(point_dir), resources)
    except KeyboardInterrupt:
        return 0  # rank 0 wrote the interrupted row; the launching job raises Ctrl-C again
    if interrupted or row["status"] in ("ok", "diverged"):
        return 0  # every rank saw the same loss: they all end alike
    # exiting with an error makes torchrun stop the others, which may wait in a collective
    print(f"rank {rank}: {row['status']}: {row['error']}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(_torchrun(args[1:]) if args[:1] == ["torchrun"] else _worker(args))
