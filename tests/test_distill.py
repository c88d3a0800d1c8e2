import json

import pandas as pd
import pytest
import torch
from conftest import TINY

from scaling.cli import main
from scaling.studies.distill import objective
from scaling.training.evaluate import loss_fn_for


def test_the_objective_mixes_labels_and_the_teachers_soft_targets():
    torch.manual_seed(0)
    x, y = torch.randn(8, 5), torch.randint(0, 3, (8,))
    teacher = torch.nn.Linear(5, 3)
    ce = loss_fn_for("classification")
    settings = (0.7, 2.0)  # alpha, temperature
    student_out = teacher(x).detach()
    # a student that already matches the teacher: only the hard-label part is left
    same = objective(ce, teacher, *settings)(student_out, x, y)
    assert same.item() == pytest.approx(0.3 * ce(student_out, y).item(), rel=1e-5)
    other = objective(ce, teacher, *settings)(torch.zeros(8, 3), x, y)
    assert other.item() > 0.3 * ce(torch.zeros(8, 3), y).item()
    assert objective(ce, None, *settings)(student_out, x, y).item() == ce(student_out, y).item()


def test_a_distillation_study_trains_its_teacher_once(in_tmp):
    argv = ["sweep", "distill_mlp", "model.width=4,8", *TINY, "--bootstrap", "0"]
    assert main(argv) == 0
    sweep = in_tmp / "outputs" / "distill_mlp"
    df = pd.read_csv(sweep / "results.csv")
    assert len(df) == 5 and (df["status"] == "ok").all()
    teacher = df[df["label"] == "teacher width=512"]
    assert len(teacher) == 1 and teacher["model.width"].item() == 512
    assert (sweep / "points" / teacher["point_id"].item() / "model.pt").is_file()
    students = df[df["distill.alpha"] == 0.7]
    assert len(students) == 2 and (students["flops_teacher_per_step"] > 0).all()
    plain = df[(df["distill.alpha"] == 0) & (df["model.width"] < 512)]
    assert sorted(plain["model.width"]) == [4, 8]
    for width in (4, 8):  # same data, seed and steps: the teacher's targets change the result
        a, b = (d[d["model.width"] == width]["val_loss"].item() for d in (plain, students))
        assert a != b
    report = (sweep / "report.md").read_text()
    assert "## Distillation" in report and "teacher width=512" in report
    mtime = (sweep / "points" / teacher["point_id"].item() / "model.pt").stat().st_mtime_ns
    assert main(argv) == 0  # nothing left to do, the teacher is not retrained
    assert (sweep / "points" / teacher["point_id"].item() / "model.pt").stat().st_mtime_ns == mtime
    grid = json.loads((sweep / "grid.json").read_text())["points"]
    assert sum(p["label"].startswith("teacher") for p in grid) == 1
    in_grid = next(p for p in grid if p["label"].startswith("teacher"))
    assert in_grid["params"] == teacher["params"].item()  # its own size, not a student's


def test_a_saved_model_is_a_teacher(in_tmp, capsys):
    assert main(["run", "model.width=32", "trainer.save_model=true", *TINY, "--out", "t"]) == 0
    assert main(["run", "model.width=4", "distill.alpha=0.5", "distill.teacher=t", *TINY]) == 0
    row = pd.read_csv(in_tmp / "outputs" / "run" / "results.csv").iloc[0]
    assert row["status"] == "ok" and row["flops_teacher_per_step"] > 0
    capsys.readouterr()
    assert main(["run", "distill.alpha=0.5", "distill.teacher=nowhere", *TINY]) == 2
    assert "no saved model at nowhere" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["distill.alpha=0.5"], "needs distill.teacher or distill.teacher_overrides"),
        (["distill.alpha=2"], "distill.alpha must be in [0, 1]"),
        (["data=teacher", "distill.alpha=0.5", "distill.teacher_overrides=['model.width=64']"],
         "a regression task has no logits"),
        (["distill.alpha=0.5", "distill.teacher_overrides=['model.widht=64']"], "widht"),
        (["distill.teacher_overrides=[model.width=64]"], "bad override"),
    ],
)  # fmt: skip
def test_bad_distillation_settings_are_refused(in_tmp, capsys, argv, message):
    assert main(["run", *argv, *TINY]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
