"""Knowledge distillation: a student trained on a teacher's logits as well as the labels.

loss = (1 − α)·CE(student, labels) + α·T²·KL(softmax(teacher/T) ‖ softmax(student/T))
(Hinton et al., 2015). The teacher is a model saved by the runner
(``trainer.save_model=true`` writes ``model.pt`` beside a point's result): a
point folder, a sweep folder (its best saved model), or the file itself. With
``distill.teacher_overrides`` the teacher is the student's own config with those
overrides, trained once in the study's folder (a lock makes concurrent
students wait for one teacher) and recorded as a point of its own.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from .models import build_model, family
from .store import collect, lock, read_result


def teacher_config(cfg):
    """The teacher of ``cfg`` when it is given by ``distill.teacher_overrides``."""
    from .config.compose import prepare

    teacher = copy.deepcopy(cfg)
    overrides = list(cfg.distill.teacher_overrides)
    for o in overrides:
        key, _, value = o.partition("=")
        OmegaConf.update(teacher, key.lstrip("+"), OmegaConf.from_dotlist([f"v={value}"]).v)
    teacher.distill.alpha, teacher.distill.teacher_overrides = 0.0, None
    teacher.trainer.save_model, teacher.trainer.pack_seeds = True, 1
    teacher.compress.method, teacher.compress.levels = "none", []
    return prepare(teacher, overrides)


def teacher_dir(cfg, teacher=None) -> Path:
    """The study's teacher point folder (``teacher``: its config, when already composed)."""
    from .train import identify

    return Path(cfg.out) / "points" / identify(teacher or teacher_config(cfg))


def ensure_teacher(cfg) -> None:
    """Train the study's teacher unless it is saved already; concurrent students wait for it."""
    from .train import train_point

    if not (cfg.distill.alpha > 0 and cfg.distill.teacher_overrides and not cfg.distill.teacher):
        return
    teacher = teacher_config(cfg)
    folder = teacher_dir(cfg, teacher)
    folder.mkdir(parents=True, exist_ok=True)
    with lock(folder / ".teacher.lock"):
        done = read_result(folder)
        if not (done and done["status"] == "ok" and (folder / "model.pt").is_file()):
            print(f"[{cfg.sweep}] training the teacher first", flush=True)
            train_point(teacher, folder)


def find_teacher(path: Path) -> Path:
    """The model.pt a teacher path names: the file, a point's, or a sweep's best."""
    if path.is_file():
        return path
    if (path / "model.pt").is_file():
        return path / "model.pt"
    if (path / "points").is_dir():
        df = collect(path)
        df = df[df["status"] == "ok"].sort_values("val_loss")
        for pid in df["point_id"]:
            if (path / "points" / pid / "model.pt").is_file():
                return path / "points" / pid / "model.pt"
    raise ValueError(
        f"distill.teacher: no saved model at {path} (train the teacher with trainer.save_model=true)"
    )


def load_teacher(cfg, spec, device: torch.device) -> torch.nn.Module:
    """The frozen teacher, on ``device``, checked against the student's data."""
    path = Path(cfg.distill.teacher) if cfg.distill.teacher else teacher_dir(cfg)
    saved = torch.load(find_teacher(path.expanduser()), map_location=device, weights_only=False)
    if saved["data"]["name"] != cfg.data.name:
        raise ValueError(
            f"the teacher was trained on {saved['data']['name']}, the student on {cfg.data.name}"
        )
    teacher = build_model(family(saved["model"]["family"]).Config(**saved["model"]), spec).to(
        device
    )
    teacher.load_state_dict(saved["state_dict"])
    return teacher.eval().requires_grad_(False)


def objective(loss_fn, teacher, distill):
    """The training loss as a function of (student output, x, y)."""
    if teacher is None:
        return lambda out, x, y: loss_fn(out, y)
    alpha, t = distill.alpha, distill.temperature

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


def teacher_flops(teacher, x) -> int:
    """FLOPs of the teacher's forward pass on one batch (what each student step adds)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        teacher(x)
    return counter.get_total_flops()


def save_model(model, cfg, point_dir: Path | None) -> None:
    """model.pt: the weights with the model and data configs, for a later teacher or compression."""
    if point_dir is None or not cfg.trainer.save_model:
        return
    tmp = Path(point_dir) / "model.pt.tmp"
    torch.save({"model": OmegaConf.to_container(cfg.model, resolve=True),
                "data": OmegaConf.to_container(cfg.data, resolve=True),
                "state_dict": model.state_dict()}, tmp)  # fmt: skip
    tmp.replace(Path(point_dir) / "model.pt")
