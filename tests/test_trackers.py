"""The Weights & Biases and MLflow loggers, for real and offline: a short run logs to both, and what
they wrote is read back with each library's own code, then a resumed run continues the same tracker run."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from ganforge import TrainConfig, resume, train
from ganforge.runs import RunDir

pytestmark = pytest.mark.slow  # trains runs or starts processes: left out of `make test-fast`

BLOCK = 32768


def wandb_records(path: Path) -> Iterator[object]:
    """The records of a .wandb file, decoded by wandb's own protobuf classes (the file is a LevelDB-style log:
    a 7-byte header, then 32 KiB blocks of checksummed chunks)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 2):
            pending = chunk
        else:
            pending += chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def history(records: list) -> dict[int, dict[str, object]]:
    """Each logged step's values, from the history records."""
    steps: dict[int, dict[str, object]] = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {".".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
            steps[int(items["_step"])] = items
    return steps


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("tracked") / "run"
    with pytest.MonkeyPatch.context() as env:
        for name in ("WANDB_MODE", "WANDB_API_KEY", "MLFLOW_TRACKING_URI"):
            env.delenv(name, raising=False)
        env.setenv("WANDB_SILENT", "true")
        train(TrainConfig(variant="mlp", model={"g_hidden": [32], "d_hidden": [32]}, steps=20, batch_size=32, device="cpu",
                          log_every=10, sample_every=10, checkpoint_every=10, eval_every=20, eval_samples=200,
                          loggers=["wandb", "mlflow"], out=run))
    return run


def test_wandb_keeps_the_run_offline_without_an_account_with_scalars_grids_and_config(tracked_run: Path) -> None:
    [log] = tracked_run.glob("wandb/offline-run-*/run-*.wandb")
    records = list(wandb_records(log))
    [run_record] = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run_record.config.update}
    recorded = RunDir(tracked_run).read_config()
    assert config["variant"] == "mlp" and config["train"]["batch_size"] == 32
    assert config["resolved"] == recorded["resolved"] and config["model"] == recorded["model"]
    logged = {r["step"]: r for r in RunDir(tracked_run).read_metrics() if "d_loss" in r}
    steps = history(records)
    assert sorted(steps) == [10, 20]
    assert all(steps[s]["d_loss"] == pytest.approx(logged[s]["d_loss"], rel=1e-6) for s in (10, 20))
    assert steps[20]["fid"] > 0 and steps[20]["samples._type"] == "image-file"
    images = list(log.parent.glob("files/media/images/samples_*.png"))
    assert len(images) == 2


def test_mlflow_writes_a_local_store_read_back_by_its_client(tracked_run: Path) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_run / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("ganforge").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    logged = {r["step"]: r["d_loss"] for r in RunDir(tracked_run).read_metrics() if "d_loss" in r}
    history = client.get_metric_history(run.info.run_id, "d_loss")
    assert {m.step: m.value for m in history} == pytest.approx(logged, rel=1e-6)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "fid")] == [20]
    assert run.data.params["variant"] == "mlp" and run.data.params["train.batch_size"] == "32"
    grids = [Path(a.path).name for a in client.list_artifacts(run.info.run_id, "samples")]
    assert grids == ["step_0000010.png", "step_0000020.png"]


def test_a_resumed_run_continues_the_same_tracker_runs(tracked_run: Path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    for name in ("WANDB_MODE", "WANDB_API_KEY", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    resume(tracked_run, steps=30)
    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_run / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("ganforge").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "d_loss")] == [10, 20, 30]
    logs = sorted(tracked_run.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(logs) == 2 and logs[0].name == logs[1].name  # one wandb run id: `wandb sync` joins them
    assert sorted(history(list(wandb_records(logs[1])))) == [30]
