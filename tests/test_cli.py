import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import TINY
from hydra.experimental.callback import Callback

from scaling.cli import main
from scaling.store import COLUMNS


@pytest.mark.slow
def test_three_point_sweep_end_to_end(in_tmp, capsys):
    code = main(["sweep", "mlp_width", "model.width=4,8,16,32", *TINY])
    assert code == 0
    out = in_tmp / "outputs" / "mlp_width"
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 4 and set(df["status"]) == {"ok"}
    assert set(COLUMNS) <= set(df.columns)
    assert df["params"].is_unique and df["flops_total"].gt(0).all()
    for pid in df["point_id"]:
        point = out / "points" / pid
        assert (point / "config.yaml").exists()
        history = pd.read_csv(point / "history.csv")
        assert list(history["step"]) == [2, 4]
        assert json.loads((point / "result.json").read_text())["status"] == "ok"
    assert (out / "plots" / "loss_vs_params.png").stat().st_size > 0
    assert json.loads((out / "fits.json").read_text())["fits"][0]["params"]["alpha"] is not None
    assert (out / "report.html").exists() and (out / "plots" / "learning_curves.png").exists()
    grid = json.loads((out / "grid.json").read_text())
    assert len(grid["points"]) == 4 and grid["command"].startswith("scale sweep mlp_width")
    assert sorted(df["label"]) == ["width=16", "width=32", "width=4", "width=8"]
    report = (out / "report.md").read_text()
    assert (
        "scale sweep mlp_width model.width=4,8,16,32" in report and "model.width: 16,32" in report
    )

    # the same command again finds every point done and trains nothing
    before = {
        pid: (out / "points" / pid / "result.json").stat().st_mtime_ns for pid in df["point_id"]
    }
    capsys.readouterr()
    assert main(["sweep", "mlp_width", "model.width=4,8,16,32", *TINY]) == 0
    assert "0 to run" in capsys.readouterr().out
    after = {
        pid: (out / "points" / pid / "result.json").stat().st_mtime_ns for pid in df["point_id"]
    }
    assert before == after


@pytest.mark.slow
def test_range_override_and_run(in_tmp):
    assert (
        main(["sweep", "mlp_width", "model.width=range(4,12,4)", *TINY, "--out", "outputs/r"]) == 0
    )
    assert len(pd.read_csv(in_tmp / "outputs" / "r" / "results.csv")) == 2
    assert main(["run", "model=cnn", "data=digits", *TINY]) == 0
    df = pd.read_csv(in_tmp / "outputs" / "run" / "results.csv")
    assert df.loc[0, "family"] == "cnn" and df.loc[0, "dataset"] == "digits"


def _user_preset(folder, name: str, body: str) -> None:
    """A preset in ./sweeps/ of the working directory, on digits."""
    (folder / "sweeps").mkdir(exist_ok=True)
    header = "# @package _global_\ndefaults:\n  - override /data: digits\n"
    (folder / "sweeps" / f"{name}.yaml").write_text(header + body)


def test_user_preset_in_working_directory_is_found_first(in_tmp):
    _user_preset(in_tmp, "mine", "hydra:\n  sweeper:\n    params:\n      model.width: 4,8\n")
    assert main(["sweep", "mine", *TINY]) == 0
    df = pd.read_csv(in_tmp / "outputs" / "mine" / "results.csv")
    assert set(df["dataset"]) == {"digits"} and len(df) == 2


PRESET_WITH_HYDRA_SETTINGS = """# @package _global_
defaults:
  - override /model: faulty
  - override /hydra/launcher: local
hydra:
  job:
    env_set:
      SCALING_FAULT: raise@1:width=8
  sweeper:
    params:
      model.width: 4,8
"""


def test_a_presets_hydra_settings_reach_its_jobs(in_tmp):
    """A preset may choose the launcher (the command line then sets its fields) and the jobs'
    environment; every job gets them, though the jobs' configs are not composed again."""
    (in_tmp / "sweeps").mkdir()
    (in_tmp / "sweeps" / "mine.yaml").write_text(PRESET_WITH_HYDRA_SETTINGS)
    assert main(["sweep", "mine", *TINY, "hydra.launcher.n_jobs=1", "--bootstrap", "0"]) == 1
    df = pd.read_csv(in_tmp / "outputs" / "mine" / "results.csv").set_index("model.width")
    assert df.loc[8, "status"] == "failed" and "boom" in df.loc[8, "error"]  # the preset's env_set
    assert df.loc[4, "status"] == "ok" and df.loc[4, "trainer.threads"] == os.cpu_count()  # 1 job


def test_explicit_points_pair_settings(in_tmp):
    _user_preset(
        in_tmp,
        "ladder",
        "points:\n  - {model.width: 4, model.depth: 1}\n  - {model.width: 8, model.depth: 2}\n",
    )
    assert main(["sweep", "ladder", *TINY]) == 0
    df = pd.read_csv(in_tmp / "outputs" / "ladder" / "results.csv")
    assert sorted(zip(df["model.width"], df["model.depth"])) == [(4, 1), (8, 2)]


BAD = [
    (["sweep", "no_such_preset"], "unknown sweep preset 'no_such_preset'"),
    (["sweep", "model=foo"], "unknown model 'foo'"),
    (["sweep", "data=imagenet"], "unknown data 'imagenet'"),
    (["sweep", "model.width=-4"], "model.width must be > 0"),
    (["sweep", "model.width=0,8"], "model.width must be > 0"),
    (["sweep", "model.widht=8"], "unknown key 'model.widht' (did you mean 'model.width'?)"),
    # the keys of the model chosen, by an override or by the preset
    (["run", "model=rnn", "model.hiden=8"], "(did you mean 'model.hidden'?)"),
    (["sweep", "lstm_width", "model.hiden=8"], "(did you mean 'model.hidden'?)"),
    (["sweep", "model.width=abc"], "model.width"),
    (["run", "data=text", "data.path=/no/such/file.txt"], "data.path does not exist"),
    (["run", "model=transformer", "model.n_head=5"], "must divide model.d_model"),
    (["run", "model=cnn", "data=text"], "cannot train on tokens data"),
    (["run", "model=mlp", "model.size=3", "model.width=8"], "model.size sets model.width"),
    (["run", "trainer.budget=tokens"], "trainer.budget must be one of"),
    (["run", "model=transformer", "model.size=huge"], "unknown size 'huge'"),
    (["fit", "no/such/folder"], "no sweep folder or file"),
    (["sweep", "trainer.batch_size=0"], "trainer.batch_size must be > 0"),
    (["sweep", "optim.lr=-0.1"], "optim.lr must be > 0"),
    (["sweep", "trainer.precision=fp8"], "trainer.precision must be"),
    (["sweep", "trainer.steps=ten"], "trainer.steps"),
    (["run", "data=tokens", "data.path=/no/such/dir"], "data.path has no train.bin"),
    (["run", "model=rnn", "model.cell=rnn"], "model.cell must be one of lstm, gru"),
    (["run", "trainer.budget=flops", "trainer.target_flops=1000"], "gives 0 steps"),
    (["run", "data=digits", "data.train_size=5000"], "more than the"),
    (["sweep", "mlp_width", "hydra/launcher=nope"], "unknown hydra/launcher 'nope'"),
    (["sweep", "hydra/launcher=threads", "hydra.launcher.n_jobs=0"], "needs 1 or more"),
    (["sweep", "hydra/launcher=threads", "hydra.job.chdir=true"], "one working directory"),
    (["sweep", "hydra/launcher=threads", "+hydra.job.env_set.X=1"], "env_set: hydra/launcher"),
    (["sweep", "hydra/launcher=threads", "trainer.compile=true"], "trainer.compile: hydra/launcher=threads"),
    (["sweep", "hydra/launcher=threads", "trainer.profile=true"], "trainer.profile: hydra/launcher=threads"),
    (["sweep", "distill_mlp", "hydra/launcher=threads",
      "distill.teacher_overrides=['model.width=512','trainer.compile=true']"], "trainer.compile: hydra"),
    (["run", "model.family=rnn"], "choose the config group instead: model=rnn"),
    (["run", "model=rnn", "trainer.pack_seeds=2"], "the rnn family cannot be vmapped"),
    (["sweep", "trainer.pack_seeds=2", "trainer.early_stop_patience=2"], "does not combine"),
    (["sweep", "trainer.pack_seeds=0"], "trainer.pack_seeds must be > 0"),
    (["run", "trainer.batch_size=32", "trainer.micro_batch_size=12"], "does not divide the 32"),
    (["sweep", "trainer.batch_size=30", "trainer.nproc=4"], "does not split over trainer.nproc=4"),
    (["run", "trainer.nproc=2", "trainer.backend=nccl", "trainer.device=cpu"], "needs CUDA"),
    (["run", "trainer.backend=mpi"], "trainer.backend must be one of auto, gloo, nccl"),
    (["run", "trainer.fsdp=true", "trainer.precision=fp16"], "does not combine with precision"),
    (["run", "trainer.nproc=2", "trainer.pack_seeds=2"], "pack_seeds does not combine"),
    (["run", "model.checkpoint_activations=true"], "unknown key 'model.checkpoint_activations'"),
    (
        [
            "sweep",
            "trainer.nproc=2",
            "hydra/launcher=submitit_local",
            "hydra.launcher.tasks_per_node=4",
        ],
        "runs each point as 4 tasks (nodes × tasks_per_node), trainer.nproc=2",
    ),  # fmt: skip
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_is_one_line_and_exit_2(in_tmp, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (in_tmp / "outputs").exists()


def test_fit_on_a_csv_without_the_columns(in_tmp, capsys):
    (in_tmp / "runs.csv").write_text("size,loss\n1,2\n")
    assert main(["fit", "runs.csv"]) == 2
    assert "has no column params, val_loss" in capsys.readouterr().err


def test_repeated_seeds_give_a_spread(in_tmp):
    assert main(["sweep", "mlp_width", "model.width=4,8,12,16", "trainer.seed=0,1", *TINY]) == 0
    fits = json.loads((in_tmp / "outputs" / "mlp_width" / "fits.json").read_text())
    assert len(fits["spread"]) == 4 and all(s["runs"] == 2 for s in fits["spread"])


def test_ls_and_show(in_tmp, capsys):
    assert main(["sweep", "mlp_width", "model.width=4,8", *TINY]) == 0
    capsys.readouterr()
    assert main(["ls"]) == 0
    assert "mlp_width" in capsys.readouterr().out
    assert main(["show", "mlp_width"]) == 0
    assert "ok" in capsys.readouterr().out


def test_presets_are_listed_and_a_config_printed_without_writing(in_tmp, capsys):
    assert main(["presets"]) == 0
    listed = capsys.readouterr().out
    assert "mlp_width" in listed and "The default study" in listed
    assert main(["sweep", "mlp_width", "--cfg", "job"]) == 0
    assert "width: 16" in capsys.readouterr().out
    assert main(["run", "model.width=7", "--cfg", "job"]) == 0
    assert "width: 7" in capsys.readouterr().out
    assert main(["sweep", "--info"]) == 0
    info = capsys.readouterr().out
    assert "model: mlp, cnn" in info and "logger: csv" in info and "hydra/launcher: basic" in info
    assert main(["sweep", "model.width=4,8", *TINY, "--dry-run"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the terminal's line breaks aside
    assert "2 points, dry run" in out and "nothing was written" in out
    # a pack is timed packed, and its time shared by its seeds
    assert main(["sweep", "model.width=4", *TINY, "trainer.pack_seeds=3", "--dry-run"]) == 0
    assert "3 points, dry run" in capsys.readouterr().out
    # a point of a process group is timed as one process here, outside its group
    assert main(["sweep", "model.width=4", *TINY, "trainer.nproc=2", "--dry-run"]) == 0
    assert "1 points, dry run" in capsys.readouterr().out
    assert not (in_tmp / "outputs").exists()


@pytest.mark.parametrize("line, expected", [
    ("scale sweep mlp_w", ["mlp_width"]),
    ("scale sweep logger=", ["logger=csv", "logger=tensorboard", "logger=mlflow", "logger=wandb"]),
    ("scale co", ["compare", "coord-check"]),
])  # fmt: skip
def test_tab_completion_of_commands_presets_and_groups(line, expected):
    """As the shell asks: in a process of its own (argcomplete takes over its streams)."""
    code = ("import io, argcomplete\nfrom scaling.cli import _parser\nout = io.StringIO()\n"
            "argcomplete.autocomplete(_parser(), exit_method=lambda c: None, output_stream=out)\n"
            "print(out.getvalue(), end='', file=open('words.txt', 'w'))")  # fmt: skip
    env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
           "_ARGCOMPLETE_IFS": "\n"}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp, check=True, timeout=120)
        words = (Path(tmp) / "words.txt").read_text().split("\n")
    assert sorted(w.strip() for w in words) == sorted(expected)


@pytest.mark.parametrize("argv", [["--help"], ["sweep", "--help"], ["fit", "--help"],
                                  ["compare", "--help"], ["design", "suggest", "--help"]])  # fmt: skip
def test_help_prints_and_exits_0(capsys, argv):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 0
    assert "usage: scale" in capsys.readouterr().out


class CountSweepEnds(Callback):
    """A Hydra callback that counts the ends of multiruns it sees."""

    ends = 0

    def on_multirun_end(self, config, **kwargs) -> None:
        CountSweepEnds.ends += 1


def test_hydra_callbacks_see_one_end_per_sweep(in_tmp):
    CountSweepEnds.ends = 0
    callback = "+hydra.callbacks.count._target_=test_cli.CountSweepEnds"
    assert (
        main(["sweep", "mlp_width", "model.width=4,8,12", *TINY, callback, "--bootstrap", "0"]) == 0
    )
    assert CountSweepEnds.ends == 1


def test_a_launcher_whose_hydra_plugin_is_missing_names_the_extra_to_install():
    from hydra.errors import MissingConfigException

    from scaling.config.compose import explain

    missing = MissingConfigException("no joblib", missing_cfg_file="hydra/launcher/joblib")
    assert explain(missing) == (
        "this launcher needs Hydra's joblib launcher plugin: pip install \"scaling[joblib]\""
    )
    other = MissingConfigException("no", missing_cfg_file="hydra/launcher/nope", options=["ray"])
    assert explain(other) == "unknown hydra/launcher 'nope'; choose from: ray"
