"""One run per size, many data budgets: a constant-lr trunk and a cooldown branch per budget.

A branched point (``trainer.branches``, ``optim.schedule=wsd``) is planned as a trunk and one
branch per budget (``scaling.planning.plan_branches``). The trunk trains at the constant lr
and keeps a snapshot at each branch's start (the first step of its cooldown); a branch starts
from that snapshot and decays the lr to its own end, exactly as a wsd run of its length would.
Snapshots are checkpoints too: a trunk that stops resumes from its latest one, a trunk asked
for a later start (a budget added) continues from its end, and a branch that stops resumes
from its own checkpoint, or from the trunk's snapshot.
"""

from __future__ import annotations

import re
from pathlib import Path

from .. import store
from .loop import Checkpoint

SNAPSHOTS = "snapshots"


def snapshot_path(trunk_folder: Path, step: int) -> Path:
    return Path(trunk_folder) / SNAPSHOTS / f"step_{step}.pt"


def _saved(trunk_folder: Path) -> dict[int, Path]:
    """The trunk's snapshots: step -> file."""
    folder = Path(trunk_folder) / SNAPSHOTS
    found = (re.fullmatch(r"step_(\d+)\.pt", p.name) for p in folder.glob("step_*.pt"))
    return {int(m.group(1)): folder / m.group(0) for m in found if m}


class Snapshots(Checkpoint):
    """A trunk's checkpoints: kept at each branch's start; every ``every`` steps one more,
    which replaces the previous periodic one. It resumes from the latest at or before its end."""

    def __init__(self, folder: Path, starts, every: int | None, group, label: str):
        super().__init__(snapshot_path(folder, 0), every, group, label)
        self.folder, self.starts = Path(folder), set(starts)

    def due(self, step: int, steps: int) -> bool:
        return step in self.starts or super().due(step, steps)

    def save(self, stepper, members, loss_sum, progress, since_eval_time: float) -> None:
        self.path = snapshot_path(self.folder, progress.step)
        super().save(stepper, members, loss_sum, progress, since_eval_time)
        if self.group.leader:
            self.remove()  # the periodic snapshots before this one

    def resume(self, stepper, members, loss_sum, progress) -> None:
        end = max(self.starts, default=0)
        usable = [s for s in _saved(self.folder) if s <= end]
        if usable:
            self.path = snapshot_path(self.folder, max(usable))
            super().resume(stepper, members, loss_sum, progress)

    def remove(self) -> None:
        """Drop the periodic snapshots older than the latest; those at branch starts stay."""
        saved = _saved(self.folder)
        latest = max(saved, default=None)
        for step, path in saved.items():
            if step not in self.starts and step != latest:
                path.unlink(missing_ok=True)


class FromTrunk(Checkpoint):
    """A branch's checkpoint: its own when it has one, else its trunk's snapshot at its start."""

    def __init__(self, path: Path, trunk_snapshot: Path, every: int | None, group, label: str):
        super().__init__(path, every, group, label)
        self.trunk_snapshot = trunk_snapshot

    def resume(self, stepper, members, loss_sum, progress) -> None:
        own = self.path
        if not own.exists():
            self.path = self.trunk_snapshot
        try:
            super().resume(stepper, members, loss_sum, progress)
        finally:
            self.path = own


def checkpoint_for(spec, folder: Path, every: int | None, group, label: str) -> Checkpoint:
    """The checkpoint of a point: a trunk's snapshots, a branch's start, or the plain one."""
    if spec.role == "trunk":
        return Snapshots(folder, spec.starts, every, group, label)
    path = store.checkpoint_path(folder)
    if spec.role == "branch":
        trunk = store.point_folder(spec.cfg.out, spec.trunk_id)
        return FromTrunk(path, snapshot_path(trunk, spec.start), every, group, label)
    return Checkpoint(path, every, group, label)


def needs_trunk(trunk, branches: list, out: Path) -> bool:
    """Whether the trunk must train (again, or further) for these branches to start."""
    folder = store.point_folder(out, trunk.point_id)
    row = store.read_result(folder)
    saved = _saved(folder)
    return row is None or row.get("status") != "ok" or any(b.start not in saved for b in branches)


def trunk_failed_row(branch, trunk_row: dict) -> dict:
    """A branch's row when its trunk did not finish: the trunk's status and error."""
    error = f"its trunk {trunk_row.get('point_id')} ended {trunk_row.get('status')}: {trunk_row.get('error')}"
    return {"point_id": branch.point_id, "sweep": branch.cfg.sweep, "status": trunk_row.get("status"),
            "error": error, "role": "branch", "finished_at": None}  # fmt: skip
