"""Knowledge distillation: a student trained on a teacher's logits as well as the labels.

loss = (1 − α)·CE(student, labels) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))
(Hinton et al., 2015). The teacher is a model saved by the runner
(``trainer.save_model=true`` writes ``model.pt`` beside a point's result): a point folder,
a sweep folder (its best saved model), or the file itself. A teacher given by
``distill.teacher_overrides`` is planned as a point of the study and trained by its first
student (``scaling.training.runner``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from .. import store
from ..models import build_model, family


def find_teacher(path: Path) -> Path:
    """The model.pt a teacher path names: the file, a point's, or a sweep's best (ValueError)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if store.model_path(path).is_file():
        return store.model_path(path)
    if (path / "points").is_dir():
        df = store.collect(path)
        df = df[df["status"] == "ok"].sort_values("val_loss")
        for pid in df["point_id"]:
            if store.model_path(store.point_folder(path, pid)).is_file():
                return store.model_path(store.point_folder(path, pid))
    raise ValueError(f"distill.teacher: no saved model at {path} "
                     "(train the teacher with trainer.save_model=true)")  # fmt: skip


def load_teacher(path: Path, data_name: str, spec, device: torch.device) -> torch.nn.Module:
    """The frozen teacher saved at ``path``, on ``device``, checked against the student's data."""
    saved = torch.load(find_teacher(path), map_location=device, weights_only=False)
    if saved["data"]["name"] != data_name:
        raise ValueError(
            f"the teacher was trained on {saved['data']['name']}, the student on {data_name}"
        )
    model_cfg = family(saved["model"]["family"]).Config(**saved["model"])
    teacher = build_model(model_cfg, spec).to(device)
    teacher.load_state_dict(saved["state_dict"])
    return teacher.eval().requires_grad_(False)


def objective(loss_fn, teacher, alpha: float, temperature: float):
    """The training loss as a function of (student output, x, y)."""
    if teacher is None:
        return lambda out, x, y: loss_fn(out, y)
    t = temperature

    def loss(out, x, y):
        with torch.no_grad():
            target = teacher(x)
        soft = F.kl_div(
            F.log_softmax(out.reshape(-1, out.shape[-1]) / t, dim=-1),
            F.log_softmax(target.reshape(-1, target.shape[-1]).float() / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        return (1 - alpha) * loss_fn(out, y) + alpha * t * t * soft

    return loss


def save_model(model, cfg, point_dir: Path) -> None:
    """model.pt: the weights with the model and data configs, for a later teacher or compression."""
    state = {"model": asdict(cfg.model), "data": asdict(cfg.data), "state_dict": model.state_dict()}
    store.atomic_write(store.model_path(point_dir), lambda f: torch.save(state, f), binary=True)
