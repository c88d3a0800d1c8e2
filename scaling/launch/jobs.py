"""A job's points trained here: one point, a pack's seeds together, or a process group."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .. import store
from ..training.branches import needs_trunk, trunk_failed_row
from ..training.parallel import in_group
from ..training.runner import HERE, Resources, train_points
from . import torchrun


def train_job(
    specs: list, out: Path, resources: Resources = HERE, again: bool = False
) -> list[dict]:
    """Train a job's points into ``out/points/<id>/``: one point, a pack's seeds together, or a
    point as a process group; the study's teacher first when it has none. Points with an ok
    result are skipped unless ``again``. Returns the new rows."""
    if specs[0].role == "trunk":
        return train_branched(specs, out, resources, again)
    # a launched job trains whatever of it is not ok: the sweep chose which jobs to launch
    todo = [s for s in specs if again or store.needs_training(_row(out, s), retry_failed=True)]
    if not todo:
        return []
    ensure_teacher(todo[0], out, resources)
    folders = [store.point_folder(out, s.point_id) for s in todo]
    if todo[0].cfg.trainer.group and not torchrun.export_scheduler_env(todo[0].cfg.trainer):
        return [torchrun.launch(todo[0], folders[0], resources)]
    return train_points(todo, folders, resources)


def train_branched(specs: list, out: Path, resources: Resources = HERE, again: bool = False):
    """A trunk and its branches (``scaling.training.branches``): the branches not done, after
    the trunk where one of them needs it (its first run, a later start, a resume). A trunk
    that fails leaves its status in its branches' rows. Returns the new rows."""
    trunk, branches = specs[0], specs[1:]
    todo = [b for b in branches if again or store.needs_training(_row(out, b), retry_failed=True)]
    if not todo:
        return []
    rows = []
    if needs_trunk(trunk, todo, out):
        rows.append(train_points([trunk], [store.point_folder(out, trunk.point_id)], resources)[0])
        if rows[-1]["status"] != "ok":
            for b in todo:
                store.write_result(store.point_folder(out, b.point_id), trunk_failed_row(b, rows[-1]))
            return rows
    for b in todo:
        rows += train_points([b], [store.point_folder(out, b.point_id)], resources)
    return rows


def train_point(spec, point_dir: Path | None = None, resources: Resources = HERE) -> dict:
    """Train one planned point and return its row, writing into ``point_dir`` (None: nothing);
    a process-group point (``trainer.nproc``) runs under torchrun."""
    if spec.cfg.trainer.group and not in_group():
        if point_dir is None:
            with tempfile.TemporaryDirectory() as tmp:
                return torchrun.launch(spec, Path(tmp), resources)
        return torchrun.launch(spec, point_dir, resources)
    return train_points([spec], [point_dir], resources)[0]


def _row(out: Path, spec) -> dict | None:
    return store.read_result(store.point_folder(out, spec.point_id))


def pending(sweep, retry_failed: bool = False) -> tuple[list, list]:
    """The sweep's points that train on this run (pending, interrupted or torn; failed ones
    with ``retry_failed``) and the jobs to launch for them."""
    todo = [s for s in sweep.specs if store.needs_training(_row(sweep.out, s), retry_failed)]
    ids = {s.point_id for s in todo}
    return todo, [job for job in sweep.jobs if ids & {s.point_id for s in job}]


def write_grid(sweep, command: str, preset: Path | None) -> None:
    sweep.out.mkdir(parents=True, exist_ok=True)
    store.write_grid(sweep.out, sweep.name, [s.entry() for s in sweep.specs], command,
                     preset.read_text() if preset else "")  # fmt: skip


def ensure_teacher(spec, out: Path, resources: Resources = HERE) -> None:
    """Train the study's teacher of ``spec`` unless it is saved already (as a process group
    when it is one); concurrent students wait for it."""
    teacher = spec.teacher
    if teacher is None:
        return
    folder = store.point_folder(out, teacher.point_id)
    with store.lock(folder / ".teacher.lock"):
        done = store.read_result(folder)
        if not (done and done["status"] == "ok" and store.model_path(folder).is_file()):
            print(f"[{spec.cfg.sweep}] training the teacher first", flush=True)
            train_point(teacher, folder, resources)
