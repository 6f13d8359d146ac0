"""Loggers as plugins on the training-time hooks, each an optional extra: ``--logger tensorboard``
(RUN_DIR/tensorboard), ``--logger wandb`` (Weights & Biases; offline under RUN_DIR/wandb unless the
user has logged in or set WANDB_MODE, so training never needs an account) and ``--logger mlflow``
(a local store, RUN_DIR/mlflow.db with artifacts in RUN_DIR/mlartifacts, or MLFLOW_TRACKING_URI). Each receives the logged scalars and
evaluation figures, the sample grids and the run's resolved settings; a resumed run continues the
same tracker run."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GanforgeError
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .training.context import TrainContext


class Tracker:
    """One tracker's side of a run: opened at the start, fed at log and sample steps, closed at the end."""

    def log(self, step: int, scalars: dict[str, float]) -> None:
        raise NotImplementedError

    def image(self, step: int, grid: Path) -> None:
        raise NotImplementedError

    def close(self, status: str) -> None:
        raise NotImplementedError


class TensorBoard(Tracker):
    def __init__(self, context: TrainContext) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise GanforgeError("--logger tensorboard needs the tensorboard package: pip install 'ganforge[tensorboard]'") from None
        # A resumed run logs again the steps after its checkpoint; the events an interrupted run wrote
        # past that point go, as its metrics.jsonl lines do.
        self.writer = SummaryWriter(log_dir=str(context.run_dir / "tensorboard"), purge_step=context.step + 1)
        self.writer.add_text("config", "```\n" + json.dumps(_settings(context), indent=2) + "\n```", context.step)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.writer.add_scalar(key, value, step)

    def image(self, step: int, grid: Path) -> None:
        from torchvision.transforms.v2.functional import pil_to_tensor

        from .imagefiles import open_image

        self.writer.add_image("samples", pil_to_tensor(open_image(grid, "RGB")), step)

    def close(self, status: str) -> None:
        self.writer.close()


def _run_id(context: TrainContext) -> str:
    """A tracker run id for this run directory, the same on every resume."""
    return hashlib.sha256(str(context.run_dir.resolve()).encode()).hexdigest()[:16]


def _settings(context: TrainContext) -> dict[str, Any]:
    saved = json.loads((context.run_dir / "config.json").read_text())
    return {"variant": saved["variant"], "model": saved["model"], "train": saved["train"], "resolved": saved["resolved"]}


class WandB(Tracker):
    def __init__(self, context: TrainContext) -> None:
        try:
            import wandb
        except ImportError:
            raise GanforgeError("--logger wandb needs the wandb package: pip install 'ganforge[wandb]'") from None
        # Without an account (no API key) or an explicit WANDB_MODE, the run is kept offline: `wandb sync` uploads it later.
        mode = None if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY") else "offline"
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "ganforge"), name=context.run_dir.name,
                              id=_run_id(context), resume="allow", dir=str(context.run_dir), mode=mode,
                              config=_settings(context))
        self.wandb = wandb

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.run.log(scalars, step=step)

    def image(self, step: int, grid: Path) -> None:
        self.run.log({"samples": self.wandb.Image(str(grid))}, step=step)

    def close(self, status: str) -> None:
        self.run.finish(exit_code=0 if status in ("completed", "interrupted") else 1)


class MLflow(Tracker):
    def __init__(self, context: TrainContext) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise GanforgeError("--logger mlflow needs the mlflow package: pip install 'ganforge[mlflow]'") from None
        # MLflow's own recommended local store, a SQLite file, inside the run directory unless a tracking URI is set.
        given = os.environ.get("MLFLOW_TRACKING_URI")
        self.client = MlflowClient(tracking_uri=given or f"sqlite:///{(context.run_dir / 'mlflow.db').resolve()}")
        experiment = self.client.get_experiment_by_name("ganforge")
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            "ganforge", artifact_location=None if given else (context.run_dir / "mlartifacts").resolve().as_uri())
        tag = _run_id(context)
        found = self.client.search_runs([experiment_id], filter_string=f"tags.ganforge_run = '{tag}'", max_results=1)
        if found:
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(experiment_id, run_name=context.run_dir.name,
                                                 tags={"ganforge_run": tag}).info.run_id
            for key, value in _flatten(_settings(context)).items():
                self.client.log_param(self.run_id, key, str(value)[:6000])

    def log(self, step: int, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def image(self, step: int, grid: Path) -> None:
        self.client.log_artifact(self.run_id, str(grid), artifact_path="samples")

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status in ("completed", "interrupted") else "FAILED")


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


TRACKERS: dict[str, type[Tracker]] = {"tensorboard": TensorBoard, "wandb": WandB, "mlflow": MLflow}
_open: dict[int, list[Tracker]] = {}


@hookimpl
def ganforge_train_start(context: TrainContext) -> None:
    if context.is_main and context.config.loggers:
        _open[id(context)] = [TRACKERS[name](context) for name in context.config.loggers]


@hookimpl
def ganforge_step_end(context: TrainContext, step: int, metrics: Mapping[str, Any] | None) -> None:
    trackers = _open.get(id(context))
    if not trackers:
        return
    scalars = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and k != "step"}
    grid = context.samples_dir / f"step_{step:07d}.png"
    for tracker in trackers:
        if scalars:
            tracker.log(step, scalars)
        if grid.is_file():
            tracker.image(step, grid)


@hookimpl
def ganforge_train_end(context: TrainContext, status: str) -> None:
    for tracker in _open.pop(id(context), []):
        tracker.close(status)
