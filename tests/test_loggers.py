"""Trackers, read back with their own libraries: what they show is what history.csv holds."""

import importlib.util
import json
import time

import pandas as pd
import pytest
from conftest import TINY
from omegaconf import OmegaConf

from scaling.cli import main
from scaling.training import loggers

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

SWEEP = ["sweep", "mlp_width", "model.width=4,8", *TINY, "--bootstrap", "0"]


def _points(sweep_dir):
    return {
        p.name: (pd.read_csv(p / "history.csv"), json.loads((p / "result.json").read_text()))
        for p in sorted((sweep_dir / "points").iterdir())
    }


def _runs(uri, experiment="mlp_width"):
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment} in {uri}"
    return client, client.search_runs([found.experiment_id])


def test_tensorboard_curves_and_hparams(in_tmp):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    assert main([*SWEEP, "logger=tensorboard"]) == 0
    points = _points(in_tmp / "outputs" / "mlp_width")
    assert len(points) == 2
    for point_id, (history, result) in points.items():
        events = in_tmp / "outputs" / "mlp_width" / "points" / point_id / "tensorboard"
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        assert {"train_loss", "val_loss", "val_accuracy", "lr", "throughput"} <= set(
            acc.Tags()["scalars"]
        )
        val = acc.Scalars("val_loss")
        assert [e.step for e in val] == history["step"].tolist() == [2, 4]
        assert [e.value for e in val] == pytest.approx(history["val_loss"].tolist(), rel=1e-6)
        final = acc.Scalars("final/val_loss")
        assert final[-1].value == pytest.approx(result["val_loss"], rel=1e-6)

        content = acc.PluginTagToContent("hparams")
        assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(content)
        start = plugin_data_pb2.HParamsPluginData.FromString(
            content["_hparams_/session_start_info"]
        ).session_start_info
        assert start.hparams["model.width"].number_value == result["model.width"]
        assert start.hparams["point_id"].string_value == point_id
        assert start.hparams["status"].string_value == "ok"


def test_mlflow_one_run_per_point(in_tmp):
    assert main([*SWEEP, "logger=mlflow"]) == 0
    sweep_dir = in_tmp / "outputs" / "mlp_width"
    points = _points(sweep_dir)
    client, runs = _runs(f"sqlite:///{sweep_dir / 'mlruns.db'}")
    assert len(runs) == 2
    assert {r.data.params["model.width"] for r in runs} == {"4", "8"}
    for run in runs:
        history, result = points[run.data.tags["point_id"]]
        assert run.info.status == "FINISHED" and run.data.tags["status"] == "ok"
        assert run.info.run_name == result["point_id"]
        assert run.data.params["trainer.steps"] == "4"
        val = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.step for m in val][:2] == history["step"].tolist()
        assert [m.value for m in val][:2] == pytest.approx(history["val_loss"].tolist())
        assert run.data.metrics["params"] == result["params"]
        assert run.data.metrics["val_loss"] == pytest.approx(result["val_loss"])


def test_mlflow_packed_seeds_keep_their_runs_apart(in_tmp):
    argv = ["sweep", "mlp_width", "model.width=4", "trainer.pack_seeds=2", "logger=mlflow", *TINY]
    assert main([*argv, "--bootstrap", "0"]) == 0
    sweep_dir = in_tmp / "outputs" / "mlp_width"
    points = _points(sweep_dir)
    client, runs = _runs(f"sqlite:///{sweep_dir / 'mlruns.db'}")
    assert len(runs) == 2 and {r.data.params["trainer.seed"] for r in runs} == {"0", "1"}
    for run in runs:
        history, _ = points[run.data.tags["point_id"]]
        val = client.get_metric_history(run.info.run_id, "val_loss")
        assert [m.value for m in val][:2] == pytest.approx(history["val_loss"].tolist())


def test_a_failed_point_ends_its_mlflow_run_failed(in_tmp, monkeypatch):
    monkeypatch.setenv("SCALING_FAULT", "raise@1")
    assert (
        main(["sweep", "mlp_width", "model=faulty", "model.width=4", "logger=mlflow", *TINY]) == 1
    )
    _, runs = _runs(f"sqlite:///{in_tmp / 'outputs' / 'mlp_width' / 'mlruns.db'}")
    assert len(runs) == 1
    assert runs[0].info.status == "FAILED"
    assert runs[0].data.tags["status"] == "failed" and "boom" in runs[0].data.tags["error"]


def test_mlflow_run_status_follows_the_point(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    cfg = OmegaConf.create(
        {"logger": {"name": "mlflow", "tracking_uri": uri, "experiment": "statuses"},
         "sweep": "s", "out": str(tmp_path)}
    )  # fmt: skip
    expected = {"ok": "FINISHED", "failed": "FAILED", "diverged": "FAILED", "oom": "FAILED",
                "interrupted": "KILLED"}  # fmt: skip
    for status in expected:
        logger = loggers.open_logger(cfg, tmp_path, {"point_id": status, "model.width": 4})
        logger.log(1, {"step": 1, "train_loss": 2.0, "val_loss": float("nan"), "lr": None})
        logger.close({"status": status, "val_loss": 1.5, "steps": 1, "error": None})
    _, runs = _runs(uri, "statuses")
    assert {r.data.tags["point_id"]: r.info.status for r in runs} == expected
    assert all(r.data.metrics == {"train_loss": 2.0, "val_loss": 1.5, "steps": 1.0} for r in runs)


def test_mlflow_tracking_uri_from_the_environment(tmp_path, monkeypatch):
    cfg = OmegaConf.create(
        {"logger": {"name": "mlflow", "tracking_uri": None, "experiment": None},
         "sweep": "s", "out": str(tmp_path / "study")}
    )  # fmt: skip
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert loggers.tracking_uri(cfg) == f"sqlite:///{tmp_path / 'study' / 'mlruns.db'}"

    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    logger = loggers.open_logger(cfg, tmp_path, {"point_id": "p", "model.width": 4})
    logger.close({"status": "ok", "val_loss": 1.5, "steps": 3})
    _, runs = _runs(uri, "s")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert not (tmp_path / "study" / "mlruns.db").exists()


@pytest.mark.parametrize("name", ["tensorboard", "mlflow", "wandb"])
def test_a_missing_tracker_is_bad_input(tmp_path, monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda pkg, *a: None if pkg == name else real(pkg, *a)
    )
    cfg = OmegaConf.create({"logger": {"name": name}, "sweep": "s", "out": str(tmp_path)})
    message = f"logger={name} needs the {name} package: pip install 'scaling\\[{name}\\]'"
    with pytest.raises(ValueError, match=message):
        loggers.check_logger(cfg)
    with pytest.raises(ValueError, match=message):
        loggers.open_logger(cfg, tmp_path, {"point_id": "x"})


def test_unknown_tracker_and_csv():
    with pytest.raises(ValueError, match="unknown logger=neptune"):
        loggers.check_logger(OmegaConf.create({"logger": {"name": "neptune"}}))
    cfg = OmegaConf.create({"logger": {"name": "csv"}})
    loggers.check_logger(cfg)
    assert isinstance(loggers.open_logger(cfg, None, {}), loggers.NoLogger)


def _wandb_records(path):
    """The records of an offline W&B run file: a 7-byte header, then LevelDB-style records
    (crc32 4 bytes, length 2, type 1: full, first, middle, last) in 32 KiB blocks."""
    from wandb.proto import wandb_internal_pb2

    data, at, chunks = path.read_bytes(), 7, b""
    while at + 7 <= len(data):
        room = 32768 - at % 32768
        if room < 7:  # a block's tail too short for a header is padding
            at += room
            continue
        length, kind = int.from_bytes(data[at + 4 : at + 6], "little"), data[at + 6]
        if kind == 0:
            break
        chunks += data[at + 7 : at + 7 + length]
        at += 7 + length
        if kind in (1, 4):  # full, or last of several
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunks)
            chunks = b""
            yield record


def test_wandb_offline_runs_hold_each_points_curves_and_config(in_tmp, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(in_tmp / "no-netrc"))  # no key: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main([*SWEEP, "logger=wandb"]) == 0
    for pid, (history, row) in _points(in_tmp / "outputs" / "mlp_width").items():
        [run] = (in_tmp / "outputs" / "mlp_width" / "points" / pid / "wandb").glob("offline-run-*/*.wandb")
        logged, config, exit_code = {}, {}, None
        for r in _wandb_records(run):
            kind = r.WhichOneof("record_type")
            if kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                logged[items["_step"]] = items
            elif kind in ("run", "config"):  # the config at the start, and any update
                update = r.run.config.update if kind == "run" else r.config.update
                config |= {i.key: json.loads(i.value_json) for i in update}
            elif kind == "exit":
                exit_code = r.exit.exit_code
        assert sorted(logged) == history["step"].tolist()
        assert [logged[s]["val_loss"] for s in sorted(logged)] == pytest.approx(history["val_loss"].tolist())
        assert config["model.width"] == row["model.width"] and config["point_id"] == pid
        assert exit_code == 0


@pytest.mark.parametrize("status, exit_code, preempted", [
    ("ok", 0, False), ("failed", 1, False), ("interrupted", 1, True),
])  # fmt: skip
def test_a_wandb_run_ends_in_its_points_state(tmp_path, monkeypatch, status, exit_code, preempted):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))  # no key: offline
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = OmegaConf.create({"logger": {"name": "wandb", "experiment": None}, "sweep": "s"})
    logger = loggers.WandbLogger(cfg, tmp_path, {"point_id": "p"})
    logger.log(1, {"step": 1, "val_loss": 1.0})
    logger.close({"status": status, "error": None if status == "ok" else "stopped"})
    [run] = tmp_path.glob("wandb/offline-run-*/*.wandb")
    deadline = time.monotonic() + 30
    while True:  # W&B's service may still be writing the run's last records
        kinds = {r.WhichOneof("record_type"): r for r in _wandb_records(run)}
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert kinds["exit"].exit.exit_code == exit_code
    assert ("preempting" in kinds) == preempted
