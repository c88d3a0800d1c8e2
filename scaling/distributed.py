"""Points bigger than one device: ``trainer.nproc=K`` trains one point as K processes.

The job that owns the point starts ``torchrun --standalone --nproc_per_node=K -m
scaling.distributed`` and waits; each process joins the group (NCCL on GPUs, gloo
on CPU), wraps the model in DistributedDataParallel, or shards it with FSDP2's
``fully_shard`` when ``trainer.fsdp=true``, and trains on its own shard of every
batch. Under Slurm with ``tasks_per_node=K`` (submitit) the K tasks are the group
and no torchrun is needed.

Every process draws the same global batch indices from the same seed and keeps a
disjoint slice of them, so a point's batches, and its loss up to the order of
floating-point sums, do not depend on K. ``trainer.batch_size`` is the global
batch; each process runs it as ``grad_accum`` micro-batches of
``trainer.micro_batch_size``. Only rank 0 writes the point's results (config,
history, row, model; every rank writes its own profiler trace); its row counts
FLOPs and throughput for the whole group, and MFU against the peak of all K
devices.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Group:
    """This process's place in the point's process group (rank 0 of 1 when there is none)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    fsdp: bool = False

    @property
    def leader(self) -> bool:
        return self.rank == 0

    @property
    def joined(self) -> bool:
        return self.world > 1 or self.fsdp

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` averaged over the group, in place (one collective; a no-op alone)."""
        if self.joined:
            dist.all_reduce(t)  # gloo has no AVG
            t /= self.world
        return t

    def share(self, value):
        """Rank 0's ``value`` (any picklable object) on every rank."""
        if not self.joined:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def blame(self, status: str, error, folder: Path | None) -> tuple[str, object]:
        """A failed point's status and error, as rank 0 records them.

        A rank other than 0 leaves its failure in the point's folder before it exits;
        rank 0 then sees only the lost connection, and records the first such
        failure instead (``rank 1: MemoryError: …``).
        """
        if not self.joined or folder is None:
            return status, error
        if not self.leader:
            failure = {
                "rank": self.rank,
                "status": status,
                "error": f"{type(error).__name__}: {error}",
            }
            Path(folder, FAILURE.format(self.rank)).write_text(json.dumps(failure))
            return status, error
        cause = first_failure(folder) if status == "failed" else None
        return cause or (status, error)

    def leave(self) -> None:
        """Wait until every rank is done (rank 0 writes last), then end the group."""
        if self.joined and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


SINGLE = Group()


def uses_group(trainer) -> bool:
    """Whether the point runs as a process group (several processes, or one sharded with FSDP)."""
    return trainer.nproc > 1 or trainer.fsdp


def micro_batch(trainer) -> int:
    """Examples per process per forward pass."""
    return trainer.micro_batch_size or trainer.batch_size // trainer.nproc


def grad_accum(trainer) -> int:
    """Micro-batches per process per optimizer step."""
    return trainer.batch_size // (micro_batch(trainer) * trainer.nproc)


def backend_for(trainer, device: torch.device) -> str:
    if trainer.backend != "auto":
        return trainer.backend
    return "nccl" if device.type == "cuda" else "gloo"


def check_distributed(cfg) -> None:
    """The checks that depend on this machine's devices (ValueError); the arithmetic is in TrainerConfig."""
    tr = cfg.trainer
    if not uses_group(tr):
        return
    from .train import resolve_device

    device = resolve_device(tr.device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"trainer.nproc/fsdp: torch.distributed has no backend for {device.type}")
    backend = backend_for(tr, device)
    if backend == "nccl" and device.type != "cuda":
        raise ValueError(
            f"trainer.backend=nccl needs CUDA devices; on {device.type} use trainer.backend=gloo"
        )
    if not dist.is_available() or not getattr(dist, f"is_{backend}_available")():
        raise ValueError(f"trainer.backend={backend}: this torch build has no {backend}")
    if device.type == "cuda":
        have = torch.cuda.device_count()
        if tr.nproc > have:
            raise ValueError(
                f"trainer.nproc={tr.nproc} needs {tr.nproc} GPUs, this machine has {have}"
            )


# ---------------------------------------------------------------- inside a process of the group


def join(cfg) -> Group:
    """Join the point's process group from torchrun's environment; SINGLE for a one-process point.

    Sets ``cfg.trainer.device`` to this process's GPU on CUDA.
    """
    tr = cfg.trainer
    if not uses_group(tr):
        return SINGLE
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if world != tr.nproc:
        raise ValueError(f"trainer.nproc={tr.nproc} but the process group has {world} processes")
    from .train import resolve_device

    device = resolve_device(tr.device)
    if device.type == "cuda":
        # a scheduler may show each task only its own GPU
        index = local_rank if torch.cuda.device_count() > 1 else 0
        torch.cuda.set_device(index)
        cfg.trainer.device = f"cuda:{index}"
    if not dist.is_initialized():
        dist.init_process_group(backend_for(tr, device))
    return Group(rank, world, local_rank, bool(tr.fsdp))


def wrap(model: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """The module the loop trains: DDP over ``model``, or ``model`` itself sharded with FSDP2.

    FSDP shards each transformer block as its own unit, then the root (the
    embeddings and head, and the whole of a model without blocks), so one unit at a
    time is gathered whole. Parameters stay fp32 under bf16 autocast, as in DDP and a
    single process: FSDP's bf16 ``MixedPrecisionPolicy`` would halve the traffic but
    put the residual stream, norms and embeddings in bf16 too, and the points of one
    study would no longer compute the same thing.
    """
    if not group.joined:
        return model
    if group.fsdp:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh(device.type, (group.world,))
        for unit in getattr(model, "blocks", None) or ():
            fully_shard(unit, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        model,
        device_ids=[device.index] if device.type == "cuda" else None,
        gradient_as_bucket_view=True,  # gradients live in DDP's buckets: no second copy
    )


def training_state(model: nn.Module, opt) -> tuple[dict, dict]:
    """Model and optimizer state, whole and keyed by parameter name, for a checkpoint.

    The same format with or without a group, DDP or FSDP (gathered from the shards:
    a collective, every rank calls it), so a point resumes whatever its ``nproc``.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    return get_state_dict(
        model, opt, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_training_state(model: nn.Module, opt, model_state: dict, opt_state: dict) -> None:
    """Load what ``training_state`` saved (every rank; FSDP keeps its own shard)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    set_state_dict(model, opt, model_state_dict=model_state, optim_state_dict=opt_state,
                   options=StateDictOptions(full_state_dict=True))  # fmt: skip


@contextlib.contextmanager
def grad_sync(train_model: nn.Module, on: bool):
    """Reduce gradients across the group in this backward only when ``on`` (the last micro-batch)."""
    if on:
        yield
        return
    no_sync = getattr(train_model, "no_sync", None)  # DDP
    if no_sync is not None:
        with no_sync():
            yield
        return
    set_sync = getattr(train_model, "set_requires_gradient_sync", None)  # FSDP2
    if set_sync is None:
        yield
        return
    set_sync(False)
    try:
        yield
    finally:
        set_sync(True)


def full_model(model: nn.Module, cfg, spec, group: Group, device: torch.device) -> nn.Module | None:
    """The trained model whole on rank 0 (gathered from FSDP's shards); None on the other ranks.

    A gathered model stays on the host, where model.pt is written from, and goes to
    ``device`` only for compression, whose variants are evaluated there.
    """
    if not group.fsdp:
        return model if group.leader else None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    from .models import build_model

    state = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )  # a collective: every rank takes part
    if not group.leader:
        return None
    plain = build_model(cfg.model, spec)
    plain.load_state_dict(state)
    return plain.to(device) if cfg.compress.method != "none" else plain


FAILURE = ".rank{}_failure.json"  # what a failed rank leaves in the point's folder


def first_failure(folder: Path) -> tuple[str, str] | None:
    """Status and error of the lowest rank that left its failure in the point's folder."""
    found = []
    for path in Path(folder).glob(FAILURE.format("*")):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(path.read_text()))
    if not found:
        return None
    first = min(found, key=lambda failure: failure["rank"])
    return first["status"], f"rank {first['rank']}: {first['error']}"


def clear_failures(folder: Path, rank: int | str = "*") -> None:
    """Remove the failures ranks left (one rank's, or all): an earlier run's are not this one's."""
    for path in Path(folder).glob(FAILURE.format(rank)):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------- the job that owns the point


def launch(cfg, point_dir: Path) -> dict:
    """Train the point as ``trainer.nproc`` processes with torchrun; rank 0's row.

    A group that dies without rank 0's row (a process crashed or was killed) gets a
    ``failed`` row, with the error of the first rank that failed where it left one;
    Ctrl-C gets an ``interrupted`` one and is raised again.
    """
    from .loggers import NoLogger
    from .store import read_result
    from .train import finish_row, new_row

    point_dir = Path(point_dir)
    point_dir.mkdir(parents=True, exist_ok=True)
    (point_dir / "result.json").unlink(missing_ok=True)  # a retry's old row is not this run's
    clear_failures(point_dir)
    nproc = cfg.trainer.nproc
    cfg = copy.deepcopy(cfg)
    if cfg.trainer.threads is None:  # the cores shared between the processes
        cfg.trainer.threads = max(1, (os.cpu_count() or 1) // nproc)
    handoff = point_dir / ".group_config.pkl"
    handoff.write_bytes(pickle.dumps(cfg))
    command = [
        sys.executable, "-m", "scaling.distributed", "torchrun", "--standalone",
        f"--nproc_per_node={nproc}", "-m", "scaling.distributed", str(handoff), str(point_dir),
    ]  # fmt: skip
    env = os.environ | {"OMP_NUM_THREADS": str(cfg.trainer.threads)}
    status, error = None, None
    # its own session: a signal reaches the group once, through this job (below)
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        code = proc.wait()
        if code != 0:
            status = "failed"
            error = f"a process of the group failed (torchrun exit {code}); its error is in the log"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by the user"
        _stop(proc)
        raise
    finally:
        handoff.unlink(missing_ok=True)
        row = read_result(point_dir)
        if row is None:  # rank 0 was killed (by torchrun, after another rank failed) or crashed
            if status != "interrupted":
                status, error = first_failure(point_dir) or (status, error)
            row = new_row(cfg, point_dir)
            finish_row(row, status or "failed", error or "rank 0 wrote no result", [], point_dir,
                       NoLogger())  # fmt: skip
        clear_failures(point_dir)
    return row


def _stop(proc: subprocess.Popen, grace: float = 45.0) -> None:
    """Ctrl-C for torchrun, which passes it to every rank (rank 0 writes its interrupted
    row), then, after longer than torchrun's own 30 s grace, SIGKILL for whatever is left."""
    import signal

    import psutil

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


def export_scheduler_env(cfg) -> None:
    """Under submitit with ``tasks_per_node=K`` (Slurm, or its local executor), the K tasks are
    the point's group: export the variables torch.distributed reads, as torchrun would."""
    if not uses_group(cfg.trainer) or in_group():
        return
    try:
        import submitit

        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):
        return  # not a submitit job: launch() starts torchrun
    if env.num_tasks == cfg.trainer.nproc:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def in_group() -> bool:
    """Whether this process is already a member of a group (started by torchrun or a scheduler)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


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
    import signal

    from .train import train_point

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
    cfg = pickle.loads(Path(handoff).read_bytes())
    try:
        row = train_point(cfg, Path(point_dir))
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
