"""A point trained by a group of processes: joining it, wrapping the model (DDP or FSDP2),
gradient sync for micro-batches, and whole checkpoints.

Every process draws the same global batch indices from the same seed and keeps a disjoint
slice of them (``Batches``), so a point's batches, and its loss up to the order of
floating-point sums, do not depend on the group's size. Only rank 0 writes the point's
files; its row counts FLOPs and throughput for the whole group. Starting the group
(torchrun, a scheduler's tasks) is ``scaling.launch.torchrun``'s.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from .. import store
from ..models import build_model


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
            store.record_failure(folder, self.rank, status, f"{type(error).__name__}: {error}")
            return status, error
        cause = store.first_failure(folder) if status == "failed" else None
        return cause or (status, error)

    def leave(self) -> None:
        """Wait until every rank is done (rank 0 writes last), then end the group."""
        if self.joined and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


SINGLE = Group()


def backend_for(trainer, device: torch.device) -> str:
    if trainer.backend != "auto":
        return trainer.backend
    return "nccl" if device.type == "cuda" else "gloo"


def in_group() -> bool:
    """Whether this process is already a member of a group (started by torchrun or a scheduler)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def join(tr, device: torch.device) -> tuple[Group, torch.device]:
    """Join the point's process group from torchrun's environment (SINGLE for a one-process
    point); on CUDA, with this process's own GPU."""
    if not tr.group:
        return SINGLE, device
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    if world != tr.nproc:
        raise ValueError(f"trainer.nproc={tr.nproc} but the process group has {world} processes")
    if device.type == "cuda":
        # a scheduler may show each task only its own GPU
        device = torch.device("cuda", local_rank if torch.cuda.device_count() > 1 else 0)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(tr, device))
    return Group(rank, world, local_rank, bool(tr.fsdp)), device


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

    state = get_model_state_dict(
        model, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )  # a collective: every rank takes part
    if not group.leader:
        return None
    plain = build_model(cfg.model, spec)
    plain.load_state_dict(state)
    return plain.to(device) if cfg.compress.method != "none" else plain
